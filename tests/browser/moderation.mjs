// Browser test of the moderation faces: member room, moderator console and watch page together.
//   node tests/browser/moderation.mjs <hub-base-url> <screenshot-dir>
// Env: SHANGLIANG_MEMBER_TOKEN, SHANGLIANG_MODERATOR_TOKEN (tokens for activity `demo`).
// A member raises a hand and the moderator gives the floor; a viewer asks a question, the
// moderator publishes and pins it, the viewer sees it pinned and upvotes it; the moderator hides
// a viewer's comment and it leaves the viewer's screen. Exits 0 on success, 1 on failure.

import path from 'node:path';
import { startRun } from './harness.mjs';

const TOTAL_MS = 120_000;
const [base, shotDir] = process.argv.slice(2);
const memberToken = process.env.SHANGLIANG_MEMBER_TOKEN;
const moderatorToken = process.env.SHANGLIANG_MODERATOR_TOKEN;
if (!base || !shotDir || !memberToken || !moderatorToken) {
  console.error('usage: SHANGLIANG_MEMBER_TOKEN=.. SHANGLIANG_MODERATOR_TOKEN=.. node moderation.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, fail, check, launch, run } = startRun({ shotDir, totalMs: TOTAL_MS });

async function main() {
  const context = await launch({
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
  const problems = [];
  const open = async (label, url) => {
    const p = await context.newPage();
    p.on('console', (m) => m.type() === 'error' && problems.push(`${label}: ${m.text()}`));
    p.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
    await p.goto(url);
    await p.waitForSelector('.status[data-state="live"]', { timeout: 15_000 });
    await p.waitForFunction(() => window.__shangliang.store.available, null, { timeout: 10_000 });
    return p;
  };
  const shot = (p, name) => p.bringToFront().then(() => p.screenshot({ path: path.join(shotDir, `${name}.png`) }));
  const consolePage = await open('console', `${base}/console/demo?token=${encodeURIComponent(moderatorToken)}`);
  const room = await open('room', `${base}/room/demo?token=${encodeURIComponent(memberToken)}`);
  const watch = await open('watch', `${base}/live/demo`);
  log('three faces live with moderation state');

  // The floor: the member raises a hand, the moderator gives the floor to the next hand.
  const memberId = await room.evaluate(() => window.__shangliang.conn.you.id);
  await room.bringToFront();
  await room.click('[data-key="hand"]');
  await consolePage.bringToFront();
  await consolePage.waitForSelector(`.hands li[data-id="${memberId}"]`, { timeout: 10_000 });
  await consolePage.click('[data-key="grant-next"]');
  await room.bringToFront();
  await room.waitForSelector(`.floor-holder[data-holder="${memberId}"]`, { timeout: 10_000 });
  await room.waitForSelector('[data-key="yield"]');
  await shot(room, 'room-floor');
  log('floor granted to the member');

  // Questions: the viewer asks, the moderator publishes and pins, the viewer sees and upvotes.
  const question = `农村养老服务怎么保障？${Date.now()}`;
  await watch.bringToFront();
  await watch.fill('.ask-input', question);
  await watch.press('.ask-input', 'Enter');
  await consolePage.bringToFront();
  const qid = await consolePage
    .waitForFunction((q) => [...window.__shangliang.store.questions.values()].find((x) => x.text === q)?.id, question, { timeout: 10_000 })
    .then((h) => h.jsonValue());
  await consolePage.waitForSelector(`[data-key="q_publish-${qid}"]`);
  await consolePage.click(`[data-key="q_publish-${qid}"]`);
  await consolePage.waitForSelector(`[data-key="q_pin-${qid}"]`, { timeout: 10_000 });
  await consolePage.click(`[data-key="q_pin-${qid}"]`);
  await watch.bringToFront();
  await watch.waitForSelector(`.pinned-q[data-id="${qid}"]`, { timeout: 10_000 });
  // The asker cannot upvote their own question; another viewer can.
  check(!(await watch.locator(`[data-key="vote-${qid}"]`).count()), 'the asker is offered a vote on their own question');
  const other = await context.newPage();
  await other.addInitScript(() => {
    localStorage.removeItem('shangliang.viewer.demo');
    localStorage.setItem('shangliang.nickname', '另一位网友');
  });
  await other.goto(`${base}/live/demo`);
  await other.waitForSelector('.status[data-state="live"]', { timeout: 15_000 });
  await other.click('.tab[data-tab="questions"]').catch(() => {});
  await other.click(`[data-key="vote-${qid}"]`);
  await watch.bringToFront();
  await watch.waitForFunction((id) => window.__shangliang.store.questions.get(id)?.votes === 1, qid, { timeout: 10_000 });
  await shot(watch, 'watch-questions');
  log('question published, pinned and upvoted by another viewer');

  // Comment moderation: the viewer posts, the moderator hides it, it leaves the viewer's screen.
  const rude = `广告刷屏 ${Date.now()}`;
  await watch.fill('.compose-input', rude);
  await watch.press('.compose-input', 'Enter');
  await watch.waitForSelector('.compose-msg[data-kind="ok"]');
  const seq = await watch
    .waitForFunction((x) => window.__shangliang.list.snapshot().find((c) => c.text === x)?.seq, rude, { timeout: 10_000 })
    .then((h) => h.jsonValue());
  await consolePage.bringToFront();
  await consolePage.waitForSelector(`.crow[data-seq="${seq}"] .row-hide[aria-disabled="false"]`, { timeout: 10_000 });
  await consolePage.click(`.crow[data-seq="${seq}"] .row-hide`);
  // The reason is chosen on the row.
  await consolePage.click('.chooser .chooser-item >> nth=1');
  await watch.bringToFront();
  await watch.waitForFunction((s) => !window.__shangliang.list.snapshot().some((c) => c.seq === s), seq, { timeout: 10_000 });
  await shot(consolePage, 'console-moderation');
  log('comment hidden by the moderator');

  // Review mode: the viewer's comment is held (only moderators see it) until approved.
  await consolePage.bringToFront();
  await consolePage.check('#policy-review');
  await watch.waitForFunction(() => window.__shangliang.store.modes.review, null, { timeout: 10_000 });
  const held = `先审后发 ${Date.now()}`;
  await watch.bringToFront();
  await watch.fill('.compose-input', held);
  await watch.press('.compose-input', 'Enter');
  await watch.waitForSelector('.compose-msg[data-kind="ok"]');
  check((await watch.textContent('.compose-msg')).includes('审核'), 'held comment not explained to its author');
  await consolePage.bringToFront();
  const heldSeq = await consolePage
    .waitForFunction((x) => window.__shangliang.list.snapshot().find((c) => c.text === x)?.seq, held, { timeout: 10_000 })
    .then((h) => h.jsonValue());
  check(!(await other.evaluate((x) => window.__shangliang.list.snapshot().some((c) => c.text === x), held)), 'held comment shown to the public');
  // Its author sees it, marked as in review, until a moderator decides.
  check(await watch.evaluate((x) => window.__shangliang.list.snapshot().some((c) => c.text === x && c.pending), held), 'the author does not see their held comment as 审核中');
  await consolePage.waitForSelector(`.crow.held[data-seq="${heldSeq}"] .row-approve`, { timeout: 10_000 });
  await consolePage.click(`.crow[data-seq="${heldSeq}"] .row-approve`);
  await other.bringToFront();
  await other.waitForFunction((x) => window.__shangliang.list.snapshot().some((c) => c.text === x), held, { timeout: 10_000 });
  await watch.bringToFront();
  await watch.waitForFunction((x) => window.__shangliang.list.snapshot().filter((c) => c.text === x && !c.pending).length === 1 && !window.__shangliang.list.snapshot().some((c) => c.text === x && c.pending), held, { timeout: 10_000 });
  await consolePage.bringToFront();
  await consolePage.waitForFunction(
    (x) => window.__shangliang.list.snapshot().filter((c) => c.text === x).length === 1 && !window.__shangliang.list.snapshot().some((c) => c.seq === x.seq),
    held,
    { timeout: 10_000 },
  );
  await shot(consolePage, 'console-review');
  await consolePage.uncheck('#policy-review');
  log('held comment approved; the public sees it once, the console once');

  // Timeout: the moderator mutes the viewer for 10 minutes; the viewer's next comment is refused
  // with an explanation. The console's audit log lists the actions.
  const viewerSeq = await consolePage.evaluate((x) => window.__shangliang.list.snapshot().find((c) => c.text === x)?.seq, held);
  await consolePage.click(`.crow[data-seq="${viewerSeq}"] .row-timeout`);
  await consolePage.click('.chooser .chooser-item >> nth=0'); // 10 minutes
  await consolePage.click('.chooser .chooser-item >> nth=0'); // the reason
  await watch.bringToFront();
  await watch.waitForTimeout(300);
  await watch.fill('.compose-input', '还能发言吗');
  await watch.press('.compose-input', 'Enter');
  await watch.waitForSelector('.compose-msg[data-kind="error"]', { timeout: 10_000 });
  check((await watch.textContent('.compose-msg')).includes('禁言'), `timeout not explained: ${await watch.textContent('.compose-msg')}`);
  await consolePage.bringToFront();
  await consolePage.waitForFunction(() => document.querySelectorAll('.audit li').length >= 5, null, { timeout: 10_000 });
  await shot(consolePage, 'console-audit');
  log('viewer timed out; audit log shown');

  await other.close();
  check(!problems.length, problems.join('\n'));
}

await run(main);
