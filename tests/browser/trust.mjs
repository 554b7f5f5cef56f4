// Browser tests of issue 13's server-side items: discipline that follows the person across
// 更换昵称 ("rename"), the review queue's server flags ("review"), the stage behind the chair
// ("stage"), the history a newcomer sees ("history"). One scenario per run (SHANGLIANG_SCENARIO).
//   node trust.mjs <base> <shots>   env: SHANGLIANG_MODERATOR_TOKEN, SHANGLIANG_MEMBER_TOKEN, SHANGLIANG_SCENARIO

import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, moderatorConsole, problemCollector, room, until, watchPage } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const tokM = process.env.SHANGLIANG_MODERATOR_TOKEN;
const tokA = process.env.SHANGLIANG_MEMBER_TOKEN;
const scenario = process.env.SHANGLIANG_SCENARIO;
if (!base || !shotDir || !tokM || !tokA || !scenario) {
  console.error('usage: SHANGLIANG_SCENARIO=.. SHANGLIANG_MODERATOR_TOKEN=.. SHANGLIANG_MEMBER_TOKEN=.. node trust.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, check, launch, run } = startRun({ shotDir, totalMs: 90_000 });
const shot = (p, name) => p.bringToFront().then(() => p.screenshot({ path: path.join(shotDir, `${name}.png`) }));

async function post(page, text) {
  await page.fill('.compose-input', text);
  await page.press('.compose-input', 'Enter');
}

/** Posts and waits for the composer's verdict: 'ok' or 'error' (with its text). */
async function postVerdict(page, text) {
  await page.evaluate(() => {
    const m = document.querySelector('.compose-msg');
    m.textContent = '';
    m.removeAttribute('data-kind');
  });
  await post(page, text);
  await page.waitForSelector('.compose-msg[data-kind="ok"], .compose-msg[data-kind="error"]', { timeout: 10_000 });
  return page.evaluate(() => {
    const m = document.querySelector('.compose-msg');
    return { kind: m.dataset.kind, text: m.textContent };
  });
}

async function rename(page, name) {
  await page.click('.nickbar button.link');
  await page.fill('.nick-input', name);
  await page.press('.nick-input', 'Enter');
  await until(page, 'reconnected under the new name', (n) => window.__shangliang.conn.you?.name === n && document.querySelector('.status').dataset.state === 'live', name);
}

const scenarios = {
  // 2. After a restart (the Rust side posted 60 comments to the record, then restarted the hub),
  //    a newcomer's watch page and console show the recent ones.
  async history(context, c) {
    const viewer = await watchPage(context, base, c);
    const want = Array.from({ length: 49 }, (_, i) => `重启前的意见${i + 11}`);
    await until(viewer, 'the recent comments on a fresh watch page', (w) => {
      const texts = window.__shangliang.list.snapshot().map((x) => x.text);
      return w.every((t) => texts.includes(t));
    }, want);
    const texts = await viewer.evaluate(() => window.__shangliang.list.snapshot().map((x) => x.text));
    check(!texts.includes('重启前的意见0'), `more than the last 50 items shown: ${texts.length}`);
    await shot(viewer, 'trust-history-after-restart');
    const chair = await moderatorConsole(context, base, tokM, c);
    await until(chair, 'the recent comments in a fresh console', (t) => window.__shangliang.list.snapshot().some((x) => x.text === t), want.at(-1));
    log('a newcomer sees the history after the restart');
  },

  // 1. A viewer timed out from the console changes nickname and is still timed out.
  async rename(context, c) {
    const chair = await moderatorConsole(context, base, tokM, c);
    const viewer = await watchPage(context, base, c);
    const before = await viewer.evaluate(() => window.__shangliang.conn.you.id);
    const first = `改名前 ${Date.now()}`;
    check((await postVerdict(viewer, first)).kind === 'ok', 'the first comment was refused');
    const seq = await until(viewer, 'own comment shown', (t) => window.__shangliang.list.snapshot().find((x) => x.text === t)?.seq, first);
    await chair.bringToFront();
    await until(chair, 'the comment in the console', (s) => document.querySelector(`.crow[data-seq="${s}"] .row-timeout`), seq);
    await chair.click(`.crow[data-seq="${seq}"] .row-timeout`);
    await chair.click('.chooser .chooser-item >> nth=1');
    await chair.click('.chooser .chooser-item >> nth=2');
    await until(chair, 'the timeout listed', () => document.querySelector('.sanctions li'));
    await viewer.bringToFront();
    const refused = await postVerdict(viewer, '被禁言了还想说');
    check(refused.kind === 'error', `a timed-out viewer posted: ${JSON.stringify(refused)}`);
    await rename(viewer, '换个马甲');
    const after = await viewer.evaluate(() => window.__shangliang.conn.you.id);
    check(after === before, `the rename minted a new identity: ${before} → ${after}`);
    const again = await postVerdict(viewer, '换了名字再来');
    check(again.kind === 'error' && again.text.includes('禁言'), `after the rename the timeout no longer holds: ${JSON.stringify(again)}`);
    await shot(viewer, 'trust-rename-still-timed-out');
    log('the timeout follows the viewer across a rename');
  },
};

async function main() {
  const context = await launch({ headless: true, viewport: { width: 1280, height: 900 }, args: ARGS });
  const c = problemCollector();
  const s = scenarios[scenario];
  check(s, `no scenario ${scenario}`);
  await s(context, c);
  check(!c.problems.length, c.problems.join('\n'));
}

await run(main);
