// Media in a real browser: two members join a room over the websocket (media signalling, JSON
// form) with Chromium's fake camera and microphone and each decodes the other's video; a third
// page, which never asked for camera or microphone, watches the stage receive-only through WHEP.
// Its offer carries only mDNS `.local` host candidates and it must still connect.
//
//   node tests/browser/media.mjs <base-url> <screenshot-dir>
//   env: SHANGLIANG_MEDIA_TOKEN_A, SHANGLIANG_MEDIA_TOKEN_B (member tokens of the activity),
//        SHANGLIANG_MEDIA_ACTIVITY (default demo), CHROMIUM (default /usr/bin/chromium)
//
// The pages are served at the hub's origin (http://127.0.0.1:PORT, a secure context) by
// intercepting one path, so no web client build is needed.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node media.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const activity = process.env.SHANGLIANG_MEDIA_ACTIVITY || 'demo';
const tokens = [process.env.SHANGLIANG_MEDIA_TOKEN_A, process.env.SHANGLIANG_MEDIA_TOKEN_B];
if (!tokens[0] || !tokens[1]) throw new Error('SHANGLIANG_MEDIA_TOKEN_A and _B are required');

const PAGE = `<!doctype html><meta charset="utf-8"><title>media test</title>
<style>body{font:14px sans-serif;background:#222;color:#eee} video{width:320px;height:180px;background:#000;margin:4px}</style>
<h3 id="who"></h3><div id="videos"></div><pre id="log"></pre>`;

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // The test page is served by interception, which Chromium does not count as a loopback
  // origin; without this its websocket to 127.0.0.1 is refused as a local-network request.
  '--disable-features=LocalNetworkAccessChecks'];
// Members get a fake camera and microphone, granted without asking. The viewer's browser has
// neither flag: a page with media permission would expose its real addresses instead of mDNS names.
const MEDIA_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

async function newPage(name, withMedia = true) {
  const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), `sl-media-${name}-`)), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: withMedia ? [...ARGS, ...MEDIA_ARGS] : ARGS,
    headless: true,
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => console.log(`[${name}] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
  await page.route(`${base}/__media_test/page`, (r) => r.fulfill({ status: 200, contentType: 'text/html', body: PAGE }));
  await page.goto(`${base}/__media_test/page`);
  return { ctx, page };
}

// Runs in the page: join the room over the websocket, publish camera + mic, answer the
// server's subscriber offers, show what arrives.
async function member({ token, name }) {
  document.getElementById('who').textContent = name;
  const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws');
  const pending = new Map();
  let nextId = 1;
  const ask = (req) => new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ t: 'media', id, req }));
  });
  const pub = new RTCPeerConnection();
  const sub = new RTCPeerConnection();
  window.__sub = sub;
  window.__pub = pub;
  const cand = (c) => ({ candidate: c.candidate, sdp_mid: c.sdpMid ?? undefined, sdp_mline_index: c.sdpMLineIndex ?? undefined });
  pub.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) ask({ op: 'ice', pc: 'publisher', candidate: cand(e.candidate) }); };
  sub.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) ask({ op: 'ice', pc: 'subscriber', candidate: cand(e.candidate) }); };
  sub.ontrack = (e) => {
    if (e.track.kind !== 'video') return;
    const v = document.createElement('video');
    v.autoplay = true; v.muted = true; v.playsInline = true;
    v.srcObject = new MediaStream([e.track]);
    document.getElementById('videos').appendChild(v);
  };
  let welcomed;
  const welcome = new Promise((r) => { welcomed = r; });
  // Subscriber offers are handled one at a time, in order.
  let chain = Promise.resolve();
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.t === 'welcome') return welcomed(m);
    if (m.t === 'error') return console.log('error ' + JSON.stringify(m));
    if (m.t !== 'media') return;
    if (m.id != null && pending.has(m.id)) {
      const r = pending.get(m.id);
      pending.delete(m.id);
      if (m.ev.op === 'error') console.log('media error ' + JSON.stringify(m.ev));
      return r(m.ev);
    }
    const ev = m.ev;
    if (ev.op === 'subscriber_offer') {
      chain = chain.then(async () => {
        await sub.setRemoteDescription({ type: 'offer', sdp: ev.sdp });
        await sub.setLocalDescription(await sub.createAnswer());
        const r = await ask({ op: 'subscriber_answer', sdp: sub.localDescription.sdp });
        if (r.op !== 'ok') console.log('subscriber_answer: ' + JSON.stringify(r));
      });
    } else if (ev.op === 'connection_state') {
      console.log(`${ev.pc} ${ev.state}`);
    }
  };
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = () => j(new Error('websocket failed')); });
  ws.send(JSON.stringify({ t: 'auth', v: 1, token }));
  await welcome;
  const joined = await ask({ op: 'join' });
  if (joined.op !== 'joined') throw new Error('join: ' + JSON.stringify(joined));
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
  const self = document.createElement('video');
  self.autoplay = true; self.muted = true; self.srcObject = stream;
  document.getElementById('videos').appendChild(self);
  for (const t of stream.getTracks()) pub.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
  await pub.setLocalDescription(await pub.createOffer());
  const ans = await ask({ op: 'publish_offer', sdp: pub.localDescription.sdp });
  if (ans.op !== 'publish_answer') throw new Error('publish: ' + JSON.stringify(ans));
  await pub.setRemoteDescription({ type: 'answer', sdp: ans.sdp });
  // Keep the connection alive (idle timeout).
  setInterval(() => ws.send(JSON.stringify({ t: 'ping', id: 0 })), 20000);
  return joined.participant;
}

// Runs in the page: a receive-only WHEP viewer with no camera/microphone permission.
async function viewer({ activity }) {
  document.getElementById('who').textContent = 'WHEP viewer';
  const pc = new RTCPeerConnection();
  window.__sub = pc;
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (e) => {
    if (e.track.kind !== 'video') return;
    const v = document.createElement('video');
    v.autoplay = true; v.muted = true; v.playsInline = true;
    v.srcObject = new MediaStream([e.track]);
    document.getElementById('videos').appendChild(v);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {
    if (pc.iceGatheringState === 'complete') return r();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); };
    setTimeout(r, 5000);
  });
  const offer = pc.localDescription.sdp;
  const candidates = offer.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
  const resp = await fetch(`/whep/${activity}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
  if (resp.status !== 201) throw new Error(`WHEP ${resp.status}: ${await resp.text()}`);
  const location = resp.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
  return { candidates, location };
}

// Runs in the page: inbound video stats of the receiving connection.
async function videoStats() {
  const out = [];
  const stats = await window.__sub.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') out.push({ framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0 });
  });
  return { state: window.__sub.connectionState, video: out };
}

async function waitDecoding(label, page, wantTracks, timeoutMs = 60000) {
  const t0 = Date.now();
  let first = null;
  for (;;) {
    const s = await page.evaluate(videoStats);
    const ok = s.video.filter((v) => v.framesDecoded > 0 && v.frameWidth > 0);
    if (ok.length >= wantTracks) {
      if (!first) first = ok;
      else if (ok.every((v, i) => v.framesDecoded > (first[i]?.framesDecoded ?? 0))) {
        console.log(`${label}: decoding ${JSON.stringify(ok)} (state ${s.state})`);
        return ok;
      }
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${label}: no decoded video within ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const opened = [];
let failed = false;
try {
  const a = await newPage('alice');
  const b = await newPage('bob');
  opened.push(a, b);
  const [pa, pb] = await Promise.all([
    a.page.evaluate(member, { token: tokens[0], name: 'member A' }),
    b.page.evaluate(member, { token: tokens[1], name: 'member B' }),
  ]);
  console.log(`joined as ${pa} and ${pb}`);
  await waitDecoding('member A sees B', a.page, 1);
  await waitDecoding('member B sees A', b.page, 1);
  await a.page.screenshot({ path: join(shots, 'media-member-a.png') });
  await b.page.screenshot({ path: join(shots, 'media-member-b.png') });

  const v = await newPage('viewer', false);
  opened.push(v);
  const { candidates, location } = await v.page.evaluate(viewer, { activity });
  console.log(`viewer offer candidates: ${JSON.stringify(candidates)}; resource ${location}`);
  if (candidates.length === 0) throw new Error('the viewer offered no candidates');
  const notMdns = candidates.filter((c) => !/ [0-9a-f-]+\.local /i.test(c));
  if (notMdns.length > 0) throw new Error(`a page without camera permission must offer only .local candidates: ${JSON.stringify(notMdns)}`);
  await waitDecoding('WHEP viewer sees the stage', v.page, 1);
  await v.page.screenshot({ path: join(shots, 'media-whep-viewer.png') });
  const del = await v.page.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, location);
  if (del !== 200) throw new Error(`DELETE ${location}: ${del}`);
  console.log('media browser test: ok');
} catch (e) {
  failed = true;
  console.error('media browser test failed:', e && e.stack ? e.stack : e);
  for (const [i, o] of opened.entries()) {
    try { await o.page.screenshot({ path: join(shots, `media-failure-${i}.png`) }); } catch {}
  }
} finally {
  for (const o of opened) {
    try { await o.ctx.close(); } catch {}
  }
}
process.exit(failed ? 1 : 0);
