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

const texts = (page) => page.evaluate(() => window.__shangliang.list.snapshot().map((x) => ({ text: x.text, pending: !!x.pending })));

const scenarios = {
  // 3. The review queue as the server marks it: only held comments get 批准/驳回; the author
  //    sees their own as 审核中 after a reload; reject; turning review off asks and releases;
  //    no duplicate after the console reconnects or reloads.
  async review(context, c) {
    let chair = await moderatorConsole(context, base, tokM, c);
    let viewer = await watchPage(context, base, c);
    const before = `审核前的评论 ${Date.now()}`;
    check((await postVerdict(viewer, before)).kind === 'ok', 'posting before review failed');
    await chair.bringToFront();
    await chair.check('#policy-review');
    await until(viewer, 'review on', () => window.__shangliang.store.modes.review);
    const x = `请审核甲 ${Date.now()}`;
    await viewer.bringToFront();
    check((await postVerdict(viewer, x)).kind === 'ok', 'the held comment was refused');
    await until(viewer, 'own held comment shown as pending', (t) => window.__shangliang.list.snapshot().some((y) => y.text === t && y.pending), x);
    await chair.bringToFront();
    await until(chair, 'held count', () => document.querySelector('.held-count').textContent.includes('1'));
    const rows = await chair.$$eval('.crow', (rs) => rs.map((r) => ({ text: r.querySelector('.crow-text').textContent, held: r.classList.contains('held'), approve: !r.querySelector('.row-approve').hidden })));
    const pub = rows.find((r) => r.text === before);
    const heldRow = rows.find((r) => r.text === x);
    check(pub && !pub.held && !pub.approve, `a public comment offers 批准: ${JSON.stringify(pub)}`);
    check(heldRow && heldRow.held && heldRow.approve, `the held comment is not marked: ${JSON.stringify(heldRow)}`);
    // The author reloads: the held comment is still there, 审核中.
    await viewer.reload();
    await viewer.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
    await until(viewer, 'own held comment still pending after a reload', (t) => window.__shangliang.list.snapshot().some((y) => y.text === t && y.pending), x);
    await shot(viewer, 'trust-review-own-pending');
    // Reject from the queue, with a reason: it leaves the queue and the author's page.
    await chair.bringToFront();
    const seqX = await chair.evaluate((t) => window.__shangliang.review.held().find((y) => y.text === t)?.seq, x);
    await chair.click(`[data-key="reject-${seqX}"]`);
    await chair.click('.chooser .chooser-item >> nth=0');
    await until(chair, 'rejected: the queue is empty', () => window.__shangliang.review.size === 0);
    await until(chair, 'rejected: gone from the console list', (t) => !window.__shangliang.list.snapshot().some((y) => y.text === t), x);
    await until(viewer, 'rejected: gone from the author\'s page', (t) => !window.__shangliang.list.snapshot().some((y) => y.text === t), x);
    log('held comments marked by the server; reject');
    // Two more held; turning review off asks: release them all.
    const y = `请审核乙 ${Date.now()}`;
    const z = `请审核丙 ${Date.now()}`;
    await viewer.bringToFront();
    check((await postVerdict(viewer, y)).kind === 'ok', 'y refused');
    check((await postVerdict(viewer, z)).kind === 'ok', 'z refused');
    await chair.bringToFront();
    await until(chair, 'two held', () => window.__shangliang.review.size === 2);
    await chair.uncheck('#policy-review');
    await chair.waitForSelector('.chooser', { timeout: 5_000 });
    await shot(chair, 'trust-review-off-asks');
    await chair.click('.chooser .chooser-item >> nth=0');
    await until(chair, 'released: the queue is empty and review is off', () => window.__shangliang.review.size === 0 && !window.__shangliang.store.modes.review);
    await until(viewer, 'released: the public copies replace the pending ones', ([a, b]) => {
      const l = window.__shangliang.list.snapshot();
      return [a, b].every((t) => l.filter((v) => v.text === t).length === 1 && l.some((v) => v.text === t && !v.pending));
    }, [y, z]);
    log('review off released the queue');
    // Reconnect, then reload the console: each approved comment once, nothing held.
    await chair.evaluate(() => {
      window.__shangliang.conn.stop();
      window.__shangliang.conn.start();
    });
    await chair.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
    await chair.waitForTimeout(500);
    const once = async (page, label) => {
      const l = await texts(page);
      for (const t of [y, z]) {
        const n = l.filter((v) => v.text === t).length;
        check(n === 1, `${label}: ${t} shown ${n} times`);
      }
      check(!l.some((v) => v.text === x), `${label}: the rejected comment is back`);
    };
    await once(chair, 'after a reconnect');
    await chair.reload();
    await chair.waitForFunction(() => window.__shangliang?.store?.available, null, { timeout: 15_000 });
    await until(chair, 'the history in the reloaded console', (t) => window.__shangliang.list.snapshot().some((v) => v.text === t), z);
    await once(chair, 'after a reload');
    check((await chair.evaluate(() => window.__shangliang.review.size)) === 0, 'the reloaded console shows held comments');
    await shot(chair, 'trust-review-console-after-reload');
    log('no duplicate after a reconnect or a reload');
  },

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
