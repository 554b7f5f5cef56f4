// Browser test of the public watch page (and the shells of the room and the console).
//   node tests/browser/watch.mjs <hub-base-url> <screenshot-dir>
// Optional env: SHANGLIANG_MEMBER_TOKEN, SHANGLIANG_MODERATOR_TOKEN (tokens for activity `demo`).
// The page talks to the hub through a TCP proxy in this process, so the test can cut the network
// (every connection dropped, new ones refused) and restore it. A second page posts comments
// straight to the hub over a JSON websocket. Exits 0 on success, 1 with a message on failure.

import net from 'node:net';
import path from 'node:path';
import { startRun } from './harness.mjs';

const TOTAL_MS = 150_000;
const [base, shotDir] = process.argv.slice(2);
if (!base || !shotDir) {
  console.error('usage: node watch.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const { log, fail, check, launch, run } = startRun({ shotDir, totalMs: TOTAL_MS });

// ---- requests to the Rust side: a line `@hide <seq>` on stdout, answered `ok` on stdin ----
const answers = [];
let answered = () => {};
process.stdin.setEncoding('utf8');
let stdinBuf = '';
process.stdin.on('data', (d) => {
  stdinBuf += d;
  let i;
  while ((i = stdinBuf.indexOf('\n')) >= 0) {
    answers.push(stdinBuf.slice(0, i));
    stdinBuf = stdinBuf.slice(i + 1);
    answered();
  }
});
async function askHub(request) {
  console.log(`@${request}`);
  while (!answers.length) await new Promise((r) => (answered = r));
  const a = answers.shift();
  if (a !== 'ok') throw new Error(`hub could not ${request}: ${a}`);
}

// ---- a TCP proxy that can cut the network ----
function startProxy(target) {
  let u = new URL(target);
  const sockets = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(Number(u.port), u.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        cut() {
          down = true;
          for (const s of sockets) s.destroy();
          sockets.clear();
        },
        restore() {
          down = false;
        },
        retarget(t) {
          u = new URL(t);
        },
        close() {
          server.close();
          for (const s of sockets) s.destroy();
        },
      }),
    ),
  );
}

// ---- the poster: a page on the hub itself with a JSON websocket ----
async function startPoster(page) {
  await page.goto(`${base}/healthz`);
  await page.evaluate(async () => {
    const r = await fetch('/api/activities/demo/viewer-token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: '测试发帖员' }),
    });
    if (!r.ok) throw new Error(`viewer token: ${r.status} ${await r.text()}`);
    const { token } = await r.json();
    const ws = new WebSocket(`ws://${location.host}/ws`);
    const waiting = new Map();
    await new Promise((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ t: 'auth', v: 1, token }));
      ws.onerror = () => reject(new Error('poster websocket failed'));
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.t === 'welcome') resolve();
        else if (m.t === 'ack' || (m.t === 'error' && m.id !== undefined)) {
          const w = waiting.get(m.id);
          waiting.delete(m.id);
          if (w) m.t === 'ack' ? w.resolve(m.seq) : w.reject(new Error(`${m.code}: ${m.message}`));
        } else if (m.t === 'error') reject(new Error(`${m.code}: ${m.message}`));
      };
    });
    let id = 1;
    window.postMany = (prefix, n) =>
      Promise.all(
        Array.from({ length: n }, (_, i) => {
          const myId = id++;
          ws.send(JSON.stringify({ t: 'post', id: myId, topic: 'demo', text: `${prefix}-${i}` }));
          return new Promise((resolve, reject) => waiting.set(myId, { resolve, reject }));
        }),
      );
  });
  const run = Date.now().toString(36);
  return async (name, n) => {
    const prefix = `${name}-${run}`;
    const texts = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    await page.evaluate(([p, k]) => window.postMany(p, k), [prefix, n]);
    return texts;
  };
}

// Controls without an accessible name (aria-label, aria-labelledby, a <label>, or text).
const unlabeled = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('button, input, textarea, select, a[href], [tabindex]')]
      .filter((el) => !el.closest('[hidden]') && el.getClientRects().length)
      .filter((el) => {
        const named =
          el.getAttribute('aria-label') ||
          (el.getAttribute('aria-labelledby') && document.getElementById(el.getAttribute('aria-labelledby'))?.textContent) ||
          (el.id && document.querySelector(`label[for="${el.id}"]`)?.textContent) ||
          el.textContent;
        return !named || !named.trim();
      })
      .map((el) => el.outerHTML.slice(0, 80)),
  );

const listTexts = (page) => page.evaluate(() => window.__shangliang.list.snapshot().map((c) => c.text));
const listSeqs = (page) => page.evaluate(() => window.__shangliang.list.snapshot().map((c) => c.seq));

async function waitForTexts(page, wanted, what, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  let missing = wanted;
  while (Date.now() < deadline) {
    const have = new Set(await listTexts(page));
    missing = wanted.filter((t) => !have.has(t));
    if (!missing.length) return;
    await page.waitForTimeout(100);
  }
  throw new Error(`${what}: ${missing.length} of ${wanted.length} comments never shown (first: ${missing[0]})`);
}

async function main() {
  const proxy = await startProxy(base);
  const context = await launch({
    headless: true,
    viewport: { width: 1280, height: 800 },
    locale: 'zh-CN',
    args: [
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
    ],
  });
  const shot = (page, name) => page.screenshot({ path: path.join(shotDir, `${name}.png`) });

  // Console errors: none allowed, except network errors while the test has the network cut.
  const problems = [];
  let outage = false;
  const watchConsole = (page, label) => {
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      const network = /WebSocket connection|ERR_|Failed to load resource|net::/i.test(text);
      if (outage && network) return;
      problems.push(`${label}: console error: ${text}`);
    });
    page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  };

  const app = proxy.url;
  const page = await context.newPage();
  watchConsole(page, 'watch');

  // 1. Landing page lists the demo activity with links to its faces.
  await page.goto(`${app}/`);
  await page.waitForSelector('.activity[data-id="demo"] a[href="/live/demo"]', { timeout: 10_000 });
  check(await page.locator('.activity[data-id="demo"] .state-live').count(), 'demo is not shown as live');
  check(!(await unlabeled(page)).length, `landing: unlabeled controls ${await unlabeled(page)}`);
  await shot(page, 'landing');
  log('landing ok');

  // 2. Watch page: token, connection, the slots.
  await page.goto(`${app}/live/demo`);
  await page.waitForSelector('.status[data-state="live"]', { timeout: 15_000 });
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('shangliang.viewer.demo') ?? 'null'));
  check(stored && stored.token && stored.exp > Date.now(), 'viewer token not stored with its expiry');
  for (const s of ['video', 'pinned', 'questions']) check(await page.locator(`[data-slot="${s}"]`).count() === 1, `slot ${s} missing`);
  check(!(await unlabeled(page)).length, `watch: unlabeled controls ${await unlabeled(page)}`);
  // Keyboard: Tab reaches the comment box.
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.classList.contains('compose-input'));
  }
  check(reached, 'Tab does not reach the comment box');
  log('watch page live');

  // 3. Posting from the page; client-side and server-side refusals are explained.
  const mine = `我的建议 ${Date.now()}`;
  await page.fill('.compose-input', mine);
  await page.press('.compose-input', 'Enter');
  await page.waitForSelector('.compose-msg[data-kind="ok"]', { timeout: 10_000 });
  await waitForTexts(page, [mine], 'own comment');
  await page.fill('.compose-input', '长'.repeat(501));
  await page.click('.compose-send');
  await page.waitForSelector('.compose-msg[data-kind="error"]');
  check((await page.textContent('.compose-msg')).includes('500'), 'too-long error does not name the limit');
  await page.fill('.compose-input', 'bidi \u202e override');
  await page.press('.compose-input', 'Enter');
  await page.waitForFunction(() => document.querySelector('.compose-msg')?.textContent?.includes('不允许'), null, { timeout: 10_000 });
  await page.fill('.compose-input', '');
  log('posting and errors ok');

  // 4. Comments from someone else arrive.
  const post = await startPoster(await context.newPage());
  await page.bringToFront();
  check(await page.evaluate(() => document.visibilityState) === 'visible', 'watch page is not visible');
  const all = [mine];
  const b1 = await post('第一批', 100);
  all.push(...b1);
  await waitForTexts(page, b1, 'first batch');
  await shot(page, 'watch-live');
  log('first batch shown');

  // 5. Network cut: the page shows it is reconnecting; comments posted meanwhile arrive afterwards.
  outage = true;
  proxy.cut();
  await page.waitForSelector('.status[data-state="reconnecting"]', { timeout: 15_000 });
  check(await page.locator('.status[data-state="reconnecting"]').isVisible(), 'reconnecting state not visible');
  const b2 = await post('断线期间', 100);
  all.push(...b2);
  await page.waitForTimeout(1500);
  await shot(page, 'watch-reconnecting');
  log('reconnecting shown:', (await page.textContent('.status')).trim());
  proxy.restore();
  await page.click('.status-retry', { timeout: 1000 }).catch(() => {});
  await page.waitForSelector('.status[data-state="live"]', { timeout: 20_000 });
  outage = false;
  const b3 = await post('恢复之后', 100);
  all.push(...b3);
  await waitForTexts(page, [...b2, ...b3], 'after reconnect');
  log('reconnected and caught up');

  // 6. A burst: 1000 comments as fast as the hub takes them; frames stay short.
  await page.evaluate(() => {
    window.__frames = { max: 0, last: performance.now(), run: true };
    const tick = (now) => {
      const f = window.__frames;
      f.max = Math.max(f.max, now - f.last);
      f.last = now;
      if (f.run) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const burstStart = Date.now();
  const b4 = await post('洪峰', 1000);
  all.push(...b4);
  await waitForTexts(page, b4, 'burst', 30_000);
  const maxFrame = await page.evaluate(() => ((window.__frames.run = false), window.__frames.max));
  log(`burst of 1000 shown in ${Date.now() - burstStart} ms; longest frame ${maxFrame.toFixed(0)} ms`);
  check(maxFrame < 1000, `a frame took ${maxFrame.toFixed(0)} ms during the burst`);

  // 7. Every comment exactly once, in seq order; the DOM holds only a window of rows.
  const texts = await listTexts(page);
  const seqs = await listSeqs(page);
  const counts = new Map();
  for (const t of texts) counts.set(t, (counts.get(t) ?? 0) + 1);
  const dups = [...counts].filter(([, n]) => n > 1);
  check(!dups.length, `duplicates: ${dups.slice(0, 5).map(([t, n]) => `${t}×${n}`).join(', ')}`);
  const missing = all.filter((t) => !counts.has(t));
  check(!missing.length, `missing: ${missing.length} (first ${missing[0]})`);
  check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), 'comments out of seq order');
  const rows = await page.locator('.crow:not([hidden])').count();
  check(rows > 0 && rows < 100, `virtualised list renders ${rows} rows`);
  const lastRow = await page.evaluate(() => {
    const rows = [...document.querySelectorAll('.crow:not([hidden])')];
    return rows.sort((a, b) => Number(b.dataset.seq) - Number(a.dataset.seq))[0]?.querySelector('.crow-text')?.textContent;
  });
  check(lastRow === texts[texts.length - 1], `newest row shows ${lastRow}, expected ${texts[texts.length - 1]}`);
  log(`${texts.length} comments, each once; ${rows} rows in the DOM`);

  // 7b. Lost frames: the page drops two batch frames (as when the hub drops frames for a client
  // that fell behind); the next batch shows the gap and the page resumes from its position.
  await page.evaluate(() => {
    const ws = window.__shangliang.conn.ws;
    const deliver = ws.onmessage;
    let drop = 2;
    ws.onmessage = (e) => {
      if (drop > 0 && typeof e.data !== 'string') {
        drop--;
        return;
      }
      deliver.call(ws, e);
    };
  });
  const gapTexts = [];
  for (let round = 0; round < 4; round++) {
    gapTexts.push(...(await post(`缺口${round}`, 10)));
    await page.waitForTimeout(150);
  }
  all.push(...gapTexts);
  await waitForTexts(page, gapTexts, 'after lost frames');
  const stats = await page.evaluate(() => window.__shangliang.conn.stats);
  check(stats.gaps >= 1, `no gap detected (${JSON.stringify(stats)})`);
  {
    const t = await listTexts(page);
    check(new Set(t).size === t.length, 'duplicates after the gap resume');
    check(all.every((x) => t.includes(x)), 'comments missing after the gap resume');
  }
  log('lost frames detected and resumed:', JSON.stringify(stats));

  // 7c. A moderator hides the newest comment (the hub appends a `hide` item): it leaves the screen.
  const newest = await page.evaluate(() => window.__shangliang.list.snapshot().at(-1));
  await askHub(`hide ${newest.seq}`);
  await page.waitForFunction((seq) => !window.__shangliang.list.snapshot().some((c) => c.seq === seq), newest.seq, { timeout: 10_000 });
  await page.waitForTimeout(100);
  check(!(await page.locator(`.crow[data-seq="${newest.seq}"]:not([hidden])`).count()), 'hidden comment still on screen');
  log(`comment ${newest.seq} hidden`);

  // 8. Viewer count and the language switch.
  await page.waitForFunction(() => /\d/.test(document.querySelector('.viewers')?.textContent ?? ''), null, { timeout: 15_000 });
  await page.click('.lang');
  check((await page.getAttribute('html', 'lang')) === 'en', 'language switch did not set lang=en');
  check((await page.textContent('.status')).includes('Connected'), 'status not translated');
  await shot(page, 'watch-en');
  await page.keyboard.press('Tab');
  await page.click('.lang');
  log('viewers and language ok');
  // Most of the public watches on phones: one column, the comment box in reach.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  await page.evaluate(() => window.scrollTo(0, 0));
  const box = await page.locator('.compose-input').boundingBox();
  check(box && box.y + box.height <= 844, `comment box out of reach on a phone-sized screen (${JSON.stringify(box)})`);
  await shot(page, 'watch-phone');
  await page.setViewportSize({ width: 1280, height: 800 });

  // 8b. The livestream: a moderator's page publishes the (fake) camera over WHIP; the watch page
  // plays the programme (LL-HLS through hls.js).
  const studio = await context.newPage();
  watchConsole(studio, 'studio');
  await studio.goto(`${base}/healthz`);
  await studio.evaluate(async (token) => {
    const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
    const pc = new RTCPeerConnection();
    for (const track of media.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => {
      if (pc.iceGatheringState === 'complete') return r();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
      setTimeout(r, 3000);
    });
    const resp = await fetch('/whip/demo', {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` },
      body: pc.localDescription.sdp,
    });
    if (resp.status !== 201) throw new Error(`WHIP ${resp.status}: ${await resp.text()}`);
    window.__whip = new URL(resp.headers.get('location'), location.href).toString();
    await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
    window.__pc = pc;
  }, process.env.SHANGLIANG_MODERATOR_TOKEN);
  await page.bringToFront();
  await page.waitForFunction(() => window.__shangliang.video() === 'playing', null, { timeout: 20_000 }).catch(async (e) => {
    const st = await page.evaluate(() => [window.__shangliang.video(), window.__shangliang.videoDetail(), document.querySelector('[data-slot=video]')?.textContent]);
    throw new Error(`video state ${JSON.stringify(st)}: ${e.message}`);
  });
  await page.waitForFunction(() => document.querySelector('.live-video')?.videoWidth > 0, null, { timeout: 20_000 });
  await page.waitForTimeout(500);
  await shot(page, 'watch-video');
  await studio.evaluate(async () => {
    await fetch(window.__whip, { method: 'DELETE' });
    window.__pc.close();
  });
  await studio.close();
  // The player is done here; the page is moved to another hub below, which has no programme.
  await page.evaluate(() => window.__shangliang.player?.stop());
  log('livestream plays (LL-HLS)');

  // 9. Member room and moderator console shells connect with tokens from the URL.
  for (const [face, tok] of [
    ['room', process.env.SHANGLIANG_MEMBER_TOKEN],
    ['console', process.env.SHANGLIANG_MODERATOR_TOKEN],
  ]) {
    if (!tok) continue;
    const p = await context.newPage();
    watchConsole(p, face);
    await p.goto(`${app}/${face}/demo?token=${encodeURIComponent(tok)}`);
    await p.waitForSelector('.status[data-state="live"]', { timeout: 15_000 });
    check(!(await p.evaluate(() => location.search.includes('token='))), `${face}: token left in the address bar`);
    if (face === 'room') {
      await p.click('[data-media="camera"]');
      await p.waitForFunction(() => document.querySelector('.tile.local video')?.srcObject, null, { timeout: 10_000 });
    }
    await p.waitForSelector('.crow:not([hidden])', { timeout: 10_000 });
    check(!(await unlabeled(p)).length, `${face}: unlabeled controls ${await unlabeled(p)}`);
    await shot(p, face);
    await p.close();
    log(`${face} ok`);
  }

  // 10. The hub is replaced by one with another record (new epoch, new signing key): the old token
  // is refused, a new one is fetched, the resume cannot be honoured and the page shows the new
  // hub's snapshot instead of its list.
  const second = process.env.SHANGLIANG_SECOND_BASE;
  if (second) {
    await page.bringToFront();
    outage = true;
    proxy.cut();
    proxy.retarget(second);
    await page.waitForSelector('.status[data-state="reconnecting"]', { timeout: 15_000 });
    proxy.restore();
    await page.click('.status-retry', { timeout: 1000 }).catch(() => {});
    const started = Date.now();
    const trace = setInterval(async () => {
      const st = await page.evaluate(() => [document.querySelector('.status')?.textContent, JSON.stringify(window.__shangliang.conn.stats)]).catch(() => null);
      if (Date.now() - started > 3000) log('still waiting for the new record:', st);
    }, 1000);
    await page.waitForFunction(() => window.__shangliang.conn.stats.resets >= 1, null, { timeout: 40_000 }).finally(() => clearInterval(trace));
    await page.waitForSelector('.status[data-state="live"]', { timeout: 20_000 });
    outage = false;
    const texts = await listTexts(page);
    check(texts.length === 3 && texts.every((t) => t.startsWith('另一个记录')), `after the reset the list holds ${JSON.stringify(texts.slice(0, 5))}`);
    check(await page.locator('.reset-note').isVisible(), 'reset notice not shown');
    const st = await page.evaluate(() => window.__shangliang.conn.stats);
    check(st.tokenRefreshes >= 1, `token was not renewed (${JSON.stringify(st)})`);
    await page.waitForTimeout(200);
    await shot(page, 'watch-reset');
    log('new record: list replaced by the snapshot', JSON.stringify(st));
  }

  // 9b. Video room: a member and the moderator turn their cameras on in /room; each sees the other.
  if (process.env.SHANGLIANG_MEMBER_TOKEN) {
    const rooms = [];
    for (const [label, tok] of [['member', process.env.SHANGLIANG_MEMBER_TOKEN], ['moderator', process.env.SHANGLIANG_MODERATOR_TOKEN]]) {
      const p = await context.newPage();
      watchConsole(p, `room-${label}`);
      await p.goto(`${base}/room/demo?token=${encodeURIComponent(tok)}`);
      await p.waitForSelector('.status[data-state="live"]', { timeout: 15_000 });
      await p.click('[data-media="camera"]');
      await p.waitForFunction(() => document.querySelector('.tile.local video')?.srcObject, null, { timeout: 10_000 });
      rooms.push(p);
    }
    for (const p of rooms) {
      await p.bringToFront();
      await p.waitForFunction(() => [...document.querySelectorAll('.tile.remote video')].some((v) => v.videoWidth > 0), null, { timeout: 30_000 });
    }
    await shot(rooms[0], 'room-video');
    for (const p of rooms) await p.close();
    log('video room: both see each other');
  }

  check(!problems.length, problems.join('\n'));
  proxy.close();
}

await run(main);
