// The phone walk of the watch page (issue 13): a 390×844 touch screen. Before anyone publishes the
// video says 直播尚未开始; the title is not cut; the video is on top, the question on stage
// directly under it, then 评论 / 提问 tabs and the composer at the bottom, which stays put while
// the list scrolls; every control is at least 44 px; when a member takes the floor with the camera
// on, the picture plays with a live badge and the speaker's lower-third; fullscreen works; when the
// picture stops, an overlay says so instead of a frozen frame. Screenshots: phone-*.png.
//   node phone.mjs <base> <shots>   env: SHANGLIANG_MODERATOR_TOKEN, SHANGLIANG_MEMBER_TOKEN

import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, PHONE, moderatorConsole, problemCollector, rect, room, smallTargets, until } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const tokM = process.env.SHANGLIANG_MODERATOR_TOKEN;
const tokA = process.env.SHANGLIANG_MEMBER_TOKEN;
if (!base || !shotDir || !tokM || !tokA) {
  console.error('usage: SHANGLIANG_MODERATOR_TOKEN=.. SHANGLIANG_MEMBER_TOKEN=.. node phone.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, check, launch, run } = startRun({ shotDir, totalMs: 100_000 });
const H = PHONE.viewport.height;

async function main() {
  const context = await launch({ headless: true, ...PHONE, locale: 'zh-CN', args: ARGS });
  const c = problemCollector();
  const phone = await context.newPage();
  c.watch(phone, 'phone');
  const shot = (name) => phone.bringToFront().then(() => phone.screenshot({ path: path.join(shotDir, `phone-${name}.png`) }));
  await phone.goto(`${base}/live/demo`);
  await phone.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
  await until(phone, 'moderation state', () => window.__shangliang.store.available);

  // Before anyone publishes: 直播尚未开始, not a black box.
  await until(phone, 'the not-started overlay', () => ['waiting', 'not-started'].includes(window.__shangliang.boxState()) && document.querySelector('.video-overlay-text').textContent === '直播尚未开始');
  await shot('1-before-start');

  // The title is not cut.
  const title = await phone.evaluate(() => {
    const el = document.querySelector('.page-title');
    return { text: el.textContent, cut: el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1, w: el.clientWidth };
  });
  check(!title.cut && title.text.length > 10, `the title is cut on a phone: ${JSON.stringify(title)}`);

  // Video on top, then the tabs, the composer at the bottom.
  const header = await rect(phone, '.top');
  const video = await rect(phone, '.video-box');
  const tabs = await rect(phone, '.tabs');
  const composer = await rect(phone, '.compose');
  check(Math.abs(video.y - header.bottom) < 2 && video.w >= 389, `the video is not on top at full width: ${JSON.stringify({ header, video })}`);
  check(tabs.y >= video.bottom - 1, `the tabs are not under the video: ${JSON.stringify({ video, tabs })}`);
  check(composer.bottom <= H && composer.bottom > H - 110, `the composer is not at the bottom of the screen: ${JSON.stringify(composer)}`);
  const small = await smallTargets(phone);
  check(!small.length, `touch targets under 44 px (comments tab):\n${small.join('\n')}`);
  log('before start: overlay, title, layout, touch targets');

  // 提问 tab: the questions, with the anonymous checkbox a 44 px target.
  await phone.tap('.tab[data-tab="questions"]');
  await until(phone, 'the questions panel', () => getComputedStyle(document.querySelector('.slot-questions')).display !== 'none' && getComputedStyle(document.querySelector('.watch > .comments')).display === 'none');
  const smallQ = await smallTargets(phone);
  check(!smallQ.length, `touch targets under 44 px (questions tab):\n${smallQ.join('\n')}`);
  const question = `城乡公交什么时候能一体化？${Date.now()}`;
  await phone.fill('.ask-input', question);
  await phone.tap('.ask button[type="submit"]');
  await until(phone, 'own question listed as in review', (q) => [...document.querySelectorAll('.question.q-mine')].some((li) => li.textContent.includes(q)), question);
  await shot('2-questions-tab');
  await phone.tap('.tab[data-tab="comments"]');

  // The moderator publishes and stages it: it shows directly under the video.
  const chair = await moderatorConsole(context, base, tokM, c);
  await chair.setViewportSize({ width: 1280, height: 800 });
  const qid = await until(chair, 'the question in the console', (q) => [...window.__shangliang.store.questions.values()].find((x) => x.text === q)?.id, question);
  await chair.click(`[data-key="q_publish-${qid}"]`);
  await chair.waitForSelector(`[data-key="q_stage-${qid}"]`, { timeout: 10_000 });
  await chair.click(`[data-key="q_stage-${qid}"]`);
  await phone.bringToFront();
  await until(phone, 'the question on stage under the video', (id) => !!document.querySelector(`.slot-pinned .pinned-q.on-stage[data-id="${id}"]`), qid);
  const pinned = await rect(phone, '.slot-pinned');
  const video2 = await rect(phone, '.video-box');
  const tabs2 = await rect(phone, '.tabs');
  check(Math.abs(pinned.y - video2.bottom) < 2 && pinned.bottom <= tabs2.y + 1, `the on-stage question is not directly under the video: ${JSON.stringify({ video2, pinned, tabs2 })}`);
  log('the on-stage question sits under the video');

  // A member takes the floor with the camera on: the picture, a live badge, the lower-third.
  const member = await room(context, base, tokA, 'member', c);
  await member.setViewportSize({ width: 1280, height: 800 });
  const memberId = await member.evaluate(() => window.__shangliang.conn.you.id);
  await chair.bringToFront();
  await chair.evaluate((id) => window.__shangliang.conn.cmd({ c: 'grant_floor', target: { participant: id }, limit_ms: 600_000 }), memberId);
  await member.bringToFront();
  await member.click('[data-media="camera"]');
  await phone.bringToFront();
  await until(phone, 'the picture plays', () => window.__shangliang.boxState() === 'playing', null, 30_000);
  check(await phone.isVisible('.live-badge'), 'no live badge while playing');
  await until(phone, 'the lower-third names the speaker', () => !document.querySelector('.lower-third').hidden && document.querySelector('.lower-third').textContent.includes('王委员'));
  await phone.waitForTimeout(300);
  await shot('3-live');
  log('live: badge and lower-third');

  // Fullscreen.
  await phone.tap('.vbtn.fullscreen');
  await until(phone, 'fullscreen', () => document.fullscreenElement?.classList.contains('video-box'), null, 5_000);
  await shot('4-fullscreen');
  await phone.tap('.vbtn.fullscreen');
  await until(phone, 'fullscreen left', () => !document.fullscreenElement, null, 5_000);

  // The composer stays at the bottom while the list scrolls; posting works.
  const before = await rect(phone, '.compose');
  await phone.evaluate(() => {
    const v = document.querySelector('.clist-viewport');
    v.scrollTop = 0;
  });
  await phone.waitForTimeout(150);
  const after = await rect(phone, '.compose');
  check(Math.abs(before.y - after.y) < 1 && after.bottom <= H, `the composer moved when the list scrolled: ${JSON.stringify({ before, after })}`);
  await phone.fill('.compose-input', '手机上也能发言');
  await phone.tap('.compose-send');
  await phone.waitForSelector('.compose-msg[data-kind="ok"]', { timeout: 10_000 });

  // The picture stops (camera off): an overlay says so rather than a frozen frame.
  await member.bringToFront();
  await member.click('[data-media="camera"]');
  await phone.bringToFront();
  await until(phone, 'the stalled overlay', () => window.__shangliang.boxState() === 'stalled' && !document.querySelector('.video-overlay').hidden, null, 15_000);
  check((await phone.textContent('.video-overlay-text')).includes('画面中断'), `overlay: ${await phone.textContent('.video-overlay-text')}`);
  await shot('5-stalled');
  log('stalled overlay; composer sticky');
  check(!c.problems.length, c.problems.join('\n'));
}

await run(main);
