// The replay page `/replay/{activity}`: the session's recording (`/hls/{a}/recording.m3u8`, VOD
// once the livestream ended, a growing EVENT playlist while it runs) played with hls.js from the
// start, the chapters by floor turn beside it (who held the floor when; a click seeks there), and
// the published comments and public questions appearing as the playhead passes their moment
// (seeking back takes the later ones away again). What the page needs comes from the hub as JSON:
//
//   GET /hls/{a}/replay.json     {title, live, playlist, start_ms, duration_ms, chapters, questions}
//   GET /hls/{a}/comments.json   {comments: [{seq, offset_ms, name, text}], next, complete}  (paged)
//
// While the session is still on, both are read again every 15 s. Strings are local (like the
// player's) so this page does not touch the shared tables.

import type HlsType from 'hls.js';
import { currentLang } from '../i18n';
import { loadHls } from '../media/player';
import { h, header, i18n } from '../ui';
import { exposeForTests } from '../testHook';

interface Chapter {
  holder: string;
  name: string;
  start_ms: number;
  end_ms: number | null;
  offset_ms: number;
  duration_ms: number;
}
interface Question {
  id: number | string;
  text: string;
  asker: string | null;
  offset_ms: number;
}
interface ReplayInfo {
  title: string;
  live: boolean;
  playlist: string;
  start_ms: number | null;
  duration_ms: number;
  chapters: Chapter[];
  questions: Question[];
}
interface ReplayComment {
  seq: number;
  offset_ms: number;
  name: string;
  text: string;
}
interface CommentPage {
  comments: ReplayComment[];
  next: number | null;
  complete: boolean;
}

/** One moment on the replay's time line: a comment or a question. */
interface Moment {
  key: string;
  offset_ms: number;
  el: HTMLElement;
}

const STRINGS = {
  'zh-CN': {
    title: '回放',
    chapters: '发言章节',
    comments: '评论与提问',
    noChapters: '本场没有记录到发言轮次',
    noRecording: '本场尚无录像',
    loading: '正在载入回放…',
    failed: '回放暂时无法载入，稍后自动重试',
    live: '直播仍在进行，回放随录制更新',
    question: '提问',
    anonymous: '匿名',
    jump: '跳到 {t}：{name} 发言',
    noHls: '此浏览器无法播放 HLS 回放',
    nothingYet: '播放到评论时刻时，评论会出现在这里',
  },
  en: {
    title: 'Replay',
    chapters: 'Chapters (floor turns)',
    comments: 'Comments and questions',
    noChapters: 'No floor turns were recorded',
    noRecording: 'Nothing of this session was recorded yet',
    loading: 'Loading the replay…',
    failed: 'The replay cannot be loaded now; retrying',
    live: 'The livestream is still on; the replay grows with the recording',
    question: 'Question',
    anonymous: 'anonymous',
    jump: 'Jump to {t}: {name} speaking',
    noHls: 'This browser cannot play the HLS replay',
    nothingYet: 'Comments appear here as the replay reaches their moment',
  },
} as const;

function s(key: keyof (typeof STRINGS)['en'], vars: Record<string, string> = {}): string {
  const table = currentLang() === 'en' ? STRINGS.en : STRINGS['zh-CN'];
  return table[key].replace(/\{(\w+)\}/g, (_, k: string) => vars[k] ?? '');
}

/** `h:mm:ss` or `m:ss` (as the export writes chapter times). */
export function clock(ms: number): string {
  const t = Math.max(0, Math.floor(ms / 1000));
  const [hh, mm, ss] = [Math.floor(t / 3600), Math.floor(t / 60) % 60, t % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return hh > 0 ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

/** The chapter playing at `ms` into the VOD (the last that began at or before it). */
export function chapterAt(chapters: readonly Chapter[], ms: number): number {
  let at = -1;
  chapters.forEach((c, i) => {
    if (c.offset_ms <= ms) at = i;
  });
  return at;
}

const CSS = `
.replay { display: grid; gap: .75rem; grid-template-columns: minmax(0, 2fr) minmax(16rem, 1fr); padding: .75rem; max-width: 80rem; margin: 0 auto; }
.replay .replay-main { display: grid; gap: .5rem; align-content: start; }
.replay .replay-box { position: relative; aspect-ratio: 16 / 9; background: #000; border-radius: 6px; overflow: hidden; }
.replay .replay-video { position: absolute; inset: 0; width: 100%; height: 100%; background: #000; }
.replay .replay-note { margin: 0; font-size: .9rem; color: #666; }
.replay .chapters { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: .35rem; }
.replay .chapters button { border: 1px solid #ccc; background: #fff; border-radius: 4px; padding: .25rem .5rem; cursor: pointer; }
.replay .chapters button[aria-current="true"] { border-color: #c00; background: #fff3f0; font-weight: 600; }
.replay .replay-side { display: grid; gap: .35rem; align-content: start; max-height: 80vh; overflow: auto; }
.replay .replay-moments { list-style: none; margin: 0; padding: 0; display: grid; gap: .3rem; }
.replay .replay-moments li { padding: .25rem .4rem; border-radius: 4px; background: #f6f6f6; }
.replay .replay-moments li.question { background: #eef4ff; }
.replay .replay-moments .at { color: #888; font-size: .8rem; margin-inline-end: .4rem; font-variant-numeric: tabular-nums; }
.replay .replay-moments .who { font-weight: 600; margin-inline-end: .3rem; }
@media (max-width: 48rem) { .replay { grid-template-columns: 1fr; padding: 0; } }
`;

/** Public comments are fetched in pages of this many (the hub's limit). */
const PAGE = 1000;
/** The replay holds at most this many moments (a very long session keeps its first ones). */
const MAX_MOMENTS = 20_000;
const REFRESH_MS = 15_000;

export function replay(root: HTMLElement, activity: string): void {
  const st = document.createElement('style');
  st.textContent = CSS;
  document.head.append(st);
  const a = encodeURIComponent(activity);
  let info: ReplayInfo | null = null;
  const top = header(() => (info?.title ? `${s('title')} · ${info.title}` : s('title')));

  const video = h('video', { class: 'replay-video', controls: true, playsinline: true, preload: 'auto' });
  video.muted = true;
  const note = h('p', { class: 'replay-note', role: 'status' });
  const chapterHead = h('h2', { class: 'replay-h' });
  const chapterList = h('ol', { class: 'chapters' });
  const momentsHead = h('h2', { class: 'replay-h' });
  const momentList = h('ol', { class: 'replay-moments', 'aria-live': 'polite' });
  const empty = h('p', { class: 'replay-note replay-empty' });
  const main = h('section', { class: 'replay-main' }, h('div', { class: 'replay-box' }, video), note, chapterHead, chapterList);
  const side = h('aside', { class: 'replay-side' }, momentsHead, empty, momentList);
  root.replaceChildren(top, h('main', { class: 'replay', 'data-activity': activity }, main, side));

  let noteKey: keyof (typeof STRINGS)['en'] | '' = 'loading';
  let chapterButtons: HTMLButtonElement[] = [];
  const moments: Moment[] = [];
  const seen = new Set<string>();
  let shown = 0; // moments[0..shown) are in the list
  let lastCursor: number | null = null; // comments.json's `next`
  let commentsComplete = false;
  let hls: HlsType | null = null;
  let current = -1;

  const render = () => {
    top.refresh();
    note.textContent = noteKey ? s(noteKey) : '';
    note.hidden = noteKey === '';
    chapterHead.textContent = s('chapters');
    momentsHead.textContent = s('comments');
    empty.textContent = shown === 0 ? s('nothingYet') : '';
    empty.hidden = shown !== 0;
    if (info && info.chapters.length === 0) chapterList.replaceChildren(h('li', { class: 'replay-note', text: s('noChapters') }));
    chapterButtons.forEach((b, i) => {
      const c = info!.chapters[i];
      b.title = s('jump', { t: clock(c.offset_ms), name: c.name });
    });
  };
  i18n(render);

  const drawChapters = () => {
    if (!info) return;
    chapterButtons = info.chapters.map((c) => {
      const b = h('button', { type: 'button', class: 'chapter', 'data-offset-ms': c.offset_ms, 'data-holder': c.holder }, h('span', { class: 'at', text: clock(c.offset_ms) }), ' ', c.name);
      b.addEventListener('click', () => {
        video.currentTime = c.offset_ms / 1000 + 0.05;
        void video.play().catch(() => undefined);
      });
      return b;
    });
    chapterList.replaceChildren(...chapterButtons.map((b) => h('li', {}, b)));
    current = -1;
    render();
    follow();
  };

  const add = (m: Moment) => {
    if (seen.has(m.key) || moments.length >= MAX_MOMENTS) return;
    seen.add(m.key);
    // Kept in order of their moment; the list shows a prefix of it.
    let i = moments.length;
    while (i > 0 && moments[i - 1].offset_ms > m.offset_ms) i--;
    moments.splice(i, 0, m);
    if (i < shown) {
      shown = 0; // re-laid below
      momentList.replaceChildren();
    }
  };

  /** Shows the moments up to the playhead (and takes later ones away after a seek back). */
  const follow = () => {
    const ms = video.currentTime * 1000;
    while (shown < moments.length && moments[shown].offset_ms <= ms) {
      momentList.append(moments[shown].el);
      shown++;
    }
    while (shown > 0 && moments[shown - 1].offset_ms > ms) {
      shown--;
      moments[shown].el.remove();
    }
    if (shown > 0) moments[shown - 1].el.scrollIntoView?.({ block: 'nearest' });
    const now = info ? chapterAt(info.chapters, ms) : -1;
    if (now !== current) {
      current = now;
      chapterButtons.forEach((b, i) => b.setAttribute('aria-current', String(i === now)));
    }
    empty.hidden = shown !== 0;
  };

  const momentEl = (cls: string, ms: number, who: string, text: string, data: Record<string, string | number>) =>
    h('li', { class: cls, ...Object.fromEntries(Object.entries(data).map(([k, v]) => [`data-${k}`, v])) }, h('span', { class: 'at', text: clock(ms) }), h('span', { class: 'who', text: who }), text);

  const loadInfo = async (): Promise<boolean> => {
    const r = await fetch(`/hls/${a}/replay.json`, { cache: 'no-cache' });
    if (r.status === 404) {
      noteKey = 'noRecording';
      render();
      return false;
    }
    if (!r.ok) throw new Error(`replay.json ${r.status}`);
    info = (await r.json()) as ReplayInfo;
    for (const q of info.questions) {
      const who = q.asker ?? s('anonymous');
      add({ key: `q${q.id}`, offset_ms: q.offset_ms, el: momentEl('question', q.offset_ms, `${s('question')} · ${who}`, q.text, { id: String(q.id) }) });
    }
    drawChapters();
    noteKey = info.live ? 'live' : '';
    render();
    return true;
  };

  const loadComments = async () => {
    for (let pages = 0; pages < 100 && !commentsComplete; pages++) {
      const after = lastCursor === null ? '' : `after=${lastCursor}&`;
      const r = await fetch(`/hls/${a}/comments.json?${after}limit=${PAGE}`, { cache: 'no-cache' });
      if (!r.ok) throw new Error(`comments.json ${r.status}`);
      const page = (await r.json()) as CommentPage;
      for (const c of page.comments) add({ key: `c${c.seq}`, offset_ms: c.offset_ms, el: momentEl('comment', c.offset_ms, c.name, c.text, { seq: c.seq }) });
      const last = page.comments.at(-1)?.seq ?? null;
      if (page.next === null) {
        // Read to the head: next time start after the last one seen (a live session grows).
        if (last !== null) lastCursor = last;
        commentsComplete = page.complete;
        break;
      }
      lastCursor = page.next;
    }
    follow();
  };

  const play = async () => {
    const url = `/hls/${a}/${info?.playlist ?? 'recording.m3u8'}`;
    const Hls = await loadHls().catch(() => null);
    if (Hls && Hls.isSupported()) {
      hls = new Hls({ lowLatencyMode: false, startPosition: 0 });
      hls.on(Hls.Events.MANIFEST_PARSED, () => void video.play().catch(() => undefined));
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (data.fatal && data.type === Hls.ErrorTypes.MEDIA_ERROR) hls?.recoverMediaError();
        else if (data.fatal) {
          noteKey = 'failed';
          render();
        }
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = url;
      void video.play().catch(() => undefined);
    } else {
      noteKey = 'noHls';
      render();
    }
  };

  video.addEventListener('timeupdate', follow);
  video.addEventListener('seeked', follow);

  let started = false;
  const refresh = async () => {
    try {
      const have = await loadInfo();
      if (have) {
        await loadComments();
        if (!started) {
          started = true;
          await play();
        }
      }
    } catch (e) {
      console.warn('replay:', e);
      noteKey = 'failed';
      render();
    }
    // Keep up with a session still on (or a recording not made yet).
    if (!info || info.live || !commentsComplete) window.setTimeout(() => void refresh(), REFRESH_MS);
  };
  void refresh();

  exposeForTests({
    replay: () => ({
      t: video.currentTime,
      frames: video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0,
      chapters: info?.chapters.length ?? 0,
      current,
      shown,
      moments: moments.length,
      live: info?.live ?? null,
    }),
    hls: () => hls,
  });
}
