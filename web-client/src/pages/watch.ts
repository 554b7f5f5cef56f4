// The public watch page, phone first: the video on top (with "直播尚未开始", a live badge, the
// speaker's lower-third, a reconnecting overlay, sound and fullscreen), the question on stage
// directly under it, then 评论 / 提问 tabs (both side by side on a wide screen) with the composer
// kept at the bottom of the screen. Gets a viewer token by itself.

import { ApiError, getActivity, storedNickname, viewerToken } from '../api';
import { CommentList } from '../commentList';
import { Connection } from '../connection';
import { Player, transportOf } from '../media/player';
import { ConsultStore } from '../consult';
import { pinnedPanel, questionsPanel } from '../consultUi';
import { t, type I18nKey } from '../i18n';
import { composeRule } from '../rules';
import type { HeldComment } from '../protocol';
import { composer, errorText, formatCount, h, header, i18n, slot, statusLine } from '../ui';
import { VideoBox } from '../videoBox';
import { ConsensusStore, consensusTitles, pollCard, statementCard } from '../consensus';
import { exposeForTests } from '../testHook';

// Every viewer polls the activity (its state and title; the viewer count is pushed over the
// websocket): 100k viewers at 20 s ≈ 5k cheap GETs per second across the cluster.
const VIEWER_POLL_MS = 20_000;

export function watch(root: HTMLElement, activity: string): void {
  let title = '';
  let conn: Connection | null = null;
  const list = new CommentList();
  const status = statusLine(() => conn);
  const viewers = h('span', { class: 'viewers', role: 'status', 'aria-live': 'off' });
  let viewerCount: number | null = null;
  const renderViewers = () => {
    viewers.textContent = viewerCount === null ? '' : t('viewers', { n: formatCount(viewerCount) });
    viewers.setAttribute('aria-label', `${t('viewersLabel')}: ${viewerCount ?? '-'}`);
  };

  // Nickname: shown, changeable (a new nickname needs a new token).
  const nameOut = h('span', { class: 'nick' });
  const nameBtn = h('button', { type: 'button', class: 'link' });
  const nameInput = h('input', { type: 'text', maxlength: 32, class: 'nick-input', hidden: true, autocomplete: 'nickname' });
  const nameMsg = h('span', { class: 'nick-msg', role: 'alert' });
  let nickname = storedNickname();
  let tokenError = '';
  const renderName = () => {
    nameOut.textContent = `${t('nickname')}：${nickname}`;
    nameBtn.textContent = t('changeName');
    nameBtn.title = t('changeNameLabel');
    nameInput.setAttribute('aria-label', t('nicknameLabel'));
    nameMsg.textContent = tokenError;
  };
  nameBtn.addEventListener('click', () => {
    nameInput.hidden = false;
    nameInput.value = nickname;
    nameInput.focus();
    nameInput.select();
  });
  nameInput.addEventListener('keydown', async (e) => {
    if (e.key === 'Escape') {
      nameInput.hidden = true;
      nameBtn.focus();
    }
    if (e.key !== 'Enter') return;
    e.preventDefault();
    const wanted = nameInput.value.trim();
    if (!wanted) return;
    try {
      const tok = await viewerToken(activity, true, wanted);
      nickname = tok.name;
      tokenError = '';
      nameInput.hidden = true;
      nameBtn.focus();
      conn?.stop();
      conn?.start();
    } catch (err) {
      tokenError = err instanceof ApiError ? errorText(err.code, { msg: err.message }) : String(err);
    }
    renderName();
  });

  const tokens = async (fresh: boolean): Promise<string | null> => {
    try {
      const tok = await viewerToken(activity, fresh, nickname);
      nickname = tok.name;
      tokenError = '';
      renderName();
      return tok.token;
    } catch (err) {
      tokenError = t('tokenFailed', { msg: err instanceof ApiError ? errorText(err.code, { msg: err.message }) : String(err) });
      renderName();
      throw err;
    }
  };

  const resetNote = h('p', { class: 'reset-note', role: 'status', hidden: true });
  const store = new ConsultStore();
  const maxChars = () => conn?.limits?.max_text_chars ?? 500;
  const compose = composer(() => conn, maxChars, {
    rules: () => (store.available && conn?.you ? composeRule(store.modes, conn.you, conn.lastPostAckMs, Date.now()) : null),
    // One's own held comment is shown to oneself (the server sends it to moderators only).
    sent: (ack, text) => {
      const you = conn?.you;
      if (!ack.held || !you) return;
      ownHeld.set(ack.seq, { seq: ack.seq, at_ms: Date.now(), author: { id: you.id, name: you.name, role: you.role, verified: you.verified }, text: text.trim() });
      showOwnHeld();
    },
  });
  store.onChange(() => compose.refresh());

  // The video box; the player plays into box.video and reports its transport state.
  const box = new VideoBox();
  const video = slot('video', () => t('videoSlot'), () => '');
  video.body.replaceChildren(box.el);
  let videoState = 'idle';
  let videoDetail = '';
  // The livestream: the programme over LL-HLS, WebRTC (WHEP) as "低延迟" (media/player.ts).
  // Muted autoplay is what browsers allow; the box's button turns the sound on.
  const player = new Player({ activity, video: box.video });
  box.controls.append(player.controls);
  player.onStatus = (st) => {
    videoState = st.state;
    videoDetail = st.detail;
    box.setTransport(transportOf(st));
  };
  let videoStarted = false;
  const startVideo = () => {
    if (videoStarted) return;
    videoStarted = true;
    void player.start();
  };
  window.addEventListener('pagehide', () => void player.stop());
  store.onChange(() => {
    // The lower-third names who the public sees: the floor holder if on air, else the one
    // participant on air (a livestream's stage; a room or an older hub: the floor holder).
    const holder = store.floor.holder;
    const onAir = [...store.onAir];
    const shown = !store.livestream ? holder : holder && store.onAir.has(holder) ? holder : onAir.length === 1 ? onAir[0] : null;
    const p = shown ? store.present.get(shown) : undefined;
    box.setSpeaker(shown ? store.nameOf(shown) : null, p ? t(`role_${p.role}` as I18nKey) : '');
  });

  // One's own held comments, as the server lists them (state.held, comment_held): shown as 审核中
  // until approved (the public copy replaces it) or rejected.
  const ownHeld = new Map<number, HeldComment>();
  const showOwnHeld = () => {
    for (const c of ownHeld.values()) {
      list.insertPending({ seq: c.seq, ts: c.at_ms, authorId: c.author.id, name: c.author.name, role: c.author.role, verified: !!c.author.verified, text: c.text });
    }
  };
  const dropOwnHeld = (seq: number) => {
    if (!ownHeld.delete(seq)) return;
    list.push([{ seq: 0, ts: Date.now(), body: { k: 'hide', target: seq } }]);
  };
  const consensus = new ConsensusStore();
  conn = new Connection(activity, tokens, {
    consensusEvent: (e) => consensus.applyEvent(e),
    consultState: (st) => {
      store.applyState(st);
      ownHeld.clear();
      for (const c of st.held ?? []) if (c.author.id === conn?.you?.id) ownHeld.set(c.seq, c);
      showOwnHeld();
      if (conn) void consensus.refresh(conn).catch(() => undefined);
    },
    consultEvent: (e) => {
      if (e.t === 'comment_held' && e.comment.author.id === conn?.you?.id) {
        ownHeld.set(e.comment.seq, e.comment);
        showOwnHeld();
      }
      // Approved: its public copy replaces it in the list; rejected: it goes.
      if (e.t === 'comment_approved') ownHeld.delete(e.seq);
      if (e.t === 'comment_rejected') dropOwnHeld(e.seq);
      store.applyEvent(e);
    },
    state: (s) => {
      status.update(s);
      // The count includes this page once it is subscribed: refresh it then.
      if (s.kind === 'live') window.setTimeout(() => void refreshViewers(), 500);
      compose.refresh();
    },
    items: (items) => {
      list.push(items);
      if (ownHeld.size) showOwnHeld();
    },
    reset: (items, reason) => {
      list.replace(items);
      showOwnHeld();
      resetNote.hidden = reason === 'first';
      resetNote.textContent = t('resetNotice');
    },
  });

  const pinned = slot('pinned', () => t('onStageSlot'), () => t('pinnedNone'));
  const questions = slot('questions', () => t('questionsSlot'), () => t('loading'));
  pinnedPanel(pinned.body, store);
  questionsPanel(questions.body, store, () => conn, { id: () => conn?.you?.id ?? null, moderator: false }, activity);
  const commentsH = h('h2', { id: 'comments-h' });

  // 评论 / 提问 tabs (a phone shows one at a time; a wide screen shows both and hides the tabs).
  const main = h('main', { class: 'watch', 'data-tab': 'comments' });
  const tab = (name: 'comments' | 'questions') =>
    h('button', { type: 'button', role: 'tab', class: 'tab', id: `tab-${name}`, 'aria-controls': `panel-${name}`, 'data-tab': name, 'aria-selected': String(name === 'comments') });
  const tabComments = tab('comments');
  const tabQuestions = tab('questions');
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, tabComments, tabQuestions);
  const select = (name: string) => {
    main.dataset.tab = name;
    for (const b of [tabComments, tabQuestions]) {
      const on = b.dataset.tab === name;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
    }
  };
  for (const b of [tabComments, tabQuestions]) b.addEventListener('click', () => select(b.dataset.tab!));
  tabs.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    const next = main.dataset.tab === 'comments' ? tabQuestions : tabComments;
    select(next.dataset.tab!);
    next.focus();
  });
  tabQuestions.tabIndex = -1;

  const comments = h(
    'section',
    { class: 'comments', id: 'panel-comments', role: 'tabpanel', 'aria-labelledby': 'comments-h' },
    h('div', { class: 'comments-head' }, commentsH, viewers),
    status.el,
    resetNote,
    list.root,
    h('div', { class: 'nickbar' }, nameOut, nameBtn, nameInput, nameMsg),
    compose,
  );
  questions.el.id = 'panel-questions';
  questions.el.setAttribute('role', 'tabpanel');
  const pollSlot = slot('poll', consensusTitles.poll, () => '');
  const statementSlot = slot('statement', consensusTitles.statement, () => '');
  pollCard(pollSlot.body, consensus, () => conn);
  statementCard(statementSlot.body, consensus, () => conn);
  main.append(video.el, pinned.el, pollSlot.el, statementSlot.el, tabs, comments, questions.el);
  const pageHeader = header(() => title || t('loading'));
  root.replaceChildren(pageHeader, main);
  const renderTabs = () => {
    const open = store.publicQuestions().filter((q) => q.state !== 'answered').length;
    tabComments.textContent = t('tabComments');
    tabQuestions.textContent = open ? t('tabQuestionsN', { n: open }) : t('tabQuestions');
  };
  store.onChange(renderTabs);
  // The count is pushed over the websocket (`state`, then `audience` events; docs/protocol.md §5.4.2).
  store.onChange(() => {
    if (store.available && store.viewers !== viewerCount) {
      viewerCount = store.viewers;
      renderViewers();
    }
  });
  i18n(() => {
    commentsH.textContent = t('comments');
    renderViewers();
    renderName();
    renderTabs();
    list.relabel();
  });

  const refreshViewers = async () => {
    try {
      const a = await getActivity(activity);
      box.setActivityState(a.kind === 'livestream' ? a.state : a.state === 'ended' ? 'ended' : 'scheduled');
      if (a.kind === 'livestream' && a.state === 'live') startVideo();
      if (a.title !== title) {
        title = a.title;
        pageHeader.refresh();
      }
      renderViewers();
    } catch {
      /* offline: keep the last count */
    }
  };
  const poll = async () => {
    if (!document.hidden) await refreshViewers();
    window.setTimeout(poll, VIEWER_POLL_MS * (0.75 + Math.random() * 0.5));
  };
  void poll();
  conn.start();
  exposeForTests({ conn, list, store, consensus, box, player, video: () => videoState, videoDetail: () => videoDetail, boxState: () => box.current() });
}
