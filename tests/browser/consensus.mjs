// Polls and statements in the browser (issue 17): the moderator prepares a single-choice poll with
// a countdown in the console and launches it; a viewer on a phone-sized watch page sees it with
// its countdown, answers, and sees the live tally; the console's tally follows; closing freezes it
// on the watch page. Then the console writes a statement and the viewer agrees on its card.
// Screenshots: consensus-*.png.
//   node consensus.mjs <base> <shots>   env: SHANGLIANG_MODERATOR_TOKEN

import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, problemCollector, until } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const tokM = process.env.SHANGLIANG_MODERATOR_TOKEN;
if (!base || !shotDir || !tokM) {
  console.error('usage: SHANGLIANG_MODERATOR_TOKEN=.. node consensus.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, check, launch, run } = startRun({ shotDir, totalMs: 100_000 });

async function main() {
  const context = await launch({ headless: true, viewport: { width: 1280, height: 900 }, locale: 'zh-CN', args: ARGS });
  const c = problemCollector();
  const open = async (label, url) => {
    const p = await context.newPage();
    c.watch(p, label);
    await p.goto(url);
    await p.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
    await until(p, `${label}: moderation state`, () => window.__shangliang.store.available);
    return p;
  };
  const shot = (p, name) => p.bringToFront().then(() => p.screenshot({ path: path.join(shotDir, `consensus-${name}.png`), fullPage: true }));

  const console_ = await open('console', `${base}/console/demo?token=${encodeURIComponent(tokM)}`);
  await console_.fill('.new-poll-question', '食堂开在哪里？');
  await console_.selectOption('.new-poll-kind', 'single_choice');
  await console_.fill('.new-poll-options', '东门\n西门');
  await console_.fill('.new-poll-countdown', '120');
  await console_.click('.new-poll-create');
  await console_.waitForSelector('.console-polls li[data-state="prepared"] .poll-launch', { timeout: 10_000 });
  log('poll prepared');

  const phone = await open('watch', `${base}/live/demo`);
  await phone.setViewportSize({ width: 390, height: 844 });
  const none = await phone.textContent('.slot-poll .slot-body');
  check(none.includes('暂无进行中的投票'), `a prepared poll is not shown to viewers: ${none}`);

  await console_.click('.console-polls li[data-state="prepared"] .poll-launch');
  try {
    await phone.waitForSelector('.poll-card[data-state="open"] .poll-option[data-option="1"]', { timeout: 10_000 });
  } catch (e) {
    const seen = await phone.evaluate(() => ({ polls: [...window.__shangliang.consensus.polls.values()], html: document.querySelector('.slot-poll')?.outerHTML }));
    throw new Error(`the launched poll is not shown: ${JSON.stringify(seen)}; ${e.message.split('\n')[0]}`);
  }
  const countdown = await until(phone, 'the countdown', () => {
    const t = document.querySelector('.poll-countdown')?.textContent ?? '';
    return /剩余 (\d+) 秒/.test(t) ? t : false;
  });
  const left = Number(/(\d+)/.exec(countdown)[1]);
  check(left > 100 && left <= 120, `countdown ${countdown}`);
  const button = await phone.locator('.poll-option[data-option="1"]').boundingBox();
  check(button.height >= 44, `the answer button is too small on a phone: ${JSON.stringify(button)}`);
  await shot(phone, '1-poll-open');
  await phone.click('.poll-option[data-option="1"]');
  await phone.waitForSelector('.poll-answered', { timeout: 10_000 });
  // The coalesced tally reaches both pages.
  await phone.waitForSelector('.poll-results .poll-row[data-option="1"][data-count="1"]', { timeout: 10_000 });
  await console_.waitForSelector('.console-polls li[data-state="open"] .poll-row[data-option="1"][data-count="1"]', { timeout: 10_000 });
  await shot(phone, '2-answered');
  await shot(console_, '3-console-tally');
  log('answered; the tally arrived on both pages');

  // Closing freezes it.
  await console_.click('.console-polls li[data-state="open"] .poll-close');
  await phone.waitForSelector('.poll-card[data-state="closed"]', { timeout: 10_000 });
  const closed = await phone.textContent('.poll-countdown');
  check(closed.includes('投票已结束'), `closed poll says ${closed}`);
  const counts = await phone.$$eval('.poll-row', (rows) => rows.map((r) => r.dataset.count));
  check(JSON.stringify(counts) === '["0","1"]', `final tally ${counts}`);

  // A statement: written in the console, voted on the watch page's card.
  await console_.fill('.promote-text', '社区食堂应向老人优惠');
  await console_.click('.promote-go');
  await phone.waitForSelector('.statement-card .statement-text', { timeout: 10_000 });
  const text = await phone.textContent('.statement-card .statement-text');
  check(text === '社区食堂应向老人优惠', `statement card shows ${text}`);
  await phone.click('.statement-card .vote-agree');
  await until(phone, 'the card moves on', () => !document.querySelector('.statement-card .statement-text'));
  await shot(phone, '4-voted');
  check(c.problems.length === 0, `console errors: ${c.problems.join('; ')}`);
}

run(main);
