// The member room: the video grid (websocket media signalling), the floor, microphone, camera and
// screen-share toggles, the activity's comments. Members get a `?token=` link.
//
// What a member must always know: whether they can be heard (the mic button is red while OFF, as
// in Tencent Meeting and Zoom; "全体静音" turns it off), whether they hold the floor ("你正在发言"
// with a countdown bar and a warning before the time runs out), and — in a livestream's room —
// that their camera may be seen by the public.

import { getActivity, urlToken } from '../api';
import { CommentList } from '../commentList';
import { Connection } from '../connection';
import { ConsultStore } from '../consult';
import { floorPanel } from '../consultUi';
import { RoomMedia } from '../media/room';
import { t } from '../i18n';
import { RoomGrid } from '../roomGrid';
import { turnView } from '../rules';
import { composer, h, header, i18n, slot, statusLine } from '../ui';
import { formatDuration } from '../auditText';
import { exposeForTests } from '../testHook';

export function room(root: HTMLElement, activity: string): void {
  const token = urlToken(activity);
  let conn: Connection | null = null;
  let title = '';
  let kind: 'livestream' | 'room' | null = null;
  const list = new CommentList({ cap: 2000 });
  const status = statusLine(() => conn);
  const you = h('p', { class: 'you muted' });
  const store = new ConsultStore();
  let roomMedia: RoomMedia | null = null;
  const me = () => conn?.you?.id ?? null;
  const grid = new RoomGrid(() => roomMedia, (p) => store.nameOf(p), me);
  const gridSlot = slot('video-grid', () => t('videoGrid'), () => '');
  gridSlot.body.replaceChildren(grid.el);

  // Outgoing media: each kind is its own stream; the publisher swaps tracks in place.
  let mic: MediaStreamTrack | null = null;
  let camera: MediaStreamTrack | null = null;
  let screen: MediaStreamTrack | null = null;
  /** The connection (by count) media was joined on. */
  let mediaOn = 0;
  const micBtn = h('button', { type: 'button', class: 'btn media-btn', 'data-media': 'mic', 'aria-pressed': 'false' });
  const camBtn = h('button', { type: 'button', class: 'btn media-btn', 'data-media': 'camera', 'aria-pressed': 'false' });
  const screenBtn = h('button', { type: 'button', class: 'btn media-btn', 'data-media': 'screen', 'aria-pressed': 'false' });
  const mediaMsg = h('p', { class: 'media-msg', role: 'status', 'aria-live': 'polite' });
  // In a livestream's room: 直播中 while this member reaches the public (on the stage, holding
  // the floor, or pinned), else a note that only the room sees them.
  const stageNote = h('p', { class: 'stage-note', role: 'status', 'aria-live': 'polite', hidden: true });
  const apply = () => {
    micBtn.setAttribute('aria-pressed', String(!!mic));
    camBtn.setAttribute('aria-pressed', String(!!camera));
    screenBtn.setAttribute('aria-pressed', String(!!screen));
    grid.setLocal(camera ? new MediaStream([camera]) : null, screen ? new MediaStream([screen]) : null, !!mic);
    void roomMedia?.setTracks({ audio: mic, video: camera, screen }).catch(() => undefined);
    labels();
  };
  const stop = (tr: MediaStreamTrack | null) => tr?.stop();
  const toggle = async (which: 'mic' | 'camera' | 'screen') => {
    mediaMsg.textContent = '';
    try {
      if (which === 'mic') {
        if (mic) {
          stop(mic);
          mic = null;
        } else mic = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0] ?? null;
      } else if (which === 'camera') {
        if (camera) {
          stop(camera);
          camera = null;
        } else camera = (await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } } })).getVideoTracks()[0] ?? null;
      } else if (screen) {
        stop(screen);
        screen = null;
      } else {
        screen = (await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })).getVideoTracks()[0] ?? null;
        if (screen) {
          screen.contentHint = 'detail';
          // The browser's own "stop sharing" bar ends the track.
          screen.addEventListener('ended', () => {
            if (screen?.readyState === 'ended') {
              screen = null;
              apply();
            }
          });
        }
      }
    } catch (e) {
      mediaMsg.textContent = t('mediaDenied', { what: t(which === 'mic' ? 'mic' : which === 'camera' ? 'camera' : 'screenShare'), msg: e instanceof Error ? e.name : String(e) });
      return;
    }
    apply();
  };
  micBtn.addEventListener('click', () => void toggle('mic'));
  camBtn.addEventListener('click', () => void toggle('camera'));
  screenBtn.addEventListener('click', () => void toggle('screen'));
  if (!navigator.mediaDevices?.getDisplayMedia) screenBtn.hidden = true;

  // 全体静音: the server stops forwarding every member's audio; the member's own mic goes off too,
  // so the button never claims they can be heard when they cannot.
  store.onEvent((e) => {
    if (e.t === 'floor' && e.k === 'muted_all' && conn?.you?.role !== 'moderator') {
      if (mic) {
        stop(mic);
        mic = null;
        apply();
      }
      mediaMsg.textContent = t('mutedByChair');
    }
  });

  // "你正在发言": a banner with a countdown bar while this member holds the floor.
  const bannerText = h('strong', { class: 'turn-text' });
  const bannerClock = h('span', { class: 'turn-clock' });
  const bar = h('span', { class: 'turn-bar-fill' });
  const banner = h('div', { class: 'turn-banner', role: 'status', 'aria-live': 'polite', hidden: true }, bannerText, bannerClock, h('span', { class: 'turn-bar', 'aria-hidden': 'true' }, bar));
  let warned = false;
  const renderTurn = () => {
    const v = turnView(store.floor, me(), Date.now());
    banner.hidden = !v.mine;
    if (!v.mine) {
      warned = false;
      return;
    }
    bannerText.textContent = mic || conn?.you?.role === 'moderator' ? t('youAreSpeaking') : t('youHaveFloorMicOff');
    bannerClock.textContent = v.leftMs === null ? '' : v.over ? t('overtime', { s: Math.round(-v.leftMs / 1000) }) : t('remaining', { s: Math.round(v.leftMs / 1000) });
    bar.style.width = `${(v.fraction * 100).toFixed(1)}%`;
    banner.dataset.level = v.over ? 'over' : v.warn ? 'warn' : 'ok';
    if (v.warn && !warned) {
      warned = true;
      bannerClock.setAttribute('aria-live', 'assertive');
      mediaMsg.textContent = t('turnEndingSoon', { left: formatDuration(Math.max(0, Math.round((v.leftMs ?? 0) / 1000) * 1000)) });
    }
  };
  store.onChange(renderTurn);
  window.setInterval(renderTurn, 500);

  const renderStage = () => {
    const live = kind === 'livestream' || store.livestream;
    const id = me();
    const onAir = live && !!id && store.onAir.has(id);
    stageNote.textContent = !live ? '' : onAir ? t('onAirYou') : store.available ? t('offAirYou') : t('livestreamRoomNote');
    stageNote.classList.toggle('on-air', onAir);
    stageNote.dataset.onAir = String(onAir);
    stageNote.hidden = !live;
  };
  const controls = h('div', { class: 'controls', role: 'toolbar' }, micBtn, camBtn, screenBtn);
  const floor = slot('floor', () => t('floor'), () => t('loading'));
  // A moderator in the room chairs from here too (上台/下台, the floor).
  floorPanel(floor.body, store, () => conn, {
    id: me,
    get moderator() {
      return conn?.you?.role === 'moderator';
    },
  });
  const commentsH = h('h2', { id: 'room-comments-h' });
  const pageHeader = header(() => (title ? `${title} · ${t('roomTitle')}` : t('roomTitle')));
  const labels = () => {
    // Visible text = accessible name; aria-pressed carries on/off, the title the hint.
    micBtn.textContent = mic ? t('micOnState') : t('micOffState');
    micBtn.title = mic ? t('micOn') : t('micOff');
    camBtn.textContent = camera ? t('camOnState') : t('camOffState');
    camBtn.title = camera ? t('camOn') : t('camOff');
    screenBtn.textContent = screen ? t('screenStop') : t('screenStart');
    controls.setAttribute('aria-label', t('mediaControls'));
    commentsH.textContent = t('comments');
    renderStage();
    if (conn?.you) you.textContent = t('you', { name: conn.you.name, role: t(`role_${conn.you.role}`) });
    list.relabel();
    renderTurn();
  };

  root.replaceChildren(
    pageHeader,
    h(
      'main',
      { class: 'room' },
      h('div', { class: 'stage' }, banner, gridSlot.el, controls, mediaMsg, stageNote, floor.el),
      h('section', { class: 'comments', 'aria-labelledby': 'room-comments-h' }, commentsH, you, status.el, list.root, composer(() => conn, () => conn?.limits?.max_text_chars ?? 500)),
    ),
  );
  i18n(labels);
  store.onChange(() => grid.relabel());
  store.onChange(() => renderStage());
  void getActivity(activity)
    .then((a) => {
      title = a.title;
      kind = a.kind;
      pageHeader.refresh();
      labels();
    })
    .catch(() => undefined);
  conn = new Connection(activity, async (fresh) => (fresh ? null : token), {
    consultState: (st) => store.applyState(st),
    consultEvent: (e) => store.applyEvent(e),
    state: (s) => {
      status.update(s);
      // A new connection starts media from scratch (the hub forgets it with the socket).
      if (s.kind === 'live' && roomMedia && conn && conn.stats.connects !== mediaOn) {
        const first = mediaOn === 0;
        mediaOn = conn.stats.connects;
        void (first ? roomMedia.join() : roomMedia.rejoin()).catch(() => undefined);
      }
    },
    mediaEvent: (e) => void roomMedia?.handle(e),
    welcome: () => labels(),
    items: (items) => list.push(items),
    reset: (items) => list.replace(items),
  });
  const simulcast = new URLSearchParams(location.search).get('simulcast') !== '0';
  roomMedia = new RoomMedia(conn, {
    track: (tr, s, r) => grid.addTrack(tr, s, r),
    gone: (tr, s) => grid.removeTrack(tr, s),
    speaker: (p) => grid.setAnnounced(p),
    state: () => undefined,
  }, simulcast);
  conn.start();
  exposeForTests({
    conn,
    list,
    store,
    grid,
    media: () => roomMedia,
    tiles: () => grid.describe(),
  });
}
