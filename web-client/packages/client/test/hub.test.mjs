// The client against a real hub (the `shangliang` binary: SHANGLIANG_BIN, or the workspace's
// target/debug/shangliang that `cargo build` / `cargo test` leaves). Every frame the hub sends
// goes through the client's validator: one it refuses fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ShangliangClient } from '../dist/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = process.env.SHANGLIANG_BIN ?? resolve(here, '../../../../target/debug/shangliang');

let hub, dir, port;

const freePort = () => new Promise((r) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });

before(async () => {
  assert.ok(existsSync(bin), `the hub binary ${bin} is missing: run \`cargo build\` first or set SHANGLIANG_BIN`);
  dir = mkdtempSync(join(tmpdir(), 'shangliang-client-'));
  port = await freePort();
  hub = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dir, '--rtc-udp-port', '0', '--comments-per-minute', '600'], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`http://127.0.0.1:${port}/api/activities`)).ok) return; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the hub did not start within 20 s');
});

after(() => { hub?.kill(); rmSync(dir, { recursive: true, force: true }); });

async function viewerToken(name) {
  const r = await fetch(`http://127.0.0.1:${port}/api/activities/demo/viewer-token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
  assert.equal(r.status, 200);
  return (await r.json()).token;
}

function client(token, on = {}) {
  const invalid = [];
  const c = new ShangliangClient({ url: `ws://127.0.0.1:${port}/ws`, token, socket: (u) => new WebSocket(u), backoffMs: { initial: 50, max: 200 } }, { ...on, invalid: (e) => invalid.push(e.message) });
  return { c, invalid };
}

const until = async (cond, what) => {
  for (let i = 0; i < 200; i++) { if (cond()) return; await new Promise((r) => setTimeout(r, 50)); }
  assert.fail(`timed out waiting for ${what}`);
};

test('a viewer authenticates, posts with an ack, and another viewer receives it once', async () => {
  const seen = [];
  const reader = client(await viewerToken('读者'), { items: (_t, items) => seen.push(...items) });
  await reader.c.start();
  assert.equal(reader.c.you.role, 'viewer');
  assert.ok(reader.c.limits.max_frame_bytes > 0);
  reader.c.subscribe('demo');
  await until(() => reader.c.position('demo'), 'subscribed');
  const writer = client(await viewerToken('作者'));
  await writer.c.start();
  const ack = await writer.c.post('demo', '农村养老服务怎么保障？');
  assert.equal(ack.held, false);
  await until(() => seen.some((i) => i.seq === ack.seq), 'the comment in a batch');
  assert.equal(seen.filter((i) => i.seq === ack.seq).length, 1);
  await assert.rejects(writer.c.post('demo', ' '), (e) => e.code === 'text_empty');
  assert.deepEqual([...reader.invalid, ...writer.invalid], []);
  reader.c.close(); writer.c.close();
});

test('after the connection is cut the client resumes and misses nothing', async () => {
  const seen = [];
  const r = client(await viewerToken('断线者'), { items: (_t, items) => seen.push(...items.map((i) => i.seq)) });
  await r.c.start();
  r.c.subscribe('demo');
  await until(() => r.c.position('demo'), 'subscribed');
  const w = client(await viewerToken('发言者'));
  await w.c.start();
  const first = await w.c.post('demo', '断线前');
  await until(() => seen.includes(first.seq), 'the first comment');
  // Cut the socket under the client (as a network would): it reconnects and resumes.
  r.c['ws'].terminate();
  const during = await w.c.post('demo', '断线时');
  const after = await w.c.post('demo', '断线后');
  await until(() => seen.includes(after.seq), 'the comments after the cut');
  assert.ok(seen.includes(during.seq), 'the comment posted while disconnected arrives via the resume');
  assert.deepEqual(seen, [...new Set(seen)].sort((a, b) => a - b), 'each once, in order');
  assert.deepEqual(r.invalid, []);
  r.c.close(); w.c.close();
});
