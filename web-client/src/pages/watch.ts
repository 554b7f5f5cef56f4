// The public watch page: video slot, pinned question and questions slots, the live comment
// stream with a composer, the viewer count. Gets a viewer token by itself.

import { ApiError, getActivity, storedNickname, viewerToken } from '../api';
import { CommentList } from '../commentList';
import { Connection } from '../connection';
import { WhepPlayer, type WhepState } from '../media/whep';
import { ConsultStore } from '../consult';
import { pinnedPanel, questionsPanel } from '../consultUi';
import { t } from '../i18n';
import { composer, errorText, formatCount, h, header, i18n, slot, statusLine } from '../ui';

// Every viewer polls: 100k viewers at 20 s ≈ 5k cheap GETs per second across the cluster.
const VIEWER_POLL_MS = 20_000;

export function watch(root: HTMLElement, activity: string): void {
  let title = activity;
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
    nameBtn.setAttribute('aria-label', t('changeNameLabel'));
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
  conn = new Connection(activity, tokens, {
    consultState: (st) => store.applyState(st),
    consultEvent: (e) => store.applyEvent(e),
    state: (s) => {
      status.update(s);
      // The count includes this page once it is subscribed: refresh it then.
      if (s.kind === 'live') window.setTimeout(() => void refreshViewers(), 500);
    },
    items: (items) => list.push(items),
    reset: (items, reason) => {
      list.replace(items);
      resetNote.hidden = reason === 'first';
      resetNote.textContent = t('resetNotice');
    },
  });

  const video = slot('video', () => t('videoSlot'), () => t('videoPending'));
  video.body.classList.add('video-box');
  // The livestream over WHEP (receive-only; no token needed for a public livestream). Muted
  // autoplay is what browsers allow; a button turns the sound on.
  const videoEl = h('video', { class: 'live-video', autoplay: true, playsinline: true, muted: true, hidden: true });
  videoEl.muted = true;
  const sound = h('button', { type: 'button', class: 'btn small sound', hidden: true, 'aria-pressed': 'false' });
  const videoNote = video.body.querySelector('.slot-pending') as HTMLElement;
  video.body.append(videoEl, sound);
  let videoState: WhepState | 'idle' = 'idle';
  let videoDetail = '';
  const renderVideo = () => {
    sound.textContent = videoEl.muted ? t('unmute') : t('mute');
    sound.setAttribute('aria-pressed', String(!videoEl.muted));
    if (videoState === 'idle') return;
    videoEl.hidden = videoState !== 'playing';
    sound.hidden = videoState !== 'playing';
    videoNote.hidden = videoState === 'playing';
    videoNote.textContent = videoState === 'failed' ? t('videoFailed') : t('videoConnecting');
    video.body.dataset.state = videoState;
  };
  sound.addEventListener('click', () => {
    videoEl.muted = !videoEl.muted;
    renderVideo();
  });
  let player: WhepPlayer | null = null;
  const startVideo = () => {
    if (player) return;
    player = new WhepPlayer(`/whep/${encodeURIComponent(activity)}`, async () => null, videoEl, (st, detail) => {
      videoState = st;
      videoDetail = detail ?? '';
      renderVideo();
    });
    void player.start();
  };
  window.addEventListener('pagehide', () => void player?.stop());
  const pinned = slot('pinned', () => t('pinnedSlot'), () => t('pinnedNone'));
  const questions = slot('questions', () => t('questionsSlot'), () => t('questionsPending'));
  pinnedPanel(pinned.body, store);
  questionsPanel(questions.body, store, () => conn, { id: () => conn?.you?.id ?? null, moderator: false });
  const commentsH = h('h2', { id: 'comments-h' });
  const maxChars = () => conn?.limits?.max_text_chars ?? 500;
  const comments = h(
    'section',
    { class: 'comments', 'aria-labelledby': 'comments-h' },
    h('div', { class: 'comments-head' }, commentsH, viewers),
    status.el,
    resetNote,
    list.root,
    h('div', { class: 'nickbar' }, nameOut, nameBtn, nameInput, nameMsg),
    composer(() => conn, maxChars),
  );
  root.replaceChildren(
    header(() => title),
    h('main', { class: 'watch' }, h('div', { class: 'stage' }, video.el, pinned.el, questions.el), comments),
  );
  i18n(() => {
    commentsH.textContent = t('comments');
    renderViewers();
    renderName();
    renderVideo();
    list.relabel();
  });

  const refreshViewers = async () => {
    try {
      const a = await getActivity(activity);
      viewerCount = a.viewers;
      if (a.kind === 'livestream' && a.state === 'live') startVideo();
      if (a.title !== title) {
        title = a.title;
        document.querySelector('.page-title')!.textContent = title;
        document.title = `${title} · ${t('appName')}`;
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
  (window as unknown as { __shangliang: unknown }).__shangliang = { conn, list, store, video: () => videoState, videoDetail: () => videoDetail };
}
