// The member room: the video grid (websocket media signalling), the floor, camera/microphone
// toggles, the activity's comments. Members get a `?token=` link.

import { urlToken } from '../api';
import { CommentList } from '../commentList';
import { Connection } from '../connection';
import { ConsultStore } from '../consult';
import { floorPanel } from '../consultUi';
import { RoomMedia } from '../media/room';
import { t } from '../i18n';
import { composer, h, header, i18n, slot, statusLine } from '../ui';

export function room(root: HTMLElement, activity: string): void {
  const token = urlToken(activity);
  let conn: Connection | null = null;
  const list = new CommentList({ cap: 2000 });
  const status = statusLine(() => conn);
  const you = h('p', { class: 'you muted' });

  const grid = slot('video-grid', () => t('videoGrid'), () => t('videoGridPending'));
  grid.body.classList.add('video-grid');
  const localVideo = h('video', { class: 'tile local', muted: true, autoplay: true, playsinline: true, hidden: true });
  localVideo.muted = true;
  grid.body.append(localVideo);
  let stream: MediaStream | null = null;
  let roomMedia: RoomMedia | null = null;
  /** The connection (by count) media was joined on. */
  let mediaOn = 0;
  // Remote participants: one tile per incoming stream.
  const tiles = new Map<string, HTMLVideoElement>();
  const mediaView = {
    stream: (s: MediaStream) => {
      let v = tiles.get(s.id);
      if (!v) {
        v = h('video', { class: 'tile remote', autoplay: true, playsinline: true, 'data-stream': s.id, 'aria-label': s.id });
        tiles.set(s.id, v);
        grid.body.append(v);
        grid.body.querySelector('.slot-pending')?.setAttribute('hidden', '');
      }
      v.srcObject = s;
    },
    gone: (s: MediaStream) => {
      tiles.get(s.id)?.remove();
      tiles.delete(s.id);
    },
    speaker: (p: string) => {
      for (const [id, v] of tiles) v.classList.toggle('speaking', id === p || id.includes(p));
    },
    state: () => undefined,
  };
  const mic = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false' });
  const cam = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false' });
  const media = async (kind: 'audio' | 'video', btn: HTMLButtonElement) => {
    const on = btn.getAttribute('aria-pressed') === 'true';
    if (on) {
      stream?.getTracks().filter((tr) => tr.kind === kind).forEach((tr) => { tr.stop(); stream?.removeTrack(tr); });
    } else {
      try {
        const s = await navigator.mediaDevices.getUserMedia({ [kind]: true });
        stream ??= new MediaStream();
        s.getTracks().forEach((tr) => stream!.addTrack(tr));
      } catch {
        return;
      }
    }
    btn.setAttribute('aria-pressed', String(!on));
    const hasVideo = !!stream?.getVideoTracks().length;
    localVideo.hidden = !hasVideo;
    localVideo.srcObject = hasVideo ? stream : null;
    void roomMedia?.setTracks(stream?.getAudioTracks()[0] ?? null, stream?.getVideoTracks()[0] ?? null).catch(() => undefined);
    labels();
  };
  mic.addEventListener('click', () => void media('audio', mic));
  cam.addEventListener('click', () => void media('video', cam));

  const controls = h('div', { class: 'controls', role: 'toolbar' }, mic, cam);
  const floor = slot('floor', () => t('floor'), () => t('floorPending'));
  const store = new ConsultStore();
  floorPanel(floor.body, store, () => conn, { id: () => conn?.you?.id ?? null, moderator: false });
  const commentsH = h('h2', { id: 'room-comments-h' });
  const labels = () => {
    mic.textContent = mic.getAttribute('aria-pressed') === 'true' ? t('micOn') : t('micOff');
    cam.textContent = cam.getAttribute('aria-pressed') === 'true' ? t('camOn') : t('camOff');
    controls.setAttribute('aria-label', t('mediaControls'));
    commentsH.textContent = t('comments');
    if (conn?.you) you.textContent = t('you', { name: conn.you.name, role: t(`role_${conn.you.role}`) });
    list.relabel();
  };

  root.replaceChildren(
    header(() => `${t('roomTitle')} · ${activity}`),
    h(
      'main',
      { class: 'room' },
      h('div', { class: 'stage' }, grid.el, controls, floor.el),
      h('section', { class: 'comments', 'aria-labelledby': 'room-comments-h' }, commentsH, you, status.el, list.root, composer(() => conn, () => conn?.limits?.max_text_chars ?? 500)),
    ),
  );
  i18n(labels);
  conn = new Connection(activity, async (fresh) => (fresh ? null : token), {
    consultState: (st) => store.applyState(st),
    consultEvent: (e) => store.applyEvent(e),
    state: (s) => {
      status.update(s);
      // A new connection starts media from scratch (the hub forgets it with the socket).
      if (s.kind === 'live' && roomMedia && conn && conn.stats.connects !== mediaOn) {
        mediaOn = conn.stats.connects;
        void roomMedia.rejoin().catch(() => undefined);
      }
    },
    mediaEvent: (e) => void roomMedia?.handle(e),
    welcome: () => labels(),
    items: (items) => list.push(items),
    reset: (items) => list.replace(items),
  });
  roomMedia = new RoomMedia(conn, mediaView);
  conn.start();
  (window as unknown as { __shangliang: unknown }).__shangliang = { conn, list, store, tiles: () => [...tiles.keys()] };
}
