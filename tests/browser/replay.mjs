// The replay page in Chromium: a recorded session (made by tests/browser_replay.rs: a WHIP
// publisher, two floor turns, one comment in each) opened at /replay/demo plays from the start
// through hls.js (currentTime advances, frames are decoded), lists a chapter per floor turn, shows
// the first comment only once the playhead reached its moment, and a click on the second chapter
// seeks there and brings its comment.
//
//   node tests/browser/replay.mjs <base-url> <screenshot-dir>
//   env: CHROMIUM, SHANGLIANG_COMMENT_1, SHANGLIANG_COMMENT_2 (the comments' texts), SHANGLIANG_SPEAKER_B

import { chromium } from 'playwright-core';
import { withTestHook } from './harness.mjs';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is required`);
  return v;
};
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

const dir = mkdtempSync(join(tmpdir(), 'sl-replay-'));
let ctx = null;
let failed = false;
try {
  ctx = await withTestHook(await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1100, height: 760 } }));
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('console', (m) => log(`[replay] ${m.text()}`));
  page.on('pageerror', (e) => log(`[replay] page error: ${e.message}`));
  const [first, second, speakerB] = [env('SHANGLIANG_COMMENT_1'), env('SHANGLIANG_COMMENT_2'), env('SHANGLIANG_SPEAKER_B')];
  const state = () => page.evaluate(() => window.__shangliang?.replay?.() ?? null);
  const shownTexts = () => page.$$eval('.replay-moments li.comment', (els) => els.map((e) => e.textContent));

  await page.goto(`${base}/replay/demo`);
  await page.waitForFunction(() => (window.__shangliang?.replay?.().chapters ?? 0) >= 2, null, { timeout: 20_000 }).catch(async (e) => {
    throw new Error(`no chapters: ${JSON.stringify(await state())} ${e.message}`);
  });
  const chapters = await page.$$eval('.chapters button.chapter', (bs) => bs.map((b) => ({ text: b.textContent, offset: Number(b.dataset.offsetMs) })));
  log('chapters', JSON.stringify(chapters));
  if (chapters.length !== 2 || !chapters[1].text.includes(speakerB)) throw new Error(`chapters: ${JSON.stringify(chapters)}`);
  const offsets = await page.evaluate(async () => (await (await fetch('/hls/demo/comments.json')).json()).comments.map((c) => c.offset_ms));
  log('comment offsets', JSON.stringify(offsets));

  // Plays from the start: currentTime advances and frames are decoded.
  await page.waitForFunction(() => (window.__shangliang.replay().t ?? 0) > 0.3, null, { timeout: 30_000 }).catch(async (e) => {
    throw new Error(`the replay does not play: ${JSON.stringify(await state())} ${e.message}`);
  });
  const a = await state();
  log('playing', JSON.stringify(a));
  if (a.t > offsets[0] / 1000) throw new Error(`the replay did not start from the start: at ${a.t} s already`);
  // Before the first comment's moment it is not shown; when the playhead passes it, it is.
  const early = await shownTexts();
  if (early.some((t) => t.includes(first)) && (await state()).t * 1000 < offsets[0]) throw new Error(`comment shown before its moment: ${early}`);
  await page.waitForFunction((ms) => window.__shangliang.replay().t * 1000 > ms + 300, offsets[0], { timeout: 30_000 }).catch(async (e) => {
    throw new Error(`the playhead never reached the first comment: ${JSON.stringify(await state())} ${e.message}`);
  });
  await page.waitForFunction((text) => [...document.querySelectorAll('.replay-moments li.comment')].some((e) => e.textContent.includes(text)), first, { timeout: 5_000 }).catch(async (e) => {
    throw new Error(`the first comment did not appear at its moment: ${JSON.stringify(await shownTexts())} ${JSON.stringify(await state())} ${e.message}`);
  });
  const b = await state();
  if (!(b.t > a.t + 0.5 && b.frames > a.frames)) throw new Error(`not playing on: ${JSON.stringify(a)} → ${JSON.stringify(b)}`);
  if ((await shownTexts()).some((t) => t.includes(second)) && b.t * 1000 < offsets[1]) throw new Error('the second comment came before its moment');
  log('first comment at its moment', JSON.stringify(b));
  await page.screenshot({ path: join(shots, 'replay-first-comment.png') });

  // The second chapter jumps the player to b's turn; b's comment comes with it.
  await page.click('.chapters li:nth-child(2) button.chapter');
  await page.waitForFunction((ms) => Math.abs(window.__shangliang.replay().t * 1000 - ms) < 3000 && window.__shangliang.replay().current === 1, chapters[1].offset, { timeout: 10_000 }).catch(async (e) => {
    throw new Error(`the chapter did not seek: ${JSON.stringify(await state())} ${e.message}`);
  });
  const current = await page.$eval('.chapters button[aria-current="true"]', (b) => b.textContent);
  if (!current.includes(speakerB)) throw new Error(`current chapter: ${current}`);
  await page.waitForFunction((text) => [...document.querySelectorAll('.replay-moments li.comment')].some((e) => e.textContent.includes(text)), second, { timeout: 15_000 }).catch(async (e) => {
    throw new Error(`b's comment did not appear: ${JSON.stringify(await shownTexts())} ${JSON.stringify(await state())} ${e.message}`);
  });
  log('after the chapter click', JSON.stringify(await state()), JSON.stringify(await shownTexts()));
  await page.screenshot({ path: join(shots, 'replay-chapter.png') });
  log('replay browser test: ok');
} catch (e) {
  failed = true;
  console.error('FAIL:', e?.stack ?? e);
  try {
    await ctx?.pages()[0]?.screenshot({ path: join(shots, 'replay-failure.png') });
  } catch {}
} finally {
  try {
    await ctx?.close();
  } catch {}
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
