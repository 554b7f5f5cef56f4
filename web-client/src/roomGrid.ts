// The video grid of a room, for the member room and the moderator console: one tile per
// participant (their camera, or their name when the camera is off) plus one per extra video track
// (a screen share), named by display name, with a muted mark and a speaking highlight.
//
// Why it measures audio itself: the server announces the dominant speaker only when it changes
// (`active_speaker`), never "nobody", so a highlight driven by it alone stays on whoever spoke
// last. Every 400 ms the grid reads the subscriber's inbound audio (packets arriving, level): a
// participant is *muted* when no audio packet arrived for 1.5 s (mic off, or not given the floor in
// a chaired room — either way nobody hears them), and the highlight goes to the announced speaker
// while they are audible, else to the loudest audible participant, else to nobody.
// Each video tile asks the SFU for the simulcast layer that fits its width.

import { parseStreamId, type RoomMedia } from './media/room';
import { t } from './i18n';
import { h, i18n } from './ui';

const POLL_MS = 400;
const SILENT_AFTER_MS = 1500;
const LOUD_WINDOW_MS = 1200;
/** No video frame for this long: the camera is off or the share stopped (longer than a layer
 * switch or a keyframe wait takes, so a tile does not flicker). */
const VIDEO_STOPPED_MS = 4000;
/** No frame on the layer asked for this long: ask for the next lower one. */
const LAYER_WAIT_MS = 2500;
/** On a lower layer than wanted: try the wanted one again after this long. */
const LAYER_RETRY_MS = 20_000;
/** Inbound `audioLevel` (0..1, linear) above which someone counts as speaking. */
export const SPEAKING_LEVEL = 0.03;

interface AudioState {
  track: MediaStreamTrack;
  el: HTMLAudioElement;
  packets: number;
  lastPacketAt: number;
  lastLoudAt: number;
  level: number;
}

interface Tile {
  key: string;
  participant: string;
  track: number | null;
  el: HTMLElement;
  video: HTMLVideoElement;
  caption: HTMLElement;
  name: HTMLElement;
  mute: HTMLElement;
  /** The layer asked of the SFU now, and the one the tile's width wants. */
  rid: string;
  want: string;
  /** When the layer was last asked for. */
  ridAt: number;
  second: boolean;
  /** Frames decoded at the last poll, and when that count last grew. */
  frames: number;
  lastFrameAt: number;
}

/** Who is audible and who gets the highlight (pure; `now` and the audio states are inputs). */
export function speakingState(
  audio: { participant: string; lastPacketAt: number; lastLoudAt: number }[],
  announced: string | null,
  now: number,
): { muted: Set<string>; speaking: string | null } {
  const muted = new Set<string>();
  let loudest: { p: string; at: number } | null = null;
  let announcedAudible = false;
  for (const a of audio) {
    if (now - a.lastPacketAt > SILENT_AFTER_MS) {
      muted.add(a.participant);
      continue;
    }
    if (now - a.lastLoudAt <= LOUD_WINDOW_MS) {
      if (a.participant === announced) announcedAudible = true;
      if (!loudest || a.lastLoudAt > loudest.at) loudest = { p: a.participant, at: a.lastLoudAt };
    }
  }
  return { muted, speaking: announcedAudible ? announced : loudest?.p ?? null };
}

export class RoomGrid {
  readonly el: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly tiles = new Map<string, Tile>();
  private readonly audio = new Map<string, AudioState>();
  /** Participants that have published audio at all (a tile without it is "no microphone"). */
  private announced: string | null = null;
  private local: Tile | null = null;
  private localScreen: Tile | null = null;
  private localMuted = true;
  private timer = 0;
  private readonly sizes: ResizeObserver;
  speaking: string | null = null;

  constructor(
    private readonly media: () => RoomMedia | null,
    private readonly nameOf: (participant: string) => string,
    private readonly me: () => string | null,
  ) {
    this.empty = h('p', { class: 'grid-empty' });
    this.el = h('div', { class: 'video-grid' }, this.empty);
    this.sizes = new ResizeObserver((entries) => {
      for (const e of entries) {
        const tile = [...this.tiles.values()].find((x) => x.el === e.target);
        if (tile) this.chooseLayer(tile, e.contentRect.width);
      }
    });
    i18n(() => this.relabel());
  }

  /** Shows this participant's own camera / screen (null: none). */
  setLocal(camera: MediaStream | null, screen: MediaStream | null, micOn: boolean): void {
    this.localMuted = !micOn;
    const me = this.me() ?? 'me';
    if (camera || micOn) {
      this.local ??= this.makeTile(`local`, me, null, false, true);
      this.local.video.srcObject = camera;
      this.local.el.classList.toggle('no-video', !camera);
    } else if (this.local) {
      this.local.el.remove();
      this.local = null;
    }
    if (screen) {
      this.localScreen ??= this.makeTile('local-screen', me, null, true, true);
      this.localScreen.video.srcObject = screen;
    } else if (this.localScreen) {
      this.localScreen.el.remove();
      this.localScreen = null;
    }
    this.relabel();
  }

  /** A remote track (from RoomMedia's view). */
  addTrack(track: MediaStreamTrack, stream: MediaStream, receiver: RTCRtpReceiver): void {
    void receiver;
    const { participant, track: num } = parseStreamId(stream.id);
    if (track.kind === 'audio') {
      const el = h('audio', { autoplay: true, class: 'remote-audio', 'data-participant': participant });
      el.srcObject = new MediaStream([track]);
      this.el.append(el);
      this.audio.get(participant)?.el.remove();
      this.audio.set(participant, { track, el, packets: 0, lastPacketAt: performance.now(), lastLoudAt: 0, level: 0 });
      this.ensurePersonTile(participant);
      this.startPolling();
      this.relabel();
      return;
    }
    // A participant's first published video track (the SFU numbers tracks in publishing order)
    // goes into their person tile; a later one (a screen share) gets a tile of its own. The SFU
    // does not say which track is the camera (a server item), so a screen shared before the
    // camera was turned on takes the person tile.
    const person = this.ensurePersonTile(participant);
    let tile: Tile;
    if (!person.video.srcObject || person.track === num) {
      tile = person;
      tile.track = num;
    } else {
      if (num !== null && person.track !== null && num < person.track) {
        // An earlier track arrived later: it belongs in the person tile; the other moves out.
        const moved = person.video.srcObject as MediaStream;
        const other = this.tiles.get(`${participant}#${person.track}`) ?? this.makeTile(`${participant}#${person.track}`, participant, person.track, true, false);
        other.video.srcObject = moved;
        other.track = person.track;
        other.el.dataset.track = String(person.track);
        this.sizes.observe(other.el);
        person.track = num;
        person.rid = '';
        tile = person;
      } else {
        const key = `${participant}#${num ?? stream.id}`;
        tile = this.tiles.get(key) ?? this.makeTile(key, participant, num, true, false);
      }
    }
    tile.video.srcObject = new MediaStream([track]);
    tile.frames = 0;
    tile.lastFrameAt = performance.now();
    tile.el.classList.remove('no-video', 'stopped');
    tile.el.dataset.track = String(num ?? '');
    this.sizes.observe(tile.el);
    this.startPolling();
    this.relabel();
  }

  /** A remote track ended. */
  removeTrack(track: MediaStreamTrack, stream: MediaStream): void {
    const { participant } = parseStreamId(stream.id);
    if (track.kind === 'audio') {
      const a = this.audio.get(participant);
      if (a && a.track === track) {
        a.el.remove();
        this.audio.delete(participant);
      }
    } else {
      for (const tile of [...this.tiles.values()]) {
        const v = tile.video.srcObject as MediaStream | null;
        if (tile.participant !== participant || !v?.getTracks().includes(track)) continue;
        if (tile.second) {
          this.sizes.unobserve(tile.el);
          tile.el.remove();
          this.tiles.delete(tile.key);
        } else {
          tile.video.srcObject = null;
          tile.el.classList.add('no-video');
        }
      }
    }
    // A participant with neither audio nor video left: no tile.
    const person = this.tiles.get(participant);
    if (person && !person.video.srcObject && !this.audio.has(participant)) {
      this.sizes.unobserve(person.el);
      person.el.remove();
      this.tiles.delete(participant);
    }
    this.relabel();
  }

  /** The server's dominant-speaker announcement. */
  setAnnounced(participant: string): void {
    this.announced = participant;
    this.updateSpeaking();
  }

  /** Tiles for tests: participant, whether speaking, muted, the name shown. */
  describe(): { participant: string; name: string; speaking: boolean; muted: boolean; video: boolean; local: boolean }[] {
    return [...this.el.querySelectorAll<HTMLElement>('.tile:not(.stopped)')].map((el) => ({
      participant: el.dataset.participant ?? '',
      name: el.querySelector('.tile-name')?.textContent ?? '',
      speaking: el.classList.contains('speaking'),
      muted: el.classList.contains('muted'),
      video: !el.classList.contains('no-video'),
      local: el.classList.contains('local'),
    }));
  }

  relabel(): void {
    this.empty.textContent = t('gridEmpty');
    this.empty.hidden = this.tiles.size > 0 || !!this.local || !!this.localScreen;
    for (const tile of [...this.tiles.values(), ...(this.local ? [this.local] : []), ...(this.localScreen ? [this.localScreen] : [])]) {
      const local = tile === this.local || tile === this.localScreen;
      const name = local ? t('youTile') : this.nameOf(tile.participant);
      tile.name.textContent = tile.second ? t('screenTile', { name }) : name;
      tile.mute.setAttribute('aria-label', t('tileMuted'));
      tile.mute.title = t('tileMuted');
    }
    if (this.local) this.local.el.classList.toggle('muted', this.localMuted);
    this.updateSpeaking();
  }

  private ensurePersonTile(participant: string): Tile {
    let tile = this.tiles.get(participant);
    if (!tile) {
      tile = this.makeTile(participant, participant, null, false, false);
      tile.el.classList.add('no-video');
    }
    return tile;
  }

  private makeTile(key: string, participant: string, track: number | null, second: boolean, local: boolean): Tile {
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    const name = h('span', { class: 'tile-name' });
    const mute = h('span', { class: 'tile-muted', role: 'img' }, micOffIcon());
    const caption = h('figcaption', {}, name, mute);
    const initial = h('span', { class: 'tile-initial', 'aria-hidden': 'true' });
    const el = h('figure', { class: `tile${local ? ' local' : ' remote'}${second ? ' second' : ''}`, 'data-participant': participant }, video, initial, caption);
    const tile: Tile = { key, participant, track, el, video, caption, name, mute, rid: '', want: '', ridAt: 0, second, frames: 0, lastFrameAt: performance.now() };
    if (!local) this.tiles.set(key, tile);
    const n = local ? t('youTile') : this.nameOf(participant);
    initial.textContent = [...n][0] ?? '';
    // Local tiles first, screen shares at the front of their group.
    if (local) this.el.prepend(el);
    else this.el.insertBefore(el, this.empty);
    return tile;
  }

  private chooseLayer(tile: Tile, width: number): void {
    const m = this.media();
    if (!m || tile.track === null || !tile.video.srcObject) return;
    const rid = width * devicePixelRatio < 360 ? 'q' : width * devicePixelRatio < 800 ? 'h' : 'f';
    tile.want = rid;
    tile.el.dataset.want = rid;
    this.askLayer(tile, rid);
  }

  private askLayer(tile: Tile, rid: string): void {
    const m = this.media();
    if (!m || tile.track === null || rid === tile.rid) return;
    tile.rid = rid;
    tile.ridAt = performance.now();
    tile.el.dataset.layer = rid;
    void m.setLayer(tile.track, rid as 'q' | 'h' | 'f').catch(() => undefined);
  }

  /**
   * A sender may not send every layer (Chrome drops the top ones under CPU load or for a small
   * camera), and the SFU forwards only the layer asked for: a tile that gets no frames on its
   * layer steps down (f → h → q), and tries the layer it wants again after a while.
   */
  private adaptLayer(tile: Tile, now: number): void {
    if (tile.track === null || !tile.rid) return;
    const order = ['q', 'h', 'f'];
    const starving = now - tile.lastFrameAt > LAYER_WAIT_MS && now - tile.ridAt > LAYER_WAIT_MS;
    const i = order.indexOf(tile.rid);
    if (starving && i > 0) this.askLayer(tile, order[i - 1]);
    else if (!starving && order.indexOf(tile.want) > i && now - tile.ridAt > LAYER_RETRY_MS) this.askLayer(tile, tile.want);
  }

  private startPolling(): void {
    if (this.timer) return;
    this.timer = window.setInterval(() => void this.poll(), POLL_MS);
  }

  private async poll(): Promise<void> {
    const stats = await this.media()?.subscriberStats()?.catch(() => null);
    if (!stats) return this.updateSpeaking();
    const now = performance.now();
    const byTrack = new Map<string, AudioState>();
    for (const a of this.audio.values()) byTrack.set(a.track.id, a);
    const videoTiles = new Map<string, Tile>();
    for (const tile of this.tiles.values()) {
      const tr = (tile.video.srcObject as MediaStream | null)?.getVideoTracks()[0];
      if (tr) videoTiles.set(tr.id, tile);
    }
    stats.forEach((s: { type: string; kind?: string; trackIdentifier?: string; packetsReceived?: number; audioLevel?: number; framesDecoded?: number }) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && s.trackIdentifier) {
        // A camera turned off or a screen share stopped sends nothing (the track stays
        // published): show the name instead of a frozen last frame, and drop the second tile.
        const tile = videoTiles.get(s.trackIdentifier);
        if (!tile) return;
        const n = s.framesDecoded ?? 0;
        if (n > tile.frames) tile.lastFrameAt = now;
        tile.frames = n;
        return;
      }
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio' || !s.trackIdentifier) return;
      const a = byTrack.get(s.trackIdentifier);
      if (!a) return;
      const packets = s.packetsReceived ?? 0;
      if (packets > a.packets) a.lastPacketAt = now;
      a.packets = packets;
      a.level = s.audioLevel ?? 0;
      if (a.level > SPEAKING_LEVEL && packets > 0 && a.lastPacketAt === now) a.lastLoudAt = now;
    });
    // A participant with two video tracks whose person tile stopped while the other flows: the
    // flowing one takes the person tile (the SFU does not say which track is the camera, and
    // numbers tracks in its own order), so one tile with a live picture remains.
    for (const tile of videoTiles.values()) {
      if (!tile.second || now - tile.lastFrameAt > VIDEO_STOPPED_MS) continue;
      const person = this.tiles.get(tile.participant);
      if (!person || person === tile || !person.video.srcObject || now - person.lastFrameAt <= VIDEO_STOPPED_MS) continue;
      const keep = { src: person.video.srcObject, track: person.track, rid: person.rid, frames: person.frames, at: person.lastFrameAt };
      person.video.srcObject = tile.video.srcObject;
      person.track = tile.track;
      person.rid = tile.rid;
      person.frames = tile.frames;
      person.lastFrameAt = tile.lastFrameAt;
      tile.video.srcObject = keep.src;
      tile.track = keep.track;
      tile.rid = keep.rid;
      tile.frames = keep.frames;
      tile.lastFrameAt = keep.at;
      person.el.dataset.track = String(person.track ?? '');
      tile.el.dataset.track = String(tile.track ?? '');
      person.el.dataset.layer = person.rid;
      tile.el.dataset.layer = tile.rid;
      person.rid = '';
      this.chooseLayer(person, person.el.getBoundingClientRect().width);
    }
    // Every video tile, whether or not a packet ever arrived on it (no packet, no stats entry).
    for (const tile of videoTiles.values()) {
      const stopped = now - tile.lastFrameAt > VIDEO_STOPPED_MS;
      this.adaptLayer(tile, now);
      if (tile.second) tile.el.classList.toggle('stopped', stopped);
      else tile.el.classList.toggle('no-video', stopped);
    }
    this.updateSpeaking();
  }

  private updateSpeaking(): void {
    const now = performance.now();
    const st = speakingState(
      [...this.audio.entries()].map(([participant, a]) => ({ participant, lastPacketAt: a.lastPacketAt, lastLoudAt: a.lastLoudAt })),
      this.announced,
      now,
    );
    this.speaking = st.speaking;
    for (const tile of this.tiles.values()) {
      tile.el.classList.toggle('speaking', !tile.second && tile.participant === st.speaking);
      tile.el.classList.toggle('muted', !tile.second && (st.muted.has(tile.participant) || !this.audio.has(tile.participant)));
    }
  }
}

/** A crossed-out microphone (no emoji: phones and servers without an emoji font show a box). */
function micOffIcon(): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '16');
  svg.setAttribute('height', '16');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of ['M12 3a3 3 0 0 0-3 3v5a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M5 11a7 7 0 0 0 14 0M12 18v3', 'M4 4l16 16']) {
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    p.setAttribute('fill', 'none');
    p.setAttribute('stroke', 'currentColor');
    p.setAttribute('stroke-width', '2');
    p.setAttribute('stroke-linecap', 'round');
    svg.append(p);
  }
  return svg;
}
