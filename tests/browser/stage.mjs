// The stage behind the chair in Chromium (issue 13, "Broken" 4): 王委员 turns the camera on in the
// livestream's room (/room/demo); 李委员 in the room sees it; the public watch page (/live/demo)
// does not — it says "直播尚未开始" and the programme has no camera — and 王委员's page says they are
// not on stage. The moderator clicks 上台 in the console: the watch page plays 王委员 (lower-third
// with the name) and 王委员's page says 直播中. 下台 takes the camera off the programme again.
//   node stage.mjs <base> <shots>
// Env: SHANGLIANG_MEMBER_TOKEN, SHANGLIANG_MEMBER2_TOKEN, SHANGLIANG_MODERATOR_TOKEN, CHROMIUM.

import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, moderatorConsole, problemCollector, room, until, watchPage } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const tokA = process.env.SHANGLIANG_MEMBER_TOKEN;
const tokB = process.env.SHANGLIANG_MEMBER2_TOKEN;
const tokM = process.env.SHANGLIANG_MODERATOR_TOKEN;
if (!base || !shotDir || !tokA || !tokB || !tokM) {
  console.error('usage: SHANGLIANG_MEMBER_TOKEN=.. SHANGLIANG_MEMBER2_TOKEN=.. SHANGLIANG_MODERATOR_TOKEN=.. node stage.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, check, launch, run } = startRun({ shotDir, totalMs: 200_000 });
const shot = (p, name) => p.bringToFront().then(() => p.screenshot({ path: path.join(shotDir, `${name}.png`) }));
const programmeVideo = (p) => p.evaluate(async () => (await (await fetch('/hls/demo/programme.json')).json()).programme?.video ?? null);
const stageNote = (p) => p.evaluate(() => {
  const n = document.querySelector('.stage-note');
  return { hidden: n.hidden, onAir: n.dataset.onAir, text: n.textContent };
});

async function main() {
  const context = await launch({ headless: true, viewport: { width: 1280, height: 800 }, args: ARGS });
  const c = problemCollector();
  const chair = await moderatorConsole(context, base, tokM, c);
  const a = await room(context, base, tokA, 'room-A', c);
  const b = await room(context, base, tokB, 'room-B', c);
  const viewer = await watchPage(context, base, c);
  const idA = await a.evaluate(() => window.__shangliang.conn.you.id);
  log(`console, room ${idA}, room B and the watch page live`);

  // 王委员 turns the camera and microphone on in the livestream's room.
  await a.bringToFront();
  await a.click('[data-media="camera"]');
  await a.click('[data-media="mic"]');
  await until(b, "A's picture at B (the room sees an ungranted member)", (id) => [...document.querySelectorAll(`.tile.remote[data-participant="${id}"] video`)].some((v) => v.videoWidth > 0), idA, 45_000);
  log('B sees A in the room');

  // The public does not: give the programme time to pick a camera if it were allowed to.
  await viewer.bringToFront();
  await viewer.waitForTimeout(8000);
  const before = await programmeVideo(viewer);
  check(before === null, `the programme shows ${before} before anyone was put on stage`);
  const box = await viewer.evaluate(() => ({ state: window.__shangliang.boxState(), shown: !document.querySelector('.video-overlay').hidden, text: document.querySelector('.video-overlay-text').textContent }));
  check(box.state !== 'playing', `the watch page plays a picture before anyone is on stage: ${JSON.stringify(box)}`);
  check(box.shown && /直播尚未开始/.test(box.text), `the watch page does not say 直播尚未开始: ${JSON.stringify(box)}`);
  const note = await stageNote(a);
  check(!note.hidden && note.onAir === 'false' && !/直播中/.test(note.text), `A's page before 上台: ${JSON.stringify(note)}`);
  await shot(viewer, 'stage-watch-before');
  await shot(a, 'stage-room-before');
  log('not on the public stream before 上台', JSON.stringify(box));

  // The moderator puts 王委员 on stage from the console.
  await chair.bringToFront();
  await until(chair, 'the 上台 button for A', (id) => !!document.querySelector(`[data-key="stage-${id}"]`), idA);
  check((await chair.textContent(`[data-key="stage-${idA}"]`)).trim() === '上台', 'the console button does not say 上台');
  await chair.click(`[data-key="stage-${idA}"]`);
  await until(chair, 'the console shows 下台 and 直播中 for A', (id) => document.querySelector(`[data-key="stage-${id}"]`)?.textContent.trim() === '下台' && !!document.querySelector(`li[data-id="${id}"] .on-air-tag`), idA);
  await until(a, 'A sees 直播中', () => {
    const n = document.querySelector('.stage-note');
    return !n.hidden && n.dataset.onAir === 'true' && /直播中/.test(n.textContent);
  });
  await until(viewer, 'the programme shows A', async (id) => (await (await fetch('/hls/demo/programme.json')).json()).programme?.video === id, idA, 30_000);
  await viewer.bringToFront();
  await until(viewer, 'the watch page plays A', () => window.__shangliang.boxState() === 'playing', null, 60_000);
  const lower = await viewer.evaluate(() => {
    const l = document.querySelector('.lower-third');
    return l.hidden ? '' : l.textContent;
  });
  check(/王委员/.test(lower), `the lower-third does not name 王委员: ${JSON.stringify(lower)}`);
  await shot(viewer, 'stage-watch-on-air');
  await shot(a, 'stage-room-on-air');
  await shot(chair, 'stage-console-on-air');
  log('上台: on the public stream, 直播中 at the member');

  // 下台: off the programme at once, the member's page says so.
  await chair.bringToFront();
  await chair.click(`[data-key="stage-${idA}"]`);
  await until(a, 'A no longer on air', () => document.querySelector('.stage-note').dataset.onAir === 'false');
  await until(viewer, 'the programme drops A', async () => (await (await fetch('/hls/demo/programme.json')).json()).programme?.video === null, null, 10_000);
  await shot(a, 'stage-room-off');
  log('下台: off the public stream');

  check(c.problems.length === 0, `console errors: ${c.problems.join(' | ')}`);
}

run(main);
