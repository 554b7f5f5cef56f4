// Browser test of the organiser's console (issue 14): sign in; the create form refuses an empty
// title next to the field; create a livestream; invite a member and a guest (links with copy
// buttons); the public page waits (not started); open it from the console; the member joins from
// the invitation link (redeemed, on to the room with the person's token); the public page goes
// live. Screenshots: organiser-*.png.
//   node organiser.mjs <base> <shots>   env: SHANGLIANG_STAFF_USER, SHANGLIANG_STAFF_PASSWORD

import { createRequire } from 'node:module';
import path from 'node:path';
import { startRun } from './harness.mjs';
import { ARGS, problemCollector, until } from './faces.mjs';

const [base, shotDir] = process.argv.slice(2);
const user = process.env.SHANGLIANG_STAFF_USER;
const password = process.env.SHANGLIANG_STAFF_PASSWORD;
if (!base || !shotDir || !user || !password) {
  console.error('usage: SHANGLIANG_STAFF_USER=.. SHANGLIANG_STAFF_PASSWORD=.. node organiser.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** Serious or critical axe-core violations of the page as it is now (as a11y.mjs counts them). */
async function serious(page) {
  await page.addScriptTag({ path: axePath });
  const v = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((x) => ({ id: x.id, impact: x.impact, nodes: x.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  return v.filter((x) => x.impact === 'serious' || x.impact === 'critical').map((x) => `${x.id} (${x.nodes.join(', ')})`);
}

const { log, check, launch, run } = startRun({ shotDir, totalMs: 120_000 });
const shot = (p, name) => p.bringToFront().then(() => p.screenshot({ path: path.join(shotDir, `${name}.png`), fullPage: true }));
const local = (ms) => {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};

async function main() {
  const context = await launch({ headless: true, viewport: { width: 1280, height: 900 }, args: ARGS, locale: 'zh-CN' });
  const c = problemCollector();
  const org = await context.newPage();
  c.watch(org, 'organiser');
  await org.goto(`${base}/organise`);
  await org.fill('#org-user', user);
  await org.fill('#org-pass', password);
  await org.click('.org-signin button[type=submit]');
  await org.waitForSelector('#org-f-title');
  log('signed in');

  // Validation next to the field, before anything is sent.
  await org.click('.org-form button[type=submit]');
  await until(org, 'the empty title is marked', () => document.querySelector('#org-f-title')?.getAttribute('aria-invalid') === 'true');
  const msg = await org.textContent('#org-e-title');
  check(msg === '必填', `the title's message is ${JSON.stringify(msg)}`);
  await shot(org, 'organiser-validation');

  // Create a livestream starting in 20 minutes (it may open from an hour before).
  const start = Date.now() + 20 * 60_000;
  await org.fill('#org-f-title', '推进城乡融合发展网络议政');
  await org.fill('#org-f-topic', '以县城为重要载体推进城乡融合发展');
  await org.selectOption('#org-f-kind', 'livestream');
  await org.fill('#org-f-start', local(start));
  await org.fill('#org-f-end', local(start + 2 * 3_600_000));
  await org.fill('#org-f-slowModeSeconds', '0');
  await org.click('.org-form button[type=submit]');
  await org.waitForSelector('li.activity[data-state=scheduled]');
  const id = await org.getAttribute('li.activity[data-state=scheduled]', 'data-id');
  log('created', id);

  // Invite a member and a guest; each gets a link with a copy button.
  await org.click(`li.activity[data-id="${id}"] button[data-do=invitations]`);
  await org.waitForSelector('#org-inv-name');
  const invite = async (name, role, person, organisation) => {
    await org.fill('#org-inv-name', name);
    await org.selectOption('#org-inv-role', role);
    await org.fill('#org-inv-person', person);
    await org.fill('#org-inv-org', organisation);
    await org.click('.org-invite button[type=submit]');
  };
  await invite('王委员', 'member', 'm-wang', 'sn-xa');
  await org.waitForSelector('li[data-person="m-wang"] input.org-link');
  await invite('李教授', 'guest', '', '西北大学');
  await until(org, 'two invitations with links', () => document.querySelectorAll('.org-invitation-list li input.org-link').length === 2);
  const copies = await org.locator('.org-invitation-list button[data-do=copy]').count();
  check(copies === 2, `${copies} copy buttons`);
  const memberLink = await org.inputValue('li[data-person="m-wang"] input.org-link');
  check(memberLink.startsWith(`${base}/join/${id}?invite=`), `member link ${memberLink}`);
  await shot(org, 'organiser-invitations');
  // The signed-in console with its lists and forms, in both languages and on a phone.
  for (const size of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
    await org.setViewportSize(size);
    for (const lang of ['zh-CN', 'en']) {
      if ((await org.getAttribute('html', 'lang')) !== lang) await org.click('header button.lang');
      await until(org, `html lang ${lang}`, (l) => document.documentElement.lang === l, lang);
      const bad = await serious(org);
      check(!bad.length, `organiser console ${lang} ${size.width}px: serious or critical accessibility violations: ${bad.join('; ')}`);
      log(`axe: organiser console ${lang} ${size.width}px clean`);
    }
  }
  await org.setViewportSize({ width: 1280, height: 900 });
  if ((await org.getAttribute('html', 'lang')) !== 'zh-CN') await org.click('header button.lang');

  // The public page before the opening: not started.
  const pub = await context.newPage();
  c.watch(pub, 'public');
  await pub.goto(`${base}/live/${id}`);
  await until(pub, 'the public page waits', () => document.querySelector('.video-box')?.getAttribute('data-state') === 'not-started');
  await shot(pub, 'organiser-public-waiting');

  // Open it from the console.
  await org.bringToFront();
  await org.click(`li.activity[data-id="${id}"] button[data-action=open]`);
  await org.waitForSelector(`li.activity[data-id="${id}"][data-state=open]`);
  await shot(org, 'organiser-opened');
  log('opened');

  // The member follows the invitation link: redeemed, on to the room with a token.
  const member = await context.newPage();
  c.watch(member, 'member');
  await member.goto(memberLink);
  await member.waitForURL(new RegExp(`/room/${id}`), { timeout: 15_000 });
  await member.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
  const body = await member.textContent('body');
  check(!body.includes('缺少或无效的入场凭证'), 'the member has a token in the room');
  await shot(member, 'organiser-member-joined');

  // The public page goes live (polls the activity).
  await until(pub, 'the public page is live', () => document.querySelector('.video-box')?.getAttribute('data-state') !== 'not-started', undefined, 30_000);
  await shot(pub, 'organiser-public-live');
  const errors = c.problems.filter((p) => p.includes('page error'));
  check(errors.length === 0, `page errors: ${errors.join('; ')}`);
}

run(main);
