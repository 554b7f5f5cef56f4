// The moderator console: the full comment view (held comments included) with a hide control per
// row, and slots for the review queue, question queue and floor control (moderation pending).

import { urlToken } from '../api';
import { CommentList } from '../commentList';
import { Connection } from '../connection';
import { t } from '../i18n';
import { composer, h, header, i18n, slot, statusLine } from '../ui';

export function moderatorConsole(root: HTMLElement, activity: string): void {
  const token = urlToken(activity);
  let conn: Connection | null = null;
  const hideButtons: { btn: HTMLButtonElement; current: () => { seq: number } | null }[] = [];
  const list = new CommentList({
    cap: 5000,
    rowActions: (row, current) => {
      const btn = h('button', { type: 'button', class: 'row-hide', 'aria-disabled': 'true', 'data-needs': 'moderation' });
      btn.textContent = t('hide');
      btn.title = t('notYetAvailable');
      row.append(btn);
      hideButtons.push({ btn, current });
      btn.addEventListener('focus', () => {
        const c = current();
        btn.textContent = t('hide');
        btn.setAttribute('aria-label', c ? t('hideLabel', { seq: c.seq }) : t('hide'));
      });
    },
  });
  const status = statusLine(() => conn);
  const you = h('p', { class: 'you muted' });
  const review = slot('review', () => t('reviewQueue'), () => t('reviewPending'));
  const questions = slot('question-queue', () => t('questionQueue'), () => t('questionQueuePending'));
  const floor = slot('floor', () => t('floor'), () => t('floorPending'));
  const commentsH = h('h2', { id: 'console-comments-h' });

  root.replaceChildren(
    header(() => `${t('consoleTitle')} · ${activity}`),
    h(
      'main',
      { class: 'console' },
      h('section', { class: 'comments', 'aria-labelledby': 'console-comments-h' }, commentsH, you, status.el, list.root, composer(() => conn, () => conn?.limits?.max_text_chars ?? 500)),
      h('div', { class: 'stage' }, review.el, questions.el, floor.el),
    ),
  );
  i18n(() => {
    commentsH.textContent = t('comments');
    for (const b of hideButtons) {
      b.btn.textContent = t('hide');
      b.btn.title = t('notYetAvailable');
    }
    if (conn?.you) you.textContent = t('you', { name: conn.you.name, role: t(`role_${conn.you.role}`) });
    list.relabel();
  });
  conn = new Connection(activity, async (fresh) => (fresh ? null : token), {
    state: (s) => status.update(s),
    welcome: (w) => {
      you.textContent = t('you', { name: w.you.name, role: t(`role_${w.you.role}`) });
    },
    items: (items) => list.push(items),
    reset: (items) => list.replace(items),
  });
  conn.start();
  (window as unknown as { __shangliang: unknown }).__shangliang = { conn, list };
}
