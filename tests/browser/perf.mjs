// The phone budget of the watch page (issue 13): the JavaScript it loads, gzipped (budget: the
// first script ≤ 60 KB, and everything the page needs before the first render too), and on a
// throttled phone profile — Chromium's CPU throttled ×4 and a slow-4G network (150 ms RTT,
// 1.6 Mbit/s down, 750 kbit/s up, no cache), 390×844 — the first contentful paint, the time until
// the connection is live and the time until the first comment shows.
//   node perf.mjs <base> <shots> [runs]     env: SHANGLIANG_WEB_DIST (default ../../web-client/dist),
//                                           SHANGLIANG_NETWORK=slow4g (default) | slow3g
// slow3g is Chrome DevTools' "Slow 3G" preset: 2 s RTT, 400 kbit/s down and up.
// Prints one `PERF` line per run and a median line. Fails only if the size budget is exceeded.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { startRun } from './harness.mjs';
import { ARGS, PHONE } from './faces.mjs';

const [base, shotDir, runsArg] = process.argv.slice(2);
if (!base || !shotDir) {
  console.error('usage: node perf.mjs <base-url> <screenshot-dir> [runs]');
  process.exit(2);
}
const RUNS = Number(runsArg ?? 1);
const BUDGET_KB = 60;
const dist = process.env.SHANGLIANG_WEB_DIST ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '../../web-client/dist');
const { log, check, launch, run } = startRun({ shotDir, totalMs: 60_000 + RUNS * 150_000 });
const PROFILES = {
  slow4g: { offline: false, latency: 150, downloadThroughput: (1.6 * 1024 * 1024) / 8, uploadThroughput: (750 * 1024) / 8 },
  slow3g: { offline: false, latency: 2000, downloadThroughput: (500 * 1000 * 0.8) / 8, uploadThroughput: (500 * 1000 * 0.8) / 8 },
};
const NETWORK = process.env.SHANGLIANG_NETWORK ?? 'slow4g';
if (!PROFILES[NETWORK]) {
  console.error(`SHANGLIANG_NETWORK must be one of ${Object.keys(PROFILES).join(', ')}`);
  process.exit(2);
}
const gz = (file) => gzipSync(readFileSync(file), { level: 9 }).length;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const context = await launch({ headless: true, ...PHONE, args: ARGS });
  // Comments to show: the first visit gets the latest ones as its first view.
  const seed = await context.newPage();
  await seed.goto(`${base}/live/demo`);
  await seed.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
  await seed.fill('.compose-input', `性能测量用的评论 ${Date.now()}`);
  await seed.press('.compose-input', 'Enter');
  await seed.waitForSelector('.compose-msg[data-kind="ok"]', { timeout: 10_000 });
  await seed.close();

  // The first script: the entry module of index.html.
  const html = readFileSync(path.join(dist, 'index.html'), 'utf8');
  const entry = /<script type="module"[^>]*src="([^"]+)"/.exec(html)?.[1];
  check(entry, 'no entry script in index.html');
  const firstKb = gz(path.join(dist, entry)) / 1024;

  const results = [];
  for (let i = 0; i < RUNS; i++) {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    await cdp.send('Network.emulateNetworkConditions', PROFILES[NETWORK]);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
    await page.addInitScript(() => {
      const mark = () => {
        if (!window.__perf.firstComment && document.querySelector('.crow:not([hidden]) .crow-text')?.textContent) window.__perf.firstComment = performance.now();
        if (!window.__perf.live && document.querySelector('.status[data-state="live"]')) window.__perf.live = performance.now();
      };
      window.__perf = {};
      new MutationObserver(mark).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    await page.goto(`${base}/live/demo`, { waitUntil: 'commit' });
    await page.waitForFunction(() => window.__perf.firstComment && window.__perf.live, null, { timeout: NETWORK === 'slow3g' ? 120_000 : 45_000, polling: 100 });
    const m = await page.evaluate(() => {
      const fcp = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null;
      const js = performance.getEntriesByType('resource').filter((r) => /\.js(\?|$)/.test(r.name)).map((r) => new URL(r.name).pathname);
      return { fcp, live: window.__perf.live, firstComment: window.__perf.firstComment, js };
    });
    const jsKb = m.js.reduce((n, p) => n + gz(path.join(dist, p)), 0) / 1024;
    results.push({ ...m, jsKb });
    log(`PERF watch page run ${i + 1}: first script ${firstKb.toFixed(1)} KB gz; all JS ${jsKb.toFixed(1)} KB gz (${m.js.length} files); first contentful paint ${m.fcp?.toFixed(0)} ms; live ${m.live.toFixed(0)} ms; first comment ${m.firstComment.toFixed(0)} ms (CPU ×4, ${NETWORK}, 390×844)`);
    if (i === 0) await page.screenshot({ path: path.join(shotDir, 'perf-watch-phone.png') });
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    await page.close();
  }
  log(`PERF median of ${RUNS}: first contentful paint ${median(results.map((r) => r.fcp ?? 0)).toFixed(0)} ms; first comment ${median(results.map((r) => r.firstComment)).toFixed(0)} ms; all JS ${results[0].jsKb.toFixed(1)} KB gz`);
  check(firstKb <= BUDGET_KB, `the first script is ${firstKb.toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)`);
  check(results[0].jsKb <= BUDGET_KB, `the watch page loads ${results[0].jsKb.toFixed(1)} KB of JavaScript gzipped before its first comment (budget ${BUDGET_KB} KB)`);
}

await run(main);
