// The console's notice that a stage publisher's camera cannot go into the livestream programme:
// the programme is built without re-encoding and takes H.264 only, so a publisher that sends
// VP8 alone (some browsers, some WHIP tools) is seen over WebRTC in the room but not by the
// public on HLS. The hub says so in `GET /hls/{activity}/programme.json` (`sources[].usable`);
// the notice polls it while the console is open (moderators only, a handful of requests).
//
//   stage.prepend(programmeNotice(activity));   // hidden while every camera is usable

import { currentLang, onLangChange } from '../i18n';

export interface SourceStatus {
  participant: string;
  kind: 'audio' | 'video' | string;
  mime: string;
  usable: boolean;
}

/** Participants who publish video on stage but none of it usable by the programme, with the
 *  codecs they send (e.g. `video/VP8`). */
export function unusableCameras(sources: readonly SourceStatus[]): { participant: string; mimes: string[] }[] {
  const video = sources.filter((s) => s.kind === 'video');
  const out: { participant: string; mimes: string[] }[] = [];
  for (const p of new Set(video.map((s) => s.participant))) {
    const theirs = video.filter((s) => s.participant === p);
    if (theirs.every((s) => !s.usable)) out.push({ participant: p, mimes: [...new Set(theirs.map((s) => s.mime))] });
  }
  return out;
}

/** `member:王委员` → `王委员` (the subject's name part, as the console shows people). */
function shown(participant: string): string {
  const i = participant.indexOf(':');
  return i >= 0 ? participant.slice(i + 1) : participant;
}

const TEXT = {
  'zh-CN': (who: string, mimes: string) => `注意：${who} 的摄像头只发送 ${mimes}，未进入直播节目（直播观众看不到其画面，仍能听到声音）。请改用能发送 H.264 的浏览器或推流软件。`,
  en: (who: string, mimes: string) => `Note: ${who} sends ${mimes} only, which is not in the livestream programme (the public hears but does not see them). Use a browser or encoder that sends H.264.`,
};

const POLL_MS = 5000;

export function programmeNotice(activity: string, base = ''): HTMLElement {
  const el = document.createElement('p');
  el.className = 'programme-notice panel-msg';
  el.setAttribute('role', 'status');
  el.hidden = true;
  let bad: { participant: string; mimes: string[] }[] = [];
  const render = () => {
    const say = currentLang() === 'en' ? TEXT.en : TEXT['zh-CN'];
    el.textContent = bad.map((b) => say(shown(b.participant), b.mimes.map((m) => m.replace(/^video\//, '')).join('/'))).join(' ');
    el.hidden = bad.length === 0;
    el.dataset.unusable = bad.map((b) => b.participant).join(',');
  };
  onLangChange(render);
  const poll = async () => {
    if (!el.isConnected && el.dataset.started) return; // the console went away
    el.dataset.started = '1';
    try {
      const r = await fetch(`${base}/hls/${encodeURIComponent(activity)}/programme.json`, { cache: 'no-store' });
      if (r.status === 404) return; // a room: no programme, nothing to say
      if (r.ok) {
        const st = (await r.json()) as { programme?: { sources?: SourceStatus[] } };
        bad = unusableCameras(st.programme?.sources ?? []);
        render();
      }
    } catch {
      // The next poll tries again.
    }
    window.setTimeout(() => void poll(), POLL_MS);
  };
  void poll();
  return el;
}
