// Browser test: long comments (issue 13, item 5). A viewer posts a comment of 400 characters
// between two short ones. In the moderator console (desktop) and on the watch page (a phone),
// the long row shows two lines without bleeding into the next row or under the row's buttons;
// 全文 expands it, the rows below move down, 收起 folds it back.
//   node comments.mjs <base> <shots>     env: SHANGLIANG_MODERATOR_TOKEN

import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, PHONE, moderatorConsole, problemCollector, until, watchPage } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const tokM = process.env.SHANGLIANG_MODERATOR_TOKEN;
if (!base || !shotDir || !tokM) {
  console.error('usage: SHANGLIANG_MODERATOR_TOKEN=.. node comments.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, check, launch, run } = startRun({ shotDir, totalMs: 60_000 });

/** Geometry of the row showing `seq` and of the row below it. */
const geometry = (page, seq) =>
  page.evaluate((seq) => {
    const row = document.querySelector(`.crow[data-seq="${seq}"]:not([hidden])`);
    if (!row) return null;
    const r = (el) => (el ? el.getBoundingClientRect() : null);
    const below = [...document.querySelectorAll('.crow:not([hidden])')].filter((x) => Number(x.dataset.seq) > seq).sort((a, b) => Number(a.dataset.seq) - Number(b.dataset.seq))[0];
    const body = row.querySelector('.crow-body');
    const text = r(body);
    const actions = r(row.querySelector('.row-actions'));
    const more = row.querySelector('.crow-more');
    return {
      row: r(row).toJSON(),
      text: text.toJSON(),
      actions: actions?.toJSON() ?? null,
      below: below ? r(below).toJSON() : null,
      clipped: body.scrollHeight > body.clientHeight + 1,
      more: more && !more.hidden ? more.textContent : null,
      expanded: row.classList.contains('expanded'),
    };
  }, seq);

async function checkRows(page, label, seq) {
  await until(page, `${label}: long row`, (s) => !!document.querySelector(`.crow[data-seq="${s}"]:not([hidden])`), seq);
  let before = await geometry(page, seq);
  check(before && before.below, `${label}: rows not found ${JSON.stringify(before)}`);
  // Folded: two lines, inside its row, above the next row, clear of the buttons.
  check(before.text.bottom <= before.row.bottom + 0.5, `${label}: the text bleeds out of its row ${JSON.stringify(before)}`);
  check(before.below.top >= before.row.bottom - 1.5, `${label}: the next row overlaps ${JSON.stringify(before)}`);
  if (before.actions) check(before.text.right <= before.actions.left + 0.5, `${label}: the buttons cover the text ${JSON.stringify(before)}`);
  check(before.clipped && before.more, `${label}: a long comment has no 全文 control ${JSON.stringify(before)}`);
  await page.click(`.crow[data-seq="${seq}"] .crow-more`);
  await until(page, `${label}: expanded`, (s) => document.querySelector(`.crow[data-seq="${s}"]`)?.classList.contains('expanded'), seq);
  await page.waitForTimeout(150);
  const open = await geometry(page, seq);
  check(open.row.height > before.row.height * 2, `${label}: the expanded row is ${open.row.height} px high`);
  check(!open.clipped, `${label}: the expanded text is still clipped ${JSON.stringify(open)}`);
  if (open.below) check(open.below.top >= open.row.bottom - 1.5, `${label}: the next row overlaps the expanded one ${JSON.stringify(open)}`);
  if (open.actions) check(open.text.right <= open.actions.left + 0.5, `${label}: the buttons cover the expanded text`);
  await page.screenshot({ path: path.join(shotDir, `${label}-long-comment.png`) });
  await page.click(`.crow[data-seq="${seq}"] .crow-more`);
  await until(page, `${label}: folded again`, (s) => !document.querySelector(`.crow[data-seq="${s}"]`)?.classList.contains('expanded'), seq);
  before = await geometry(page, seq);
  check(before.row.height < 60, `${label}: the folded row is ${before.row.height} px high`);
}

async function main() {
  const desktop = await launch({ headless: true, viewport: { width: 1280, height: 800 }, args: ARGS });
  const c = problemCollector();
  const chair = await moderatorConsole(desktop, base, tokM, c);
  const viewer = await watchPage(desktop, base, c);
  const long = `关于城乡公交一体化的详细建议：${'首先要统筹规划线路，其次要保障财政补贴，再次要提高班次密度，最后要公开运营数据。'.repeat(9)}`.slice(0, 400);
  const posted = [];
  for (const text of ['前一条', long, '后一条']) {
    await viewer.fill('.compose-input', text);
    await viewer.press('.compose-input', 'Enter');
    await viewer.waitForSelector('.compose-msg[data-kind="ok"]', { timeout: 10_000 });
    posted.push(await until(viewer, 'own comment', (t) => window.__shangliang.list.snapshot().find((x) => x.text === t)?.seq, text));
    await viewer.waitForTimeout(200);
  }
  const seq = posted[1];
  await chair.bringToFront();
  await checkRows(chair, 'console', seq);
  log('console: the long comment stays in its row and expands');
  await viewer.bringToFront();
  await checkRows(viewer, 'watch', seq);
  log('watch (desktop): the long comment expands');

  // On a phone-sized screen.
  const p = viewer;
  await p.setViewportSize(PHONE.viewport);
  await p.waitForTimeout(300);
  await until(p, 'phone: comments', (s) => window.__shangliang.list.snapshot().some((x) => x.seq === s), seq);
  await checkRows(p, 'phone', seq);
  log('phone: the long comment expands');
  check(!c.problems.length, c.problems.join('\n'));
}

await run(main);
