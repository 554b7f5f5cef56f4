// Media over the fallbacks, in a real browser: two members join a room (websocket media
// signalling, fake camera and microphone) and each decodes the other's video, with the
// transport forced one way:
//
//   ICE_MODE=tcp    UDP is blocked for the browser (the Rust side runs this script inside a
//                   network namespace whose iptables drop UDP): media must go over ICE-TCP to
//                   the node's passive TCP candidate.
//   ICE_MODE=relay  iceTransportPolicy 'relay' with the iceServers the hub's `joined` answer
//                   hands out (a local coturn, TURN REST credentials): only relay candidates.
//
// Both check the selected candidate pair of every connection in getStats.
//
//   node tests/browser/ice.mjs <base-url> <screenshot-dir>
//   env: ICE_MODE, SHANGLIANG_MEDIA_TOKEN_A, SHANGLIANG_MEDIA_TOKEN_B, CHROMIUM

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2);
const mode = process.env.ICE_MODE;
if (!base || !shots || !['tcp', 'relay'].includes(mode)) {
  console.error('usage: ICE_MODE=tcp|relay node ice.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const tokens = [process.env.SHANGLIANG_MEDIA_TOKEN_A, process.env.SHANGLIANG_MEDIA_TOKEN_B];
if (!tokens[0] || !tokens[1]) throw new Error('SHANGLIANG_MEDIA_TOKEN_A and _B are required');

const PAGE = `<!doctype html><meta charset="utf-8"><title>ice test</title>
<style>body{font:14px sans-serif;background:#222;color:#eee} video{width:320px;height:180px;background:#000;margin:4px}</style>
<h3 id="who"></h3><div id="videos"></div>`;

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-features=LocalNetworkAccessChecks',
  // In the namespace the hub is at http://10.x.y.1, not a loopback origin: getUserMedia needs a
  // secure context.
  `--unsafely-treat-insecure-origin-as-secure=${base}`,
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

async function newPage(name) {
  const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), `sl-ice-${name}-`)), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ARGS,
    headless: true,
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => console.log(`[${name}] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
  await page.route(`${base}/__ice_test/page`, (r) => r.fulfill({ status: 200, contentType: 'text/html', body: PAGE }));
  await page.goto(`${base}/__ice_test/page`);
  return { ctx, page };
}

// Runs in the page: join, then build both connections with the join answer's iceServers.
async function member({ token, name, relay }) {
  document.getElementById('who').textContent = name;
  const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws');
  const pending = new Map();
  let nextId = 1;
  const ask = (req) => new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ t: 'media', id, req }));
  });
  let welcomed;
  const welcome = new Promise((r) => { welcomed = r; });
  const early = [];
  let onEvent = (ev) => early.push(ev);
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
    onEvent(m.ev);
  };
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = () => j(new Error('websocket failed')); });
  ws.send(JSON.stringify({ t: 'auth', v: 1, token }));
  await welcome;
  const joined = await ask({ op: 'join' });
  if (joined.op !== 'joined') throw new Error('join: ' + JSON.stringify(joined));
  const iceServers = (joined.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
  if (relay && iceServers.length === 0) throw new Error('relay mode, but the joined answer has no ice_servers: ' + JSON.stringify(joined));
  const config = relay ? { iceServers, iceTransportPolicy: 'relay' } : { iceServers };
  const pub = new RTCPeerConnection(config);
  const sub = new RTCPeerConnection(config);
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
  let chain = Promise.resolve();
  onEvent = (ev) => {
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
  early.forEach((ev) => onEvent(ev));
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
  for (const t of stream.getTracks()) pub.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
  await pub.setLocalDescription(await pub.createOffer());
  const ans = await ask({ op: 'publish_offer', sdp: pub.localDescription.sdp });
  if (ans.op !== 'publish_answer') throw new Error('publish: ' + JSON.stringify(ans));
  await pub.setRemoteDescription({ type: 'answer', sdp: ans.sdp });
  setInterval(() => ws.send(JSON.stringify({ t: 'ping', id: 0 })), 20000);
  return { participant: joined.participant, iceServers: iceServers.map((s) => s.urls) };
}

// Runs in the page: decoded video and the selected pair's local candidate, per connection.
async function stats() {
  const one = async (pc) => {
    const s = await pc.getStats();
    const by = new Map();
    s.forEach((r) => by.set(r.id, r));
    let pair = null;
    s.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = by.get(r.selectedCandidatePairId); });
    const local = pair ? by.get(pair.localCandidateId) : null;
    const remote = pair ? by.get(pair.remoteCandidateId) : null;
    const video = [];
    s.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') video.push({ framesDecoded: r.framesDecoded || 0, frameWidth: r.frameWidth || 0 }); });
    return {
      state: pc.connectionState,
      local: local && { protocol: local.protocol, type: local.candidateType, relayProtocol: local.relayProtocol, address: local.address },
      remote: remote && { protocol: remote.protocol, type: remote.candidateType, address: remote.address, port: remote.port },
      video,
    };
  };
  return { pub: await one(window.__pub), sub: await one(window.__sub) };
}

async function waitDecoding(label, page, timeoutMs = 60000) {
  const t0 = Date.now();
  let first = null;
  for (;;) {
    const s = await page.evaluate(stats);
    const ok = s.sub.video.filter((v) => v.framesDecoded > 0 && v.frameWidth > 0);
    if (ok.length >= 1 && s.pub.local && s.sub.local) {
      if (!first) first = ok;
      else if (ok[0].framesDecoded > first[0].framesDecoded) {
        console.log(`${label}: decoding ${JSON.stringify(ok)}; pairs ${JSON.stringify({ pub: [s.pub.local, s.pub.remote], sub: [s.sub.local, s.sub.remote] })}`);
        return s;
      }
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${label}: no decoded video within ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function checkPair(label, s) {
  for (const which of ['pub', 'sub']) {
    const { local, remote } = s[which];
    if (mode === 'tcp' && (local.protocol !== 'tcp' || remote.protocol !== 'tcp')) {
      throw new Error(`${label} ${which}: the selected pair is not TCP: ${JSON.stringify(s[which])}`);
    }
    if (mode === 'relay' && local.type !== 'relay') {
      throw new Error(`${label} ${which}: the selected pair's local candidate is not a relay: ${JSON.stringify(s[which])}`);
    }
  }
}

const opened = [];
let failed = false;
try {
  const a = await newPage('alice');
  const b = await newPage('bob');
  opened.push(a, b);
  const relay = mode === 'relay';
  const [ja, jb] = await Promise.all([
    a.page.evaluate(member, { token: tokens[0], name: 'member A', relay }),
    b.page.evaluate(member, { token: tokens[1], name: 'member B', relay }),
  ]);
  console.log(`joined: ${JSON.stringify([ja, jb])}`);
  checkPair('member A', await waitDecoding('member A sees B', a.page));
  checkPair('member B', await waitDecoding('member B sees A', b.page));
  await a.page.screenshot({ path: join(shots, `ice-${mode}-member-a.png`) });
  console.log(`ice browser test (${mode}): ok`);
} catch (e) {
  failed = true;
  console.error(`ice browser test (${mode}) failed:`, e && e.stack ? e.stack : e);
  for (const [i, o] of opened.entries()) {
    try { await o.page.screenshot({ path: join(shots, `ice-${mode}-failure-${i}.png`) }); } catch {}
  }
} finally {
  for (const o of opened) {
    try { await o.ctx.close(); } catch {}
  }
}
process.exit(failed ? 1 : 0);
