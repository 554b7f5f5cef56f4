// Browser test of the chair's tools and the rules a viewer sees before typing (issue 13,
// "Confusing" and "Missing"): the landing page offers only the public face; the console's header
// names the activity; slow mode set in the console shows on the watch page with its wait;
// lockdown closes the viewer's box; review mode: a held count, approve by keyboard; an anonymous
// question is marked 匿名 for the moderator and the asker sees their own pending one; a timeout
// chosen on the row is listed with an undo; the audit log reads as words with names, 24-hour
// times and numbers from 1; the console shows the room's video.
//   node chair.mjs <base> <shots>   env: SHANGLIANG_MODERATOR_TOKEN, SHANGLIANG_MEMBER_TOKEN

import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, moderatorConsole, problemCollector, room, smallTargets, until, watchPage } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const tokM = process.env.SHANGLIANG_MODERATOR_TOKEN;
const tokA = process.env.SHANGLIANG_MEMBER_TOKEN;
if (!base || !shotDir || !tokM || !tokA) {
  console.error('usage: SHANGLIANG_MODERATOR_TOKEN=.. SHANGLIANG_MEMBER_TOKEN=.. node chair.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, check, launch, run } = startRun({ shotDir, totalMs: 90_000 });
const shot = (p, name) => p.bringToFront().then(() => p.screenshot({ path: path.join(shotDir, `${name}.png`) }));

async function post(page, text) {
  await page.fill('.compose-input', text);
  await page.press('.compose-input', 'Enter');
}

async function main() {
  const context = await launch({ headless: true, viewport: { width: 1280, height: 900 }, args: ARGS });
  const c = problemCollector();

  // The landing page: only the public face (room and console need the organisers' link).
  const landing = await context.newPage();
  c.watch(landing, 'landing');
  await landing.goto(`${base}/`);
  await landing.waitForSelector('.activity[data-id="demo"] a[href="/live/demo"]');
  const staffLinks = await landing.locator('a[href^="/room/"], a[href^="/console/"]').count();
  check(staffLinks === 0, `the landing page offers ${staffLinks} room/console links`);
  const title = await landing.textContent('.activity[data-id="demo"] h3');
  await landing.close();

  const chair = await moderatorConsole(context, base, tokM, c);
  await until(chair, 'the console header names the activity', (t) => document.querySelector('.page-title')?.textContent.includes(t), title);
  const viewer = await watchPage(context, base, c);
  const viewerName = await viewer.evaluate(() => window.__shangliang.conn.you.name);
  log('landing, console and watch page open');

  // Composer notices clear by themselves.
  await post(viewer, `第一条意见 ${Date.now()}`);
  await viewer.waitForSelector('.compose-msg[data-kind="ok"]', { timeout: 10_000 });
  await until(viewer, 'the 已发送 notice clears', () => document.querySelector('.compose-msg').textContent === '', null, 6_000);

  // Slow mode: set in the console, shown before typing, with the wait after a post.
  await chair.bringToFront();
  await chair.selectOption('#policy-slow', '10000');
  await viewer.bringToFront();
  await until(viewer, 'slow mode shown', () => document.querySelector('.compose-rule')?.textContent.includes('慢速模式'));
  await post(viewer, `慢速模式下的意见 ${Date.now()}`);
  await until(viewer, 'the wait after posting', () => /秒后可/.test(document.querySelector('.compose-rule').textContent) && document.querySelector('.compose-send').disabled);
  const rule = await viewer.textContent('.compose-rule');
  check(/10 秒/.test(rule), `slow-mode rule: ${rule}`);
  await shot(viewer, 'watch-slow-mode');
  await chair.bringToFront();
  await chair.selectOption('#policy-slow', '0');
  await viewer.bringToFront();
  await until(viewer, 'slow mode off', () => document.querySelector('.compose-rule').hidden && !document.querySelector('.compose-send').disabled);

  // Lockdown closes the viewer's box, with the reason.
  await chair.bringToFront();
  await chair.check('#policy-lockdown');
  await viewer.bringToFront();
  await until(viewer, 'lockdown disables the composer', () => document.querySelector('.compose-input').disabled && document.querySelector('.compose-rule').textContent.includes('锁定'));
  await shot(viewer, 'watch-lockdown');
  await chair.bringToFront();
  await chair.uncheck('#policy-lockdown');
  await viewer.bringToFront();
  await until(viewer, 'lockdown lifted', () => !document.querySelector('.compose-input').disabled);
  log('slow mode and lockdown shown before typing');

  // Review: the held count, the 待审 list, approve with the keyboard.
  await chair.bringToFront();
  await chair.check('#policy-review');
  await until(viewer, 'review on', () => window.__shangliang.store.modes.review);
  const held = `请审核这条 ${Date.now()}`;
  await viewer.bringToFront();
  await post(viewer, held);
  await chair.bringToFront();
  await until(chair, 'held count', () => document.querySelector('.held-count').textContent.includes('待审 1'));
  check((await chair.textContent('.slot-review h2')).includes('1'), 'the review panel does not count the held comment');
  await chair.focus('.review-item');
  await chair.keyboard.press('a');
  await until(chair, 'approved with A: the queue is empty', () => window.__shangliang.review.size === 0 && document.querySelector('.held-count').textContent === '');
  await until(viewer, 'the approved comment reaches the public', (t) => window.__shangliang.list.snapshot().some((x) => x.text === t && !x.pending), held);
  await chair.uncheck('#policy-review');
  log('held count and keyboard approval');

  // Questions: the asker sees their own pending question; the moderator sees 匿名.
  const q = `匿名提问 ${Date.now()}`;
  await viewer.bringToFront();
  await viewer.fill('.ask-input', q);
  await viewer.check('.ask-anon-box');
  await viewer.press('.ask-input', 'Enter');
  await until(viewer, 'own pending question shown', (t) => [...document.querySelectorAll('.question.q-mine')].some((li) => li.textContent.includes(t) && li.textContent.includes('审核中')), q);
  check(!(await viewer.locator('.question.q-mine [data-key^="vote-"]').count()), 'the asker may upvote their own question');
  await chair.bringToFront();
  await until(chair, '匿名 marker for the moderator', ([t, n]) => [...document.querySelectorAll('.question')].some((li) => li.textContent.includes(t) && li.querySelector('.anon-tag') && li.textContent.includes(n)), [q, viewerName]);
  log('own pending question and the 匿名 marker');

  // A timeout chosen on the row: listed with an undo.
  const seq = await viewer.evaluate((t) => window.__shangliang.list.snapshot().find((x) => x.text === t)?.seq, held);
  await chair.bringToFront();
  await chair.click(`.crow[data-seq="${seq}"] .row-timeout`);
  await chair.click('.chooser .chooser-item >> nth=1'); // 1 hour
  await chair.click('.chooser .chooser-item >> nth=2'); // 与议题无关
  await until(chair, 'the timeout listed', (n) => [...document.querySelectorAll('.sanctions li')].some((li) => li.textContent.includes(n)), viewerName);
  await viewer.bringToFront();
  await post(viewer, '还能说话吗');
  await viewer.waitForSelector('.compose-msg[data-kind="error"]', { timeout: 10_000 });
  await chair.bringToFront();
  await chair.click('.sanctions li button');
  await until(chair, 'the timeout undone', () => !document.querySelector('.sanctions li'));
  await viewer.bringToFront();
  await post(viewer, `又能说话了 ${Date.now()}`);
  await viewer.waitForSelector('.compose-msg[data-kind="ok"]', { timeout: 10_000 });
  log('timeout listed and undone');

  // The audit log in words.
  await chair.bringToFront();
  const lines = await chair.$$eval('.audit li', (ls) => ls.map((l) => l.textContent));
  const all = lines.join('\n');
  check(lines.length >= 8, `audit log: ${all}`);
  check(!/v-[0-9a-f]{4}|comment_policy_set|participant_|moderator:/.test(all), `raw codes or ids in the audit log:\n${all}`);
  check(!/AM|PM|上午|下午/.test(all) && lines.every((l) => /^\d+\. \d{2}:\d{2}:\d{2} /.test(l)), `times or numbers:\n${all}`);
  check(lines.some((l) => l.startsWith('1. ')) && !lines.some((l) => l.startsWith('0. ')), `numbers do not start at 1:\n${all}`);
  check(all.includes('慢速模式') && all.includes('锁定评论：开启') && all.includes(`禁言 ${viewerName} 至`) && all.includes(`解除对 ${viewerName}`), `audit words:\n${all}`);
  check(all.includes('（理由：与议题无关）'), `the reason chosen on the row is not logged:\n${all}`);
  await shot(chair, 'console-audit-words');
  log('audit log in words');

  // The chair's view of the room's video.
  const member = await room(context, base, tokA, 'room', c);
  await member.click('[data-media="camera"]');
  await chair.bringToFront();
  await chair.click('[data-key="watch-room"]');
  await until(chair, "the member's picture in the console", () => [...document.querySelectorAll('.slot-room-video .tile video')].some((v) => v.videoWidth > 0), null, 30_000);
  const tiles = await chair.evaluate(() => window.__shangliang.tiles());
  check(tiles.some((t) => t.name === '王委员'), `console tiles: ${JSON.stringify(tiles)}`);
  await shot(chair, 'console-room-video');
  log("the chair sees the room's video");

  // On a tablet (820×1180, portrait): one column, nothing wider than the screen, 44 px targets.
  await chair.setViewportSize({ width: 820, height: 1180 });
  await chair.waitForTimeout(300);
  const wide = await chair.evaluate(() => document.scrollingElement.scrollWidth);
  check(wide <= 820, `the console is ${wide} px wide on an 820 px tablet`);
  const small = await smallTargets(chair);
  check(!small.length, `console touch targets under 44 px on a tablet:\n${small.join('\n')}`);
  await shot(chair, 'console-tablet');
  log('the console on a tablet');
  check(!c.problems.length, c.problems.join('\n'));
}

await run(main);
