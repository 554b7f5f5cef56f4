// The moderator console: the full comment view (held comments included) with a hide control per
// row, comment policy, the question queue and the floor.

import { urlToken } from '../api';
import { CommentList } from '../commentList';
import { Connection, PostError } from '../connection';
import { ConsultStore } from '../consult';
import { floorPanel, policyPanel, questionsPanel } from '../consultUi';
import { t, type I18nKey } from '../i18n';
import { composer, errorText, h, header, i18n, slot, statusLine } from '../ui';

const REASONS: I18nKey[] = ['reasonImproper', 'reasonAd', 'reasonOffTopic', 'reasonDuplicate'];

export function moderatorConsole(root: HTMLElement, activity: string): void {
  const token = urlToken(activity);
  let conn: Connection | null = null;
  const store = new ConsultStore();
  const hideMsg = h('p', { class: 'panel-msg', role: 'alert' });
  const reason = h('select', { class: 'hide-reason', id: 'hide-reason' });
  const reasonLabel = h('label', { for: 'hide-reason' });
  const hideButtons: HTMLButtonElement[] = [];
  const timeoutButtons: HTMLButtonElement[] = [];
  const approveButtons: { ok: HTMLButtonElement; current: () => { seq: number; role: string } | null }[] = [];
  const hide = (seq: number) => {
    if (!store.available || !conn) return;
    hideMsg.textContent = '';
    conn.cmd({ c: 'hide_comment', seq, reason: reason.selectedOptions[0]?.textContent ?? '' }).catch((e: unknown) => {
      hideMsg.textContent = errorText(e instanceof PostError ? e.code : 'internal', { msg: String(e) });
    });
  };
  const approve = (seq: number) => {
    if (!store.available || !conn) return;
    hideMsg.textContent = '';
    conn.cmd({ c: 'approve_comment', seq }).catch((e: unknown) => {
      hideMsg.textContent = errorText(e instanceof PostError ? e.code : 'internal', { msg: String(e) });
    });
  };
  // The protocol does not mark held comments in a moderator's batches, so every viewer comment
  // gets an approve button while review mode is on; approving one that is not held answers
  // `not_held`. The public copy (`approves`) replaces the held original in this list.
  const list = new CommentList({
    cap: 5000,
    rowActions: (row, current) => {
      const ok = h('button', { type: 'button', class: 'row-approve', 'aria-disabled': 'true', hidden: true });
      const btn = h('button', { type: 'button', class: 'row-hide', 'aria-disabled': 'true' });
      const mute = h('button', { type: 'button', class: 'row-timeout', 'aria-disabled': 'true' });
      mute.textContent = t('timeout10');
      timeoutButtons.push(mute);
      mute.addEventListener('click', () => {
        const c = current();
        if (!c || !store.available || !conn) return;
        hideMsg.textContent = '';
        const why = reason.selectedOptions[0]?.textContent ?? '';
        conn.cmd({ c: 'timeout', who: c.authorId, until_ms: Date.now() + 10 * 60_000, reason: why }).catch((e: unknown) => {
          hideMsg.textContent = errorText(e instanceof PostError ? e.code : 'internal', { msg: String(e) });
        });
      });
      btn.textContent = t('hide');
      ok.textContent = t('approve');
      row.append(h('span', { class: 'row-actions' }, ok, mute, btn));
      hideButtons.push(btn);
      approveButtons.push({ ok, current });
      btn.addEventListener('click', () => {
        const c = current();
        if (c) hide(c.seq);
      });
      ok.addEventListener('click', () => {
        const c = current();
        if (c) approve(c.seq);
      });
      return (c) => {
        btn.setAttribute('aria-label', t('hideLabel', { seq: c.seq }));
        btn.setAttribute('aria-disabled', String(!store.available));
        btn.title = store.available ? '' : t('notYetAvailable');
        ok.setAttribute('aria-label', t('approveLabel', { seq: c.seq }));
        mute.setAttribute('aria-label', t('timeoutLabel', { name: c.name }));
        mute.setAttribute('aria-disabled', String(!store.available));
        mute.hidden = c.role === 'moderator';
        ok.setAttribute('aria-disabled', String(!store.available));
        ok.hidden = !store.modes.review || c.role !== 'viewer' || store.settled.has(c.seq);
      };
    },
  });
  const status = statusLine(() => conn);
  const you = h('p', { class: 'you muted' });
  const policy = slot('policy', () => t('policy'), () => t('reviewPending'));
  const questions = slot('question-queue', () => t('questionQueue'), () => t('questionQueuePending'));
  const floor = slot('floor', () => t('floor'), () => t('floorPending'));
  const audit = slot('audit', () => t('auditLog'), () => t('auditNone'));
  const auditList = h('ol', { class: 'audit', reversed: true });
  audit.body.append(auditList);
  store.onChange(() => {
    const entries = store.audit.slice(-30).reverse();
    (audit.body.querySelector('.slot-pending') as HTMLElement | null)?.toggleAttribute('hidden', entries.length > 0);
    auditList.replaceChildren(
      ...entries.map((e) =>
        h('li', { value: String(e.index), title: e.hash }, `${new Date(e.at_ms).toLocaleTimeString()} ${store.nameOf(e.actor)} ${e.action} ${e.target}${e.reason ? `（${e.reason}）` : ''}`),
      ),
    );
  });
  const commentsH = h('h2', { id: 'console-comments-h' });
  const who = { id: () => conn?.you?.id ?? null, moderator: true };
  policyPanel(policy.body, store, () => conn);
  questionsPanel(questions.body, store, () => conn, who);
  floorPanel(floor.body, store, () => conn, who);

  root.replaceChildren(
    header(() => `${t('consoleTitle')} · ${activity}`),
    h(
      'main',
      { class: 'console' },
      h(
        'section',
        { class: 'comments', 'aria-labelledby': 'console-comments-h' },
        commentsH,
        you,
        status.el,
        h('div', { class: 'hide-bar' }, reasonLabel, reason, hideMsg),
        list.root,
        composer(() => conn, () => conn?.limits?.max_text_chars ?? 500),
      ),
      h('div', { class: 'stage' }, floor.el, questions.el, policy.el, audit.el),
    ),
  );
  const labels = () => {
    commentsH.textContent = t('comments');
    reasonLabel.textContent = t('hideReason');
    const sel = reason.selectedIndex;
    reason.replaceChildren(...REASONS.map((k) => h('option', {}, t(k))));
    reason.selectedIndex = Math.max(0, sel);
    enableHide();
    if (conn?.you) you.textContent = t('you', { name: conn.you.name, role: t(`role_${conn.you.role}`) });
    list.relabel();
  };
  const enableHide = () => {
    for (const b of hideButtons) {
      b.textContent = t('hide');
      b.title = store.available ? '' : t('notYetAvailable');
      b.setAttribute('aria-disabled', String(!store.available));
    }
    for (const m of timeoutButtons) {
      m.textContent = t('timeout10');
      m.setAttribute('aria-disabled', String(!store.available));
    }
    for (const { ok, current } of approveButtons) {
      const c = current();
      ok.textContent = t('approve');
      ok.setAttribute('aria-disabled', String(!store.available));
      ok.hidden = !c || !store.modes.review || c.role !== 'viewer' || store.settled.has(c.seq);
    }
  };
  i18n(labels);
  store.onChange(enableHide);
  conn = new Connection(activity, async (fresh) => (fresh ? null : token), {
    state: (s) => status.update(s),
    welcome: (w) => {
      you.textContent = t('you', { name: w.you.name, role: t(`role_${w.you.role}`) });
    },
    items: (items) => list.push(items),
    reset: (items) => list.replace(items),
    consultState: (st) => store.applyState(st),
    consultEvent: (e) => store.applyEvent(e),
  });
  conn.start();
  (window as unknown as { __shangliang: unknown }).__shangliang = { conn, list, store };
}
