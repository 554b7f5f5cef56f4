// Accessibility audit (issue 13): axe-core (npm) in Chromium on the landing page, the watch page,
// the organiser's sign-in (issue 14; its signed-in console is audited by organiser.mjs),
// the member room and the moderator console, in Chinese and in English, at desktop and phone
// sizes. Fails on any violation of impact "serious" or "critical"; moderate and minor ones are
// printed. Screenshots: a11y-<page>-<lang>.png.
//   node a11y.mjs <base> <shots>   env: SHANGLIANG_MODERATOR_TOKEN, SHANGLIANG_MEMBER_TOKEN

import { createRequire } from 'node:module';
import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, problemCollector } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const tokM = process.env.SHANGLIANG_MODERATOR_TOKEN;
const tokA = process.env.SHANGLIANG_MEMBER_TOKEN;
if (!base || !shotDir || !tokM || !tokA) {
  console.error('usage: SHANGLIANG_MODERATOR_TOKEN=.. SHANGLIANG_MEMBER_TOKEN=.. node a11y.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, check, launch, run } = startRun({ shotDir, totalMs: 120_000 });
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const PAGES = [
  ['landing', '/', null],
  ['watch', '/live/demo', null],
  ['room', '/room/demo', tokA],
  ['console', '/console/demo', tokM],
  ['organise', '/organise', null],
];

async function audit(page) {
  await page.addScriptTag({ path: axePath });
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
}

async function main() {
  const context = await launch({ headless: true, viewport: { width: 1280, height: 800 }, args: ARGS });
  const c = problemCollector();
  const bad = [];
  // Something to audit: a comment, a long comment and a question (the console gets rows with
  // buttons, the question queue its actions).
  const seed = await context.newPage();
  await seed.goto(`${base}/live/demo`);
  await seed.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
  for (const text of ['无障碍检查的评论', '很长的评论'.repeat(40)]) {
    await seed.fill('.compose-input', text);
    await seed.press('.compose-input', 'Enter');
    await seed.waitForSelector('.compose-msg[data-kind="ok"]', { timeout: 10_000 });
  }
  await seed.fill('.ask-input', '无障碍检查的问题');
  await seed.press('.ask-input', 'Enter');
  await seed.waitForSelector('.question.q-mine', { timeout: 10_000 });
  await seed.close();
  for (const lang of ['zh-CN', 'en']) {
    for (const [name, url, token] of PAGES) {
      for (const size of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
        const p = await context.newPage();
        c.watch(p, `${name}-${lang}`);
        await p.setViewportSize(size);
        const q = new URLSearchParams({ lang });
        if (token) q.set('token', token);
        await p.goto(`${base}${url}?${q}`);
        if (name === 'landing') await p.waitForSelector('.activity');
        else if (name === 'organise') await p.waitForSelector('#org-user');
        else {
          await p.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
          await p.waitForFunction(() => window.__shangliang.store.available, null, { timeout: 10_000 });
        }
        check((await p.getAttribute('html', 'lang')) === lang, `${name}: html lang is not ${lang}`);
        await p.waitForTimeout(300);
        const violations = await audit(p);
        const tag = `${name} ${lang} ${size.width}px`;
        for (const v of violations) {
          const line = `${tag}: ${v.impact} ${v.id} — ${v.help} (${v.nodes.join(', ')})`;
          if (v.impact === 'serious' || v.impact === 'critical') bad.push(line);
          else log(line);
        }
        if (size.width === 1280) await p.screenshot({ path: path.join(shotDir, `a11y-${name}-${lang}.png`) });
        log(`${tag}: ${violations.length} violations (${violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').length} serious or critical)`);
        await p.close();
      }
    }
  }
  check(!bad.length, `serious or critical accessibility violations:\n${bad.join('\n')}`);
  check(!c.problems.length, c.problems.join('\n'));
}

await run(main);
