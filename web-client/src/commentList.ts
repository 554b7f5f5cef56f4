// A virtualised comment list for hundreds of comments per second: rows of one height (two lines
// of text) except the few a reader expanded, a pool of row elements covering only the viewport,
// all model changes applied once per animation frame, layout read once per frame (the scroll
// position, then which of the rows just filled overflow their two lines) after the writes, and a
// cap on the items kept. The model (CommentModel) and the row arithmetic (RowLayout) are pure.

import { CommentModel, RowLayout, type Comment } from './commentModel';
import { t } from './i18n';
import type { Item } from './protocol';

export type { Comment } from './commentModel';

export const ROW_HEIGHT = 52;
const OVERSCAN = 6;

export interface CommentListOptions {
  /** Most comments kept; the oldest are dropped beyond it. */
  cap?: number;
  /** Builds extra controls of a row (e.g. a moderator's hide button) in the row's own column, so
   * they never cover the text; called once per pooled row. May return a function called whenever
   * the row shows another comment (or `refresh()` is called). */
  rowActions?: (actions: HTMLElement, current: () => Comment | null) => ((c: Comment) => void) | void;
}

interface Row {
  el: HTMLElement;
  name: HTMLElement;
  badge: HTMLElement;
  text: HTMLElement;
  body: HTMLElement;
  more: HTMLButtonElement;
  pending: HTMLElement;
  seq: number;
  comment: Comment | null;
  update?: (c: Comment) => void;
  /** Filled this frame: check whether its text overflows two lines. */
  check: boolean;
}

export class CommentList {
  readonly root: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly newBtn: HTMLButtonElement;
  private readonly model: CommentModel;
  private readonly layout = new RowLayout(ROW_HEIGHT);
  /** Expanded comments: seq → extra height in px (0 until measured). */
  private readonly expanded = new Map<number, number>();
  private rows: Row[] = [];
  private frame = 0;
  private stick = true;
  private unseen = 0;
  private viewHeight = 400;
  private viewWidth = 0;
  private lastScrollTop = 0;
  /** Height of what the DOM currently shows (the spacer's height). */
  private renderedHeight = 0;
  private droppedUnrendered = 0;

  constructor(private readonly opts: CommentListOptions = {}) {
    this.model = new CommentModel(opts.cap ?? 5000);
    this.root = document.createElement('div');
    this.root.className = 'clist';
    this.viewport = document.createElement('div');
    this.viewport.className = 'clist-viewport';
    this.viewport.tabIndex = 0;
    this.viewport.setAttribute('role', 'list');
    this.spacer = document.createElement('div');
    this.spacer.className = 'clist-spacer';
    this.viewport.append(this.spacer);
    this.newBtn = document.createElement('button');
    this.newBtn.type = 'button';
    this.newBtn.className = 'clist-new';
    this.newBtn.hidden = true;
    this.newBtn.addEventListener('click', () => this.scrollToEnd());
    this.root.append(this.viewport, this.newBtn);
    this.viewport.addEventListener(
      'scroll',
      () => {
        // Live sizes, not the cached ones: a scroll event caused by the viewport growing (the
        // browser clamps scrollTop) arrives before the ResizeObserver, and must not unstick.
        const top = this.viewport.scrollTop;
        const maxTop = Math.max(this.viewport.scrollHeight, this.renderedHeight) - this.viewport.clientHeight;
        this.lastScrollTop = top;
        this.stick = top >= maxTop - ROW_HEIGHT / 2;
        if (this.stick) this.unseen = 0;
        this.schedule();
      },
      { passive: true },
    );
    new ResizeObserver((entries) => {
      for (const e of entries) {
        this.viewHeight = e.contentRect.height || this.viewHeight;
        if (e.contentRect.width && e.contentRect.width !== this.viewWidth) {
          // Another width wraps text differently: re-check overflow and re-measure expanded rows.
          this.viewWidth = e.contentRect.width;
          for (const r of this.rows) r.seq = -1;
          for (const k of this.expanded.keys()) this.expanded.set(k, 0);
        }
      }
      this.schedule();
    }).observe(this.viewport);
    this.relabel();
  }

  /** Re-applies translated labels (after a language switch). */
  relabel(): void {
    this.viewport.setAttribute('aria-label', t('commentListLabel'));
    this.newBtn.setAttribute('aria-label', t('newCommentsLabel'));
    this.newBtn.textContent = t('newComments', { n: this.unseen });
    this.refresh();
  }

  /** Redraws every row (row actions depend on state outside the list). */
  refresh(): void {
    for (const r of this.rows) r.seq = -1;
    this.schedule();
  }

  /** Queues new items (comments are shown, hides remove their target). */
  push(items: Item[]): void {
    this.model.push(items);
    this.schedule();
  }

  /** Shows one's own held comment to oneself, in seq order, marked 审核中. */
  insertPending(c: Comment): void {
    this.model.insert({ ...c, pending: true });
    this.refresh();
  }

  /** Replaces everything shown (a `reset` snapshot). */
  replace(items: Item[]): void {
    this.model.replace(items);
    this.stick = true;
    this.schedule();
  }

  /** What the list holds after pending updates (for tests and diagnostics). */
  snapshot(): Comment[] {
    this.droppedUnrendered += this.applyModel();
    return this.model.all();
  }

  /** The comment `seq` if the list holds it. */
  get(seq: number): Comment | null {
    const i = this.model.indexOf(seq);
    return i >= 0 ? this.model.at(i) : null;
  }

  scrollToEnd(): void {
    this.stick = true;
    this.unseen = 0;
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  private applyModel(): number {
    const a = this.model.apply();
    if (a.replaced) this.unseen = 0;
    if (!this.stick) this.unseen += a.added;
    if (a.replaced || a.dropped) for (const seq of this.expanded.keys()) if (this.model.indexOf(seq) < 0) this.expanded.delete(seq);
    return a.dropped;
  }

  private toggle(row: Row): void {
    const c = row.comment;
    if (!c) return;
    if (this.expanded.has(c.seq)) this.expanded.delete(c.seq);
    else this.expanded.set(c.seq, 0);
    row.seq = -1;
    this.render();
    row.more.focus();
  }

  private render(): void {
    this.frame = 0;
    const dropped = this.applyModel() + this.droppedUnrendered;
    this.droppedUnrendered = 0;
    const n = this.model.length;
    const extras: [number, number][] = [];
    for (const [seq, e] of this.expanded) {
      const i = this.model.indexOf(seq);
      if (i >= 0) extras.push([i, e]);
    }
    this.layout.setExtras(extras);
    const total = this.layout.total(n);
    const maxTop = Math.max(0, total - this.viewHeight);
    const top = this.stick ? maxTop : Math.min(maxTop, Math.max(0, this.lastScrollTop - dropped * ROW_HEIGHT));

    this.spacer.style.height = `${total}px`;
    this.renderedHeight = total;
    if (this.viewport.scrollTop !== top) {
      this.viewport.scrollTop = top;
      this.lastScrollTop = top;
    }
    const first = Math.max(0, this.layout.indexAt(top, n) - OVERSCAN);
    const last = Math.min(n, this.layout.indexAt(top + this.viewHeight, n) + 1 + OVERSCAN);
    const need = last - first;
    while (this.rows.length < need) this.rows.push(this.makeRow());
    for (let r = 0; r < this.rows.length; r++) {
      const row = this.rows[r];
      const idx = first + r;
      if (idx >= last) {
        if (!row.el.hidden) row.el.hidden = true;
        row.comment = null;
        row.seq = -1;
        continue;
      }
      const c = this.model.at(idx);
      if (row.el.hidden) row.el.hidden = false;
      row.el.style.transform = `translateY(${this.layout.offset(idx)}px)`;
      row.el.setAttribute('aria-posinset', String(idx + 1));
      row.el.setAttribute('aria-setsize', String(n));
      if (row.seq !== c.seq) {
        row.seq = c.seq;
        row.comment = c;
        row.el.dataset.seq = String(c.seq);
        row.name.textContent = c.name;
        const badge = c.role === 'viewer' ? (c.verified ? t('verified') : '') : t(`role_${c.role}`);
        row.badge.textContent = badge;
        row.badge.hidden = !badge;
        row.el.dataset.role = c.role;
        row.el.classList.toggle('pending', !!c.pending);
        row.pending.hidden = !c.pending;
        row.pending.textContent = t('pendingMine');
        row.text.textContent = c.text;
        const open = this.expanded.has(c.seq);
        row.el.classList.toggle('expanded', open);
        row.el.style.height = open ? 'auto' : '';
        row.more.textContent = open ? t('collapse') : t('expand');
        row.more.setAttribute('aria-expanded', String(open));
        row.more.setAttribute('aria-label', `${open ? t('collapse') : t('expand')}: ${c.name}`);
        row.check = true;
        row.update?.(c);
      }
    }
    // Reads after all writes: one layout for the rows filled this frame.
    let remeasure = false;
    const showMore: [Row, boolean][] = [];
    for (const row of this.rows) {
      if (!row.check || !row.comment) continue;
      row.check = false;
      const seq = row.comment.seq;
      if (this.expanded.has(seq)) {
        const extra = Math.max(0, row.el.offsetHeight - ROW_HEIGHT);
        if (extra !== this.expanded.get(seq)) {
          this.expanded.set(seq, extra);
          remeasure = true;
        }
        showMore.push([row, true]);
      } else showMore.push([row, row.body.scrollHeight > row.body.clientHeight + 1]);
    }
    for (const [row, show] of showMore) row.more.hidden = !show;
    this.newBtn.hidden = this.stick || this.unseen === 0;
    if (!this.newBtn.hidden) this.newBtn.textContent = t('newComments', { n: this.unseen });
    if (remeasure) this.schedule();
  }

  private makeRow(): Row {
    const el = document.createElement('div');
    el.className = 'crow';
    el.setAttribute('role', 'listitem');
    const body = document.createElement('p');
    body.className = 'crow-body';
    const head = document.createElement('span');
    head.className = 'crow-head';
    const name = document.createElement('span');
    name.className = 'crow-name';
    const badge = document.createElement('span');
    badge.className = 'crow-badge';
    const pending = document.createElement('span');
    pending.className = 'crow-pending';
    pending.hidden = true;
    head.append(name, badge, pending);
    const text = document.createElement('span');
    text.className = 'crow-text';
    body.append(head, text);
    const more = document.createElement('button');
    more.type = 'button';
    more.className = 'crow-more';
    more.hidden = true;
    el.append(body, more);
    this.viewport.append(el);
    const row: Row = { el, name, badge, text, body, more, pending, seq: -1, comment: null, check: false };
    more.addEventListener('click', () => this.toggle(row));
    if (this.opts.rowActions) {
      const actions = document.createElement('span');
      actions.className = 'row-actions';
      el.append(actions);
      row.update = this.opts.rowActions(actions, () => row.comment) ?? undefined;
    }
    return row;
  }
}
