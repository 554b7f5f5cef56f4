// The livestream player of the watch page: the programme over LL-HLS by default (hls.js, loaded
// only when needed; Safari's own HLS where MSE is missing), WebRTC (WHEP) as "低延迟" while the
// node accepts it, falling back to HLS by itself when WHEP is refused or fails. The latency shown
// is measured, not claimed: for HLS it is now minus the programme date-time (EXT-X-PROGRAM-DATE-TIME)
// of the frame on screen; WebRTC gives no such clock here, so it says "not measured".
//
//   const p = new Player({ activity, video: box.video });   // plays into the page's <video>
//   box.controls.append(p.controls);                       // 低延迟 toggle + latency
//   p.onStatus = (s) => box.setTransport(transportOf(s));  void p.start();   await p.stop();
//
// Without a `video`, the player makes its own (`p.el`: video, sound button, controls, note), so
// it can also be placed on a page that has no video box.

import type HlsType from 'hls.js';
import { currentLang, onLangChange } from '../i18n';
import { WhepPlayer } from './whep';

export type PlayerMode = 'hls' | 'whep';
export type PlayerState = 'idle' | 'connecting' | 'playing' | 'waiting' | 'offline';

export interface PlayerStatus {
  mode: PlayerMode;
  state: PlayerState;
  /** Glass-to-glass estimate in ms (HLS: now − programme date-time on screen); null if unknown. */
  latencyMs: number | null;
  /** Why the mode is not the one asked for (`whep_refused`), or what failed. */
  detail: string;
}

export interface PlayerOptions {
  activity: string;
  /** Origin of the hub (default: this page's). */
  base?: string;
  /** The element to play into (the watch page's video box); made by the player if absent. */
  video?: HTMLVideoElement;
}

/** The video box's transport states (see `videoBox.ts`), from a player status. */
export function transportOf(s: PlayerStatus): 'idle' | 'connecting' | 'playing' | 'failed' | 'closed' {
  switch (s.state) {
    case 'idle':
      return 'idle';
    case 'playing':
    case 'waiting':
    // Reached the hub but there is nothing to play (not on air yet, or interrupted): the box,
    // which watches the frames, then says "直播尚未开始" before the first picture and "stalled"
    // after one.
    case 'offline':
      return 'playing';
    case 'connecting':
      return 'connecting';
  }
}

const STRINGS = {
  'zh-CN': {
    lowLatency: '低延迟',
    lowLatencyOn: '低延迟（WebRTC）已开启，点击切回标准',
    lowLatencyOff: '切换到低延迟（WebRTC）',
    latency: '延迟约 {s} 秒',
    latencyUnknown: '低延迟 · 未测量',
    connecting: '正在连接直播画面…',
    waiting: '正在缓冲…',
    offline: '直播暂未开播或已中断，稍后自动重试',
    fellBack: '低延迟通道暂不可用，已切换到标准直播',
    unmute: '打开声音',
    mute: '静音',
  },
  en: {
    lowLatency: 'Low latency',
    lowLatencyOn: 'Low latency (WebRTC) is on; click for standard',
    lowLatencyOff: 'Switch to low latency (WebRTC)',
    latency: 'about {s} s behind',
    latencyUnknown: 'Low latency · not measured',
    connecting: 'Connecting to the video…',
    waiting: 'Buffering…',
    offline: 'Not on air yet, or interrupted; retrying',
    fellBack: 'Low latency is not available now; switched to the standard stream',
    unmute: 'Unmute',
    mute: 'Mute',
  },
} as const;

function s(key: keyof (typeof STRINGS)['en'], vars: Record<string, string> = {}): string {
  const table = currentLang() === 'en' ? STRINGS.en : STRINGS['zh-CN'];
  return table[key].replace(/\{(\w+)\}/g, (_, k: string) => vars[k] ?? '');
}

type HlsCtor = typeof HlsType;
let hlsModule: Promise<HlsCtor> | null = null;
/** hls.js (the light build: no subtitles, DRM or alternate audio) is fetched on first use. */
export function loadHls(): Promise<HlsCtor> {
  hlsModule ??= import('hls.js/light').then((m) => m.default);
  return hlsModule;
}

// Scoped styles, so the player looks right wherever the page puts it (the page's own CSS wins).
const CSS = `
.player { position: absolute; inset: 0; }
.player .player-bar { position: absolute; left: .5rem; right: .5rem; bottom: .5rem; display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
.player .player-bar .sound { position: static; }
.player-controls { display: inline-flex; gap: .4rem; align-items: center; flex-wrap: wrap; }
.player-controls .player-note { margin: 0; font-size: .8rem; color: #eee; background: rgba(0,0,0,.55); padding: .1rem .4rem; border-radius: 4px; }
.player-controls .latency { color: #eee; background: rgba(0,0,0,.55); padding: .1rem .4rem; border-radius: 4px; font-size: .8rem; }
.player-controls .latency:empty { display: none; }
.player-controls .low-latency[aria-pressed="true"] { outline: 2px solid #e0a800; }
.player .player-note { position: absolute; left: 0; right: 0; top: 40%; margin: 0; text-align: center; color: #ccc; }
`;
let styled = false;
function addStyles(): void {
  if (styled) return;
  styled = true;
  const st = document.createElement('style');
  st.textContent = CSS;
  document.head.prepend(st);
}

export class Player {
  /** The standalone element (own video), or the controls when playing into a given video. */
  readonly el: HTMLElement;
  readonly video: HTMLVideoElement;
  /** 低延迟 toggle and latency: to put beside the page's own video controls. */
  readonly controls: HTMLElement;
  onStatus: ((s: PlayerStatus) => void) | null = null;
  status: PlayerStatus = { mode: 'hls', state: 'idle', latencyMs: null, detail: '' };

  private readonly sound: HTMLButtonElement | null;
  private readonly modeBtn: HTMLButtonElement;
  private readonly latency: HTMLElement;
  private readonly note: HTMLElement;
  private hls: HlsType | null = null;
  private whep: WhepPlayer | null = null;
  private retry: number | undefined;
  private ticker: number | undefined;
  private generation = 0;
  private readonly url: string;
  private readonly statusUrl: string;
  private readonly whepUrl: string;

  constructor(opts: PlayerOptions) {
    addStyles();
    const base = opts.base ?? '';
    const a = encodeURIComponent(opts.activity);
    this.url = `${base}/hls/${a}/index.m3u8`;
    this.statusUrl = `${base}/hls/${a}/programme.json`;
    this.whepUrl = `${base}/whep/${a}`;
    this.modeBtn = document.createElement('button');
    this.modeBtn.type = 'button';
    this.modeBtn.className = 'btn small low-latency';
    this.latency = document.createElement('span');
    this.latency.className = 'latency';
    this.latency.setAttribute('role', 'status');
    this.note = document.createElement('p');
    this.note.className = 'player-note';
    this.note.setAttribute('role', 'status');
    this.controls = document.createElement('span');
    this.controls.className = 'player-controls';
    this.controls.append(this.modeBtn, this.latency);
    if (opts.video) {
      // The page owns the video, its sound button and its overlay (state texts).
      this.modeBtn.className = 'vbtn low-latency';
      this.video = opts.video;
      this.sound = null;
      this.note.hidden = true;
      this.controls.append(this.note);
      this.el = this.controls;
    } else {
      this.el = document.createElement('div');
      this.el.className = 'player';
      this.video = document.createElement('video');
      this.video.className = 'live-video';
      // Muted autoplay is what browsers allow; the sound button turns it on.
      this.video.muted = true;
      this.video.autoplay = true;
      this.video.playsInline = true;
      this.video.setAttribute('playsinline', '');
      const sound = document.createElement('button');
      sound.type = 'button';
      sound.className = 'btn small sound';
      sound.addEventListener('click', () => {
        this.video.muted = !this.video.muted;
        if (!this.video.muted) void this.video.play().catch(() => undefined);
        this.render();
      });
      this.sound = sound;
      const bar = document.createElement('div');
      bar.className = 'player-bar';
      bar.append(sound, this.controls);
      this.el.append(this.video, bar, this.note);
    }
    this.modeBtn.addEventListener('click', () => void this.setMode(this.status.mode === 'hls' ? 'whep' : 'hls'));
    for (const ev of ['playing', 'waiting', 'stalled'] as const) {
      this.video.addEventListener(ev, () => this.set({ state: ev === 'playing' ? 'playing' : 'waiting' }));
    }
    onLangChange(() => this.render());
    this.render();
  }

  /** Starts playing in `mode` (HLS unless told otherwise). */
  async start(mode: PlayerMode = 'hls'): Promise<void> {
    await this.setMode(mode);
    window.clearInterval(this.ticker);
    this.ticker = window.setInterval(() => this.measure(), 1000);
  }

  /** Switches between the programme over HLS and WebRTC. */
  async setMode(mode: PlayerMode, detail = ''): Promise<void> {
    const gen = ++this.generation;
    this.teardown();
    this.set({ mode, state: 'connecting', latencyMs: null, detail });
    if (mode === 'whep') this.startWhep(gen);
    else await this.startHls(gen);
  }

  async stop(): Promise<void> {
    this.generation++;
    window.clearInterval(this.ticker);
    this.teardown();
    this.set({ state: 'idle', latencyMs: null });
  }

  /** Now minus the programme date-time of the frame on screen, in ms (HLS only). */
  latencyMs(): number | null {
    if (this.status.mode !== 'hls') return null;
    const date = this.hls?.playingDate ?? nativeDate(this.video);
    return date ? Math.max(0, Date.now() - date.getTime()) : null;
  }

  private teardown(): void {
    window.clearTimeout(this.retry);
    this.hls?.destroy();
    this.hls = null;
    const w = this.whep;
    this.whep = null;
    void w?.stop();
    this.video.removeAttribute('src');
    this.video.srcObject = null;
  }

  /** Whether the programme has a segment to play (asked before the playlist, so that a
   *  livestream that has not started is a quiet wait rather than a failing request). */
  private async onAir(): Promise<boolean> {
    try {
      const r = await fetch(this.statusUrl, { cache: 'no-store' });
      if (!r.ok) return false;
      const st = (await r.json()) as { playable?: boolean };
      return st.playable === true;
    } catch {
      return false;
    }
  }

  private async startHls(gen: number): Promise<void> {
    if (!(await this.onAir())) {
      if (gen !== this.generation) return;
      this.set({ state: 'offline', latencyMs: null });
      // Polled with jitter: many viewers waiting for the start do not ask in step.
      this.retry = window.setTimeout(() => void this.setMode('hls', this.status.detail), 2500 + Math.random() * 2500);
      return;
    }
    const Hls = await loadHls().catch(() => null);
    if (gen !== this.generation) return;
    if (Hls && Hls.isSupported()) {
      const hls = new Hls({
        lowLatencyMode: true,
        backBufferLength: 10,
        // Catch up to the live edge by playing a little faster rather than jumping.
        maxLiveSyncPlaybackRate: 1.2,
        liveDurationInfinity: true,
      });
      this.hls = hls;
      hls.on(Hls.Events.MANIFEST_PARSED, () => void this.video.play().catch(() => undefined));
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (!data.fatal || gen !== this.generation) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
          return;
        }
        // Not on air yet (503), or the network went away: start over in a moment.
        this.set({ state: 'offline', latencyMs: null });
        this.retry = window.setTimeout(() => void this.setMode('hls', this.status.detail), 3000);
      });
      hls.loadSource(this.url);
      hls.attachMedia(this.video);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      // Safari without MSE plays (LL-)HLS itself.
      this.video.src = this.url;
      void this.video.play().catch(() => undefined);
    } else {
      this.set({ state: 'offline', detail: 'no_hls_support' });
    }
  }

  private startWhep(gen: number): void {
    let connected = false;
    this.whep = new WhepPlayer(this.whepUrl, async () => null, this.video, (st, why) => {
      if (gen !== this.generation) return;
      if (st === 'playing') {
        connected = true;
        this.set({ state: 'playing' });
      } else if (st === 'failed') {
        // Refused (the node is full) or broken: back to HLS by itself, and say why. Deferred:
        // the WHEP player arms its own retry right after telling us, and stopping it then
        // clears that retry.
        console.info(`low latency unavailable (${why ?? 'unknown'}); playing HLS`);
        window.setTimeout(() => {
          if (gen === this.generation) void this.setMode('hls', connected ? 'whep_failed' : 'whep_refused');
        }, 0);
      }
    });
    void this.whep.start();
  }

  private measure(): void {
    if (this.status.mode === 'hls') this.set({ latencyMs: this.latencyMs() });
  }

  private set(patch: Partial<PlayerStatus>): void {
    this.status = { ...this.status, ...patch };
    this.render();
    this.onStatus?.(this.status);
    this.el.dataset.mode = this.status.mode;
    this.el.dataset.state = this.status.state;
  }

  private render(): void {
    const st = this.status;
    if (this.sound) {
      this.sound.textContent = this.video.muted ? s('unmute') : s('mute');
      this.sound.setAttribute('aria-pressed', String(!this.video.muted));
    }
    this.modeBtn.textContent = s('lowLatency');
    this.modeBtn.setAttribute('aria-pressed', String(st.mode === 'whep'));
    this.modeBtn.title = st.mode === 'whep' ? s('lowLatencyOn') : s('lowLatencyOff');
    this.modeBtn.setAttribute('aria-label', this.modeBtn.title);
    this.latency.textContent =
      st.mode === 'whep' ? s('latencyUnknown') : st.latencyMs === null ? '' : s('latency', { s: (st.latencyMs / 1000).toFixed(1) });
    const note =
      st.state === 'offline'
        ? s('offline')
        : st.state === 'connecting'
          ? s('connecting')
          : st.state === 'waiting'
            ? s('waiting')
            : st.detail === 'whep_refused' || st.detail === 'whep_failed'
              ? s('fellBack')
              : '';
    // With the page's video box, its overlay says connecting/waiting; the note only explains a
    // fallback.
    const shown = this.sound ? note : st.detail === 'whep_refused' || st.detail === 'whep_failed' ? s('fellBack') : '';
    this.note.textContent = shown;
    this.note.hidden = shown === '';
  }
}

/** Safari's native HLS exposes the programme date-time of the stream's start. */
function nativeDate(v: HTMLVideoElement): Date | null {
  const getStartDate = (v as unknown as { getStartDate?: () => Date }).getStartDate;
  if (!getStartDate) return null;
  const start = getStartDate.call(v);
  const t = start?.getTime();
  return t && Number.isFinite(t) ? new Date(t + v.currentTime * 1000) : null;
}
