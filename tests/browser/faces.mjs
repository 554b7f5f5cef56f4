// Helpers shared by the issue-13 browser tests: Chromium flags for fake media, opening a face
// (watch page, member room, console) and waiting until it is live with moderation state,
// geometry checks, and a console-error collector.

export const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // getDisplayMedia picks the (fake) screen without a picker.
  '--auto-select-desktop-capture-source=Entire screen',
  '--autoplay-policy=no-user-gesture-required',
];

export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };

/** Collects console errors and page errors of every page passed to `watch`. */
export function problemCollector() {
  const problems = [];
  return {
    problems,
    watch(page, label) {
      page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && problems.push(`${label}: ${m.text()}`));
      page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
    },
  };
}

/** Opens `path` on `context` and waits until the page is connected and has the moderation state. */
export async function openFace(context, base, path, label, collector) {
  const p = await context.newPage();
  collector?.watch(p, label);
  await p.goto(`${base}${path}`);
  await p.waitForSelector('.status[data-state="live"]', { state: 'attached', timeout: 15_000 });
  await p.waitForFunction(() => window.__shangliang?.store?.available, null, { timeout: 10_000 });
  return p;
}

export const room = (context, base, token, label, c, query = '') => openFace(context, base, `/room/demo?token=${encodeURIComponent(token)}${query}`, label, c);
export const moderatorConsole = (context, base, token, c) => openFace(context, base, `/console/demo?token=${encodeURIComponent(token)}`, 'console', c);
export const watchPage = (context, base, c, label = 'watch') => openFace(context, base, '/live/demo', label, c);

/** Waits for `fn(arg)` in the page to be truthy, with a message naming what was awaited. */
export async function until(page, what, fn, arg, timeout = 15_000) {
  try {
    return await (await page.waitForFunction(fn, arg, { timeout, polling: 100 })).jsonValue();
  } catch (e) {
    throw new Error(`${what}: not within ${timeout} ms (${e.message.split('\n')[0]})`);
  }
}

/** The rectangles of elements (page coordinates). */
export const rect = (page, selector) =>
  page.evaluate((s) => {
    const el = document.querySelector(s);
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return { x: r.x, y: r.y, w: r.width, h: r.height, bottom: r.bottom, right: r.right };
  }, selector);

/** Visible interactive controls smaller than `min` px in either direction (a checkbox counts by its label). */
export const smallTargets = (page, min = 44) =>
  page.evaluate((min) => {
    const out = [];
    const visible = (el) => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden' && !el.closest('[hidden]');
    for (const el of document.querySelectorAll('button, input, select, textarea, a[href], [role="tab"]')) {
      if (!visible(el)) continue;
      const target = el.matches('input[type="checkbox"], input[type="radio"]') ? el.closest('label') ?? el : el;
      const r = target.getBoundingClientRect();
      if (r.width + 0.5 < min || r.height + 0.5 < min) out.push(`${target.outerHTML.slice(0, 70)} ${r.width.toFixed(0)}×${r.height.toFixed(0)}`);
    }
    return out;
  }, min);
