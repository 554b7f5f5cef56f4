// The watch page's video box: a <video> any player can play into (WHEP today; the HLS player in
// media/player.ts plugs in the same way), and everything around it that does not depend on the
// transport — the "直播尚未开始" / reconnecting overlay, a live badge, the speaker's lower-third,
// sound and fullscreen buttons, and a slot for player controls (e.g. a latency switch).
//
// The box watches the element itself: frames presented (requestVideoFrameCallback, or the
// playback-quality counter) tell "playing" from "no picture yet" and from "frozen on the last
// frame". A player only reports its transport state:
//
//   const box = new VideoBox();
//   box.setActivityState('live');                      // from GET /api/activities/{id}
//   player = new SomePlayer(box.video, (s) => box.setTransport(s));
//   box.controls.append(latencyToggle);                // optional player controls
//   box.setSpeaker('王委员', '委员');                   // from the floor state

import { t } from './i18n';
import { h, i18n } from './ui';

export type Transport = 'idle' | 'connecting' | 'playing' | 'failed' | 'closed';
export type BoxState = 'not-started' | 'ended' | 'connecting' | 'waiting' | 'playing' | 'stalled' | 'reconnecting';

/** Frames this narrow are the livestream programme's holding picture, not a camera. */
export const HOLDING_PICTURE_MAX_WIDTH = 32;

/** No new frame for this long while connected: the picture froze (publisher gone, network). */
export const STALL_MS = 3000;

/** What the box shows, from what it knows (pure). */
export function boxState(activity: 'scheduled' | 'live' | 'ended' | null, transport: Transport, everFrame: boolean, msSinceFrame: number): BoxState {
  if (activity === 'ended') return 'ended';
  if (activity === 'scheduled' || transport === 'idle' || transport === 'closed') return 'not-started';
  if (transport === 'failed') return 'reconnecting';
  if (transport === 'connecting') return everFrame ? 'reconnecting' : 'connecting';
  if (!everFrame) return 'waiting';
  return msSinceFrame > STALL_MS ? 'stalled' : 'playing';
}

export class VideoBox {
  readonly el: HTMLElement;
  readonly video: HTMLVideoElement;
  /** Player controls go here (bottom bar, next to sound and fullscreen). */
  readonly controls: HTMLElement;
  private readonly overlay: HTMLElement;
  private readonly overlayText: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly lower: HTMLElement;
  private readonly sound: HTMLButtonElement;
  private readonly full: HTMLButtonElement;
  private activity: 'scheduled' | 'live' | 'ended' | null = null;
  private transport: Transport = 'idle';
  private frames = 0;
  private lastFrameAt = 0;
  private state: BoxState = 'not-started';
  private speaker: { name: string; role: string } | null = null;

  constructor() {
    this.video = h('video', { class: 'live-video', autoplay: true, playsinline: true, muted: true });
    this.video.muted = true;
    this.overlayText = h('p', { class: 'video-overlay-text' });
    this.overlay = h('div', { class: 'video-overlay', role: 'status', 'aria-live': 'polite' }, this.overlayText);
    this.badge = h('span', { class: 'live-badge', hidden: true });
    this.lower = h('div', { class: 'lower-third', hidden: true, 'aria-live': 'polite' });
    this.sound = h('button', { type: 'button', class: 'vbtn sound', 'aria-pressed': 'false' });
    this.full = h('button', { type: 'button', class: 'vbtn fullscreen' });
    this.controls = h('div', { class: 'video-controls' }, this.sound, this.full);
    this.el = h('div', { class: 'video-box', 'data-state': 'not-started' }, this.video, this.overlay, this.badge, this.lower, this.controls);
    this.sound.addEventListener('click', () => {
      this.video.muted = !this.video.muted;
      if (!this.video.muted) void this.video.play().catch(() => undefined);
      this.render();
    });
    this.full.addEventListener('click', () => void this.toggleFullscreen());
    document.addEventListener('fullscreenchange', () => this.render());
    this.watchFrames();
    window.setInterval(() => this.render(), 1000);
    i18n(() => this.render());
  }

  setActivityState(s: 'scheduled' | 'live' | 'ended'): void {
    this.activity = s;
    this.render();
  }

  setTransport(s: Transport): void {
    this.transport = s;
    this.render();
  }

  /** The speaker's lower-third (null: nobody holds the floor). */
  setSpeaker(name: string | null, role = ''): void {
    this.speaker = name ? { name, role } : null;
    this.render();
  }

  current(): BoxState {
    return this.state;
  }

  private async toggleFullscreen(): Promise<void> {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else if (this.el.requestFullscreen) await this.el.requestFullscreen();
      else (this.video as HTMLVideoElement & { webkitEnterFullscreen?: () => void }).webkitEnterFullscreen?.();
    } catch {
      /* refused (no user gesture, or not allowed): nothing to do */
    }
    this.render();
  }

  private watchFrames(): void {
    const v = this.video as HTMLVideoElement & { requestVideoFrameCallback?: (cb: () => void) => number };
    const seen = () => {
      // The programme's holding picture (32x18, while no camera is on air) is not a picture.
      if (v.videoWidth > 0 && v.videoWidth <= HOLDING_PICTURE_MAX_WIDTH) return;
      this.frames++;
      const was = this.lastFrameAt;
      this.lastFrameAt = performance.now();
      if (!was || this.state !== 'playing') this.render();
    };
    if (v.requestVideoFrameCallback) {
      const loop = () => {
        seen();
        v.requestVideoFrameCallback!(loop);
      };
      v.requestVideoFrameCallback(loop);
    } else {
      let last = 0;
      window.setInterval(() => {
        const n = v.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
        if (n > last) seen();
        last = n;
      }, 500);
    }
  }

  private render(): void {
    // A hidden tab presents no frames: do not call that a stall.
    const since = document.hidden ? 0 : performance.now() - this.lastFrameAt;
    this.state = boxState(this.activity, this.transport, this.frames > 0, since);
    const s = this.state;
    this.el.dataset.state = s;
    const text: Record<BoxState, string> = {
      'not-started': t('videoNotLive'),
      ended: t('videoEnded'),
      connecting: t('videoConnecting'),
      waiting: t('videoNotLive'),
      playing: '',
      stalled: t('videoStalled'),
      reconnecting: t('videoFailed'),
    };
    this.overlayText.textContent = text[s];
    this.overlay.hidden = s === 'playing';
    this.overlay.classList.toggle('over-picture', s === 'stalled' || s === 'reconnecting');
    this.badge.hidden = s !== 'playing' && s !== 'stalled';
    this.badge.textContent = t('liveBadge');
    this.lower.hidden = !this.speaker || (s !== 'playing' && s !== 'stalled');
    this.lower.textContent = this.speaker ? `${t('lowerThird', { name: this.speaker.name })}${this.speaker.role ? ` · ${this.speaker.role}` : ''}` : '';
    this.sound.textContent = this.video.muted ? t('unmute') : t('mute');
    this.sound.setAttribute('aria-pressed', String(!this.video.muted));
    this.sound.hidden = s !== 'playing' && s !== 'stalled';
    const fs = !!document.fullscreenElement;
    this.full.textContent = fs ? t('exitFullscreen') : t('fullscreen');
    this.full.setAttribute('aria-pressed', String(fs));
  }
}
