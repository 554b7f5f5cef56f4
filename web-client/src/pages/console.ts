// The moderator console: the full comment view (held comments included, marked as the server
// marks them) with per-row actions (approve or reject a held comment; hide or time out with a
// reason chosen on that row), the review queue (待审) with keyboard shortcuts and bulk approval, the room's video, the floor with a turn length, the questions,
// comment policy with slow mode, the timeouts in force with undo, and a readable audit log.

import { getActivity, urlToken } from '../api';
import { programmeNotice } from '../media/programmeNotice';
import { auditLine } from '../auditText';
import { CommentList, type Comment } from '../commentList';
import { Connection, PostError } from '../connection';
import { ConsultStore } from '../consult';
import { chooseReason, floorPanel, policyPanel, questionsPanel, sanctionsPanel } from '../consultUi';
import { t } from '../i18n';
import { RoomMedia } from '../media/room';
import { isComment, type Item } from '../protocol';
import { ReviewQueue } from '../reviewQueue';
import { ConsensusStore, consensusConsole, consensusTitles } from '../consensus';
import { RoomGrid } from '../roomGrid';
import { choose, composer, errorText, h, header, i18n, slot, statusLine } from '../ui';
import { exposeForTests } from '../testHook';

/** Timeout lengths offered per row (ms); 0 stands for a ban (the whole activity). */
const TIMEOUTS = [10 * 60_000, 60 * 60_000, 0];

export function moderatorConsole(root: HTMLElement, activity: string): void {
  const token = urlToken(activity);
  let conn: Connection | null = null;
  let title = '';
  const store = new ConsultStore();
  const review = new ReviewQueue();
  const approvedCopies = new Map<number, { name: string; text: string }>();
  const hideMsg = h('p', { class: 'panel-msg', role: 'alert' });
  const fail = (e: unknown) => {
    hideMsg.textContent = errorText(e instanceof PostError ? e.code : 'internal', { msg: e instanceof Error ? e.message : String(e) });
  };
  const refreshAll = () => {
    list.refresh();
    counts();
  };
  const hide = (seq: number, reason: string) => {
    if (!store.available || !conn) return;
    hideMsg.textContent = '';
    conn.cmd({ c: 'hide_comment', seq, reason }).then(() => {
      review.settle(seq);
      refreshAll();
    }, fail);
  };
  /** Rejects a held comment (it never becomes public). */
  const reject = (seq: number, reason: string) => {
    if (!store.available || !conn) return;
    hideMsg.textContent = '';
    conn.cmd({ c: 'reject_comment', seq, reason }).then(
      () => {
        review.settle(seq);
        refreshAll();
      },
      (e: unknown) => {
        if (e instanceof PostError && e.code === 'not_held') {
          review.settle(seq);
          refreshAll();
        } else fail(e);
      },
    );
  };
  const approveAllHeld = () => {
    if (!store.available || !conn) return Promise.resolve();
    hideMsg.textContent = '';
    return conn.cmd({ c: 'approve_all_held' }).then(() => refreshAll(), fail);
  };
  /** Before review goes off with comments waiting: release them all, or keep them in 待审. */
  const reviewOff = async (anchor: HTMLElement): Promise<boolean> => {
    if (!review.size) return true;
    const n = review.size;
    const pick = await choose(anchor, t('reviewOffAsk', { n }), [
      { label: t('reviewOffRelease', { n }), value: 'release' as const },
      { label: t('reviewOffKeep'), value: 'keep' as const },
    ]);
    if (pick === null) return false;
    if (pick === 'release') await approveAllHeld();
    return true;
  };
  const approve = (seq: number) => {
    if (!store.available || !conn) return Promise.resolve();
    hideMsg.textContent = '';
    return conn.cmd({ c: 'approve_comment', seq }).then(
      () => {
        review.settle(seq);
        refreshAll();
      },
      (e: unknown) => {
        // Not held after all (posted before review was on): it is public; drop it from the queue.
        if (e instanceof PostError && e.code === 'not_held') {
          review.settle(seq);
          refreshAll();
        } else fail(e);
      },
    );
  };
  const discipline = async (anchor: HTMLElement, c: Comment) => {
    const len = await choose(anchor, t('timeoutFor', { name: c.name }), TIMEOUTS.map((ms) => ({ label: ms ? t('timeoutLen', { dur: formatLen(ms) }) : t('banChoice'), value: ms })));
    if (len === null) return;
    const reason = await chooseReason(anchor, t('reasonFor'));
    if (!reason || !conn) return;
    hideMsg.textContent = '';
    const cmd = len ? ({ c: 'timeout', who: c.authorId, until_ms: Date.now() + len, reason } as const) : ({ c: 'ban', who: c.authorId, reason } as const);
    conn.cmd(cmd).catch(fail);
  };
  const formatLen = (ms: number) => (ms >= 3_600_000 ? t('durHours', { n: ms / 3_600_000 }) : t('durMinutes', { n: ms / 60_000 }));

  // Row actions sit in their own column, so they never cover the text.
  const list = new CommentList({
    cap: 5000,
    rowActions: (actions, current) => {
      const ok = h('button', { type: 'button', class: 'row-approve', hidden: true });
      const hideBtn = h('button', { type: 'button', class: 'row-hide', 'aria-haspopup': 'menu' });
      const mute = h('button', { type: 'button', class: 'row-timeout', 'aria-haspopup': 'menu' });
      const held = h('span', { class: 'row-held', hidden: true });
      actions.append(held, ok, hideBtn, mute);
      hideBtn.addEventListener('click', () => {
        const c = current();
        if (!c || !store.available) return;
        const held = review.isHeld(c.seq);
        void chooseReason(hideBtn, held ? t('rejectWhy') : t('hideWhy')).then((r) => r && (held ? reject(c.seq, r) : hide(c.seq, r)));
      });
      mute.addEventListener('click', () => {
        const c = current();
        if (c && store.available) void discipline(mute, c);
      });
      ok.addEventListener('click', () => {
        const c = current();
        if (c) void approve(c.seq);
      });
      return (c) => {
        const isHeld = review.isHeld(c.seq);
        actions.closest('.crow')?.classList.toggle('held', isHeld);
        held.hidden = !isHeld;
        held.textContent = t('heldTag');
        ok.hidden = !isHeld;
        ok.textContent = t('approve');
        ok.setAttribute('aria-label', t('approveLabel', { name: c.name }));
        hideBtn.textContent = isHeld ? t('reject') : t('hide');
        hideBtn.setAttribute('aria-label', isHeld ? t('rejectLabel', { name: c.name }) : t('hideLabel', { name: c.name }));
        hideBtn.setAttribute('aria-disabled', String(!store.available));
        mute.textContent = t('discipline');
        mute.setAttribute('aria-label', t('timeoutLabel', { name: c.name }));
        mute.setAttribute('aria-disabled', String(!store.available));
        mute.hidden = c.role === 'moderator';
      };
    },
  });

  // The review queue (待审): the comments presumed held, oldest first, with keyboard shortcuts.
  const reviewSlot = slot('review', () => t('reviewQueueN', { n: review.size }), () => t('reviewEmpty'));
  const reviewList = h('ol', { class: 'review-list', 'aria-label': t('reviewQueue') });
  const reviewHelp = h('p', { class: 'muted review-help' });
  const approveAll = h('button', { type: 'button', class: 'btn small', 'data-key': 'approve-all' });
  reviewSlot.body.append(h('div', { class: 'review-bar' }, approveAll, reviewHelp), reviewList);
  approveAll.addEventListener('click', () => void approveAllHeld());
  const renderReview = () => {
    const items = review.held();
    reviewSlot.el.querySelector('h2')!.textContent = t('reviewQueueN', { n: items.length });
    reviewSlot.el.dataset.count = String(items.length);
    (reviewSlot.body.querySelector('.slot-pending') as HTMLElement).hidden = items.length > 0;
    approveAll.hidden = items.length < 2;
    approveAll.textContent = t('approveAll', { n: items.length });
    reviewHelp.textContent = items.length ? t('reviewKeys') : '';
    const focused = (document.activeElement as HTMLElement | null)?.closest('.review-item') as HTMLElement | null;
    const keep = focused ? Number(focused.dataset.seq) : null;
    reviewList.replaceChildren(
      ...items.slice(0, 100).map((c) => {
        const li = h(
          'li',
          { class: 'review-item', tabindex: 0, 'data-seq': String(c.seq), 'aria-label': `${c.name}：${c.text}` },
          h('p', { class: 'review-text' }, h('strong', {}, c.name), '：', c.text),
        );
        const ok = h('button', { type: 'button', class: 'btn small primary', 'data-key': `approve-${c.seq}` }, t('approve'));
        const no = h('button', { type: 'button', class: 'btn small', 'data-key': `reject-${c.seq}`, 'aria-haspopup': 'menu' }, t('reject'));
        ok.addEventListener('click', () => void approve(c.seq));
        no.addEventListener('click', () => void chooseReason(no, t('rejectWhy')).then((r) => r && reject(c.seq, r)));
        li.append(h('div', { class: 'q-actions' }, ok, no));
        return li;
      }),
    );
    if (keep !== null) {
      const again = reviewList.querySelector<HTMLElement>(`[data-seq="${keep}"]`) ?? (review.next(keep) ? reviewList.querySelector<HTMLElement>(`[data-seq="${review.next(keep)!.seq}"]`) : null);
      again?.focus();
    }
  };
  // Keyboard: A approve, R reject (asks the reason), J/↓ next, K/↑ previous.
  reviewList.addEventListener('keydown', (e) => {
    const li = (e.target as HTMLElement).closest('.review-item') as HTMLElement | null;
    if (!li || (e.target as HTMLElement).tagName === 'BUTTON') return;
    const seq = Number(li.dataset.seq);
    const k = e.key.toLowerCase();
    if (k === 'a') {
      e.preventDefault();
      const next = review.next(seq);
      void approve(seq).then(() => {
        if (next && next.seq !== seq) reviewList.querySelector<HTMLElement>(`[data-seq="${next.seq}"]`)?.focus();
      });
    } else if (k === 'r') {
      e.preventDefault();
      const no = li.querySelector<HTMLButtonElement>(`[data-key="reject-${seq}"]`)!;
      void chooseReason(no, t('rejectWhy')).then((r) => r && reject(seq, r));
    } else if (k === 'j' || e.key === 'ArrowDown') {
      e.preventDefault();
      (li.nextElementSibling as HTMLElement | null)?.focus();
    } else if (k === 'k' || e.key === 'ArrowUp') {
      e.preventDefault();
      (li.previousElementSibling as HTMLElement | null)?.focus();
    }
  });

  const status = statusLine(() => conn);
  const you = h('p', { class: 'you muted' });
  const policy = slot('policy', () => t('policy'), () => t('loading'));
  const questions = slot('question-queue', () => t('questionQueue'), () => t('loading'));
  const floor = slot('floor', () => t('floor'), () => t('loading'));
  const sanctions = slot('sanctions', () => t('sanctions'), () => t('sanctionsNone'));
  const audit = slot('audit', () => t('auditLog'), () => t('auditNone'));
  const auditList = h('ol', { class: 'audit' });
  audit.body.append(auditList);
  const renderAudit = () => {
    const entries = store.audit.slice(-50).reverse();
    (audit.body.querySelector('.slot-pending') as HTMLElement | null)?.toggleAttribute('hidden', entries.length > 0);
    const look = {
      name: (id: string) => store.knownName(id) ?? (id === conn?.you?.id ? conn.you.name : null),
      comment: (seq: number) => list.get(seq) ?? approvedCopies.get(seq) ?? null,
      question: (id: number) => store.questions.get(id)?.text ?? null,
    };
    auditList.replaceChildren(
      ...entries.map((e) => {
        const l = auditLine(e, look);
        return h(
          'li',
          { title: e.hash, 'data-action': e.action },
          h('span', { class: 'audit-n' }, `${l.n}.`),
          ' ',
          h('time', { datetime: new Date(e.at_ms).toISOString() }, l.time),
          ' ',
          h('strong', {}, l.actor),
          `：${l.what}${l.reason}`,
        );
      }),
    );
  };
  store.onChange(renderAudit);
  i18n(renderAudit);

  // The chair's view of the room: joins the room's media receive-only, on request.
  let roomMedia: RoomMedia | null = null;
  const grid = new RoomGrid(() => roomMedia, (p) => store.nameOf(p), () => conn?.you?.id ?? null);
  const videoSlot = slot('room-video', () => t('roomVideo'), () => '');
  const watchBtn = h('button', { type: 'button', class: 'btn small', 'data-key': 'watch-room', 'aria-pressed': 'false' });
  videoSlot.body.replaceChildren(watchBtn, grid.el);
  grid.el.hidden = true;
  let watching = false;
  watchBtn.addEventListener('click', () => {
    if (!roomMedia) return;
    watching = !watching;
    grid.el.hidden = !watching;
    watchBtn.setAttribute('aria-pressed', String(watching));
    if (watching) void roomMedia.join().catch(fail);
    else void roomMedia.leave();
    labels();
  });

  const commentsH = h('h2', { id: 'console-comments-h' });
  const who = { id: () => conn?.you?.id ?? null, moderator: true };
  policyPanel(policy.body, store, () => conn, reviewOff);
  questionsPanel(questions.body, store, () => conn, who, activity);
  floorPanel(floor.body, store, () => conn, who);
  sanctionsPanel(sanctions.body, store, () => conn);

  const consensus = new ConsensusStore();
  const consensusSlot = slot('consensus', consensusTitles.console, () => '');
  consensusConsole(consensusSlot.body, consensus, () => conn);
  const pageHeader = header(() => (title ? `${title} · ${t('consoleTitle')}` : t('consoleTitle')));
  root.replaceChildren(
    pageHeader,
    h(
      'main',
      { class: 'console' },
      h(
        'section',
        { class: 'comments', 'aria-labelledby': 'console-comments-h' },
        h('div', { class: 'comments-head' }, commentsH, h('span', { class: 'held-count', 'aria-live': 'polite' })),
        you,
        status.el,
        hideMsg,
        list.root,
        composer(() => conn, () => conn?.limits?.max_text_chars ?? 500),
      ),
      h('div', { class: 'stage' }, programmeNotice(activity), reviewSlot.el, videoSlot.el, floor.el, questions.el, consensusSlot.el, policy.el, sanctions.el, audit.el),
    ),
  );
  const heldCount = root.querySelector('.held-count') as HTMLElement;
  let shownSize = -1;
  /** The held count and the review panel, when the queue changed. */
  const counts = (force = false) => {
    if (!force && review.size === shownSize) return;
    shownSize = review.size;
    heldCount.textContent = review.size ? t('heldCount', { n: review.size }) : '';
    renderReview();
  };
  const labels = () => {
    commentsH.textContent = t('commentsAll');
    watchBtn.textContent = watching ? t('stopWatchingRoom') : t('watchRoom');
    if (conn?.you) you.textContent = t('you', { name: conn.you.name, role: t(`role_${conn.you.role}`) });
    list.relabel();
    counts(true);
  };
  i18n(labels);
  let settledSeen = 0;
  store.onChange(() => {
    review.handleModes(store.modes);
    if (store.settled.size !== settledSeen) {
      settledSeen = store.settled.size;
      for (const seq of store.settled) review.settle(seq);
      list.refresh();
    }
    counts();
    grid.relabel();
  });
  void getActivity(activity)
    .then((a) => {
      title = a.title;
      pageHeader.refresh();
    })
    .catch(() => undefined);
  const learn = (items: Item[]) => {
    for (const i of items) {
      if (!isComment(i.body)) continue;
      store.learnName(i.body.author.id, i.body.author.name);
      // The held original leaves the list when its public copy arrives; the audit log still names it.
      if (typeof i.body.approves === 'number') {
        approvedCopies.set(i.body.approves, { name: i.body.author.name, text: i.body.text });
        if (approvedCopies.size > 500) approvedCopies.delete(approvedCopies.keys().next().value as number);
      }
    }
  };
  let mediaOn = 0;
  conn = new Connection(activity, async (fresh) => (fresh ? null : token), {
    state: (s) => {
      status.update(s);
      if (s.kind === 'live' && watching && roomMedia && conn && conn.stats.connects !== mediaOn) {
        mediaOn = conn.stats.connects;
        void roomMedia.rejoin().catch(() => undefined);
      }
    },
    welcome: (w) => {
      you.textContent = t('you', { name: w.you.name, role: t(`role_${w.you.role}`) });
      store.learnName(w.you.id, w.you.name);
    },
    items: (items) => {
      learn(items);
      review.handleItems(items);
      list.push(items);
      counts();
    },
    reset: (items) => {
      learn(items);
      review.handleItems(items);
      list.replace(items);
      counts();
    },
    consultState: (st) => {
      store.applyState(st);
      review.handleModes(st.comment_modes);
      review.handleState(st.held);
      list.refresh();
      counts();
      if (conn) void consensus.refresh(conn).catch(() => undefined);
    },
    consensusEvent: (e) => consensus.applyEvent(e),
    consultEvent: (e) => {
      if (e.t === 'comment_modes') review.handleModes(e.modes);
      if (e.t === 'comment_held') review.handleHeld(e.comment);
      if (e.t === 'comment_rejected') review.settle(e.seq);
      store.applyEvent(e);
      if (e.t === 'comment_held' || e.t === 'comment_rejected') {
        list.refresh();
        counts();
      }
    },
    mediaEvent: (e) => void roomMedia?.handle(e),
  });
  roomMedia = new RoomMedia(conn, {
    track: (tr, s, r) => grid.addTrack(tr, s, r),
    gone: (tr, s) => grid.removeTrack(tr, s),
    speaker: (p) => grid.setAnnounced(p),
    state: () => undefined,
  });
  conn.start();
  exposeForTests({ conn, list, store, consensus, review, grid, tiles: () => grid.describe() });
}
