// A virtualised comment list for hundreds of comments per second: fixed-height rows, a pool of
// row elements covering only the viewport, all model changes applied once per animation frame,
// layout read once per frame (scroll position) before any write, and a cap on the items kept.

import { t } from './i18n';
import { isComment, type Item, type Role } from './protocol';

export interface Comment {
  seq: number;
  ts: number;
  /** The author's participant id (token subject). */
  authorId: string;
  name: string;
  role: Role;
  verified: boolean;
  text: string;
}

export const ROW_HEIGHT = 52;
const OVERSCAN = 6;

export interface CommentListOptions {
  /** Most comments kept; the oldest are dropped beyond it. */
  cap?: number;
  /** Builds extra controls of a row (e.g. a moderator's hide button); called once per pooled row.
   * May return a function called whenever the row shows another comment. */
  rowActions?: (row: HTMLElement, current: () => Comment | null) => ((c: Comment) => void) | void;
}

interface Row {
  el: HTMLElement;
  name: HTMLElement;
  badge: HTMLElement;
  text: HTMLElement;
  seq: number;
  comment: Comment | null;
  update?: (c: Comment) => void;
}

function toComment(i: Item): Comment | null {
  if (!isComment(i.body)) return null;
  const a = i.body.author;
  return { seq: i.seq, ts: i.ts, authorId: a.id, name: a.name, role: a.role, verified: !!a.verified, text: i.body.text };
}

export class CommentList {
  readonly root: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly newBtn: HTMLButtonElement;
  private items: Comment[] = [];
  private pendingAppend: Comment[] = [];
  private pendingHide: number[] = [];
  private pendingReplace: Comment[] | null = null;
  private rows: Row[] = [];
  private frame = 0;
  private stick = true;
  private unseen = 0;
  private viewHeight = 400;
  private lastScrollTop = 0;
  /** Rows the DOM currently has room for (the spacer's height / ROW_HEIGHT). */
  private rendered = 0;
  private droppedUnrendered = 0;
  private readonly cap: number;

  constructor(private readonly opts: CommentListOptions = {}) {
    this.cap = opts.cap ?? 5000;
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
        const top = this.viewport.scrollTop;
        const maxTop = this.rendered * ROW_HEIGHT - this.viewHeight;
        this.lastScrollTop = top;
        this.stick = top >= maxTop - ROW_HEIGHT / 2;
        if (this.stick) this.unseen = 0;
        this.schedule();
      },
      { passive: true },
    );
    new ResizeObserver((entries) => {
      for (const e of entries) this.viewHeight = e.contentRect.height || this.viewHeight;
      this.schedule();
    }).observe(this.viewport);
    this.relabel();
  }

  /** Re-applies translated labels (after a language switch). */
  relabel(): void {
    this.viewport.setAttribute('aria-label', t('commentListLabel'));
    this.newBtn.setAttribute('aria-label', t('newCommentsLabel'));
    this.newBtn.textContent = t('newComments', { n: this.unseen });
    for (const r of this.rows) r.seq = -1;
    this.schedule();
  }

  /** Queues new items (comments are shown, hides remove their target). */
  push(items: Item[]): void {
    for (const i of items) {
      const c = toComment(i);
      if (c) {
        this.pendingAppend.push(c);
        // The public copy of an approved comment replaces the held original (moderators saw both).
        if (isComment(i.body) && i.body.approves !== undefined) this.pendingHide.push(i.body.approves);
      } else if (i.body.k === 'hide') this.pendingHide.push((i.body as { target: number }).target);
    }
    // A hidden tab gets no animation frames: keep only what the list could show anyway.
    if (this.pendingAppend.length > 2 * this.cap) this.pendingAppend.splice(0, this.pendingAppend.length - this.cap);
    this.schedule();
  }

  /** Replaces everything shown (a `reset` snapshot). */
  replace(items: Item[]): void {
    this.pendingAppend = [];
    this.pendingHide = [];
    const list: Comment[] = [];
    const hidden = new Set<number>();
    for (const i of items) if (i.body.k === 'hide') hidden.add((i.body as { target: number }).target);
    for (const i of items) {
      const c = toComment(i);
      if (c && !hidden.has(c.seq)) list.push(c);
    }
    this.pendingReplace = list;
    this.stick = true;
    this.schedule();
  }

  /** What the list holds after pending updates (for tests and diagnostics). */
  snapshot(): Comment[] {
    this.droppedUnrendered += this.apply();
    return this.items.slice();
  }

  scrollToEnd(): void {
    this.stick = true;
    this.unseen = 0;
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  /** Applies queued changes to the model; returns how many items were dropped at the front. */
  private apply(): number {
    let dropped = 0;
    if (this.pendingReplace) {
      this.items = this.pendingReplace;
      this.pendingReplace = null;
      this.unseen = 0;
    }
    if (this.pendingAppend.length) {
      const last = this.items.length ? this.items[this.items.length - 1].seq : 0;
      let added = 0;
      for (const c of this.pendingAppend) {
        if (c.seq > (this.items.length ? this.items[this.items.length - 1].seq : last)) {
          this.items.push(c);
          added++;
        }
      }
      if (!this.stick) this.unseen += added;
      this.pendingAppend = [];
    }
    for (const seq of this.pendingHide) {
      const i = this.indexOf(seq);
      if (i >= 0) this.items.splice(i, 1);
    }
    this.pendingHide = [];
    if (this.items.length > this.cap) {
      dropped = this.items.length - this.cap;
      this.items.splice(0, dropped);
    }
    return dropped;
  }

  private indexOf(seq: number): number {
    let lo = 0;
    let hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.items[mid].seq;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private render(): void {
    this.frame = 0;
    // Reads first (only cached values and one scrollTop read), then writes.
    const dropped = this.apply() + this.droppedUnrendered;
    this.droppedUnrendered = 0;
    const n = this.items.length;
    const total = n * ROW_HEIGHT;
    const maxTop = Math.max(0, total - this.viewHeight);
    let top = this.stick ? maxTop : Math.min(maxTop, Math.max(0, this.lastScrollTop - dropped * ROW_HEIGHT));

    this.spacer.style.height = `${total}px`;
    this.rendered = n;
    if (this.viewport.scrollTop !== top) {
      this.viewport.scrollTop = top;
      this.lastScrollTop = top;
    }
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(n, Math.ceil((top + this.viewHeight) / ROW_HEIGHT) + OVERSCAN);
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
      const c = this.items[idx];
      if (row.el.hidden) row.el.hidden = false;
      row.el.style.transform = `translateY(${idx * ROW_HEIGHT}px)`;
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
        row.text.textContent = c.text;
        row.el.title = c.text;
        row.update?.(c);
      }
    }
    this.newBtn.hidden = this.stick || this.unseen === 0;
    if (!this.newBtn.hidden) this.newBtn.textContent = t('newComments', { n: this.unseen });
  }

  private makeRow(): Row {
    const el = document.createElement('div');
    el.className = 'crow';
    el.setAttribute('role', 'listitem');
    const head = document.createElement('span');
    head.className = 'crow-head';
    const name = document.createElement('span');
    name.className = 'crow-name';
    const badge = document.createElement('span');
    badge.className = 'crow-badge';
    head.append(name, badge);
    const text = document.createElement('span');
    text.className = 'crow-text';
    el.append(head, text);
    this.viewport.append(el);
    const row: Row = { el, name, badge, text, seq: -1, comment: null };
    row.update = this.opts.rowActions?.(el, () => row.comment) ?? undefined;
    return row;
  }
}
