// The client's logic against a scripted socket: no network, no timers left running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShangliangClient, ValidationError, backoffDelay, validateServerMsg } from '../dist/index.js';

/** A socket the test plays the server of. */
function scripted() {
  const sockets = [];
  const factory = () => {
    const s = {
      readyState: 0, sent: [], onopen: null, onmessage: null, onclose: null, onerror: null,
      send(d) { this.sent.push(JSON.parse(d)); },
      close() { this.readyState = 3; },
      open() { this.readyState = 1; this.onopen?.({}); },
      push(m) { this.onmessage?.({ data: JSON.stringify(m) }); },
      drop(code = 1006) { this.readyState = 3; this.onclose?.({ code, reason: '' }); },
    };
    sockets.push(s);
    return s;
  };
  return { sockets, factory };
}

const you = { id: 'v-0123456789abcdef', name: '看客', role: 'viewer', verified: false };
const limits = { max_frame_bytes: 16384, max_text_chars: 500, comments_per_minute: 20, idle_timeout_ms: 90000, frames_per_second: 20 };
const comment = (seq, text) => ({ seq, ts: 1764230400000 + seq, body: { k: 'comment', author: you, text } });
const tick = () => new Promise((r) => setTimeout(r, 0));

test('validation refuses malformed frames and ignores unknown message types', () => {
  assert.equal(validateServerMsg({ t: 'new_kind_of_message', x: 1 }), null);
  assert.throws(() => validateServerMsg({ t: 'ack', id: -1, seq: 3 }), ValidationError);
  assert.throws(() => validateServerMsg({ t: 'batch', topic: 'demo', epoch: 1, from: 1, to: 1, thinned: 0, items: [{ seq: 1, ts: 1, body: { k: 'comment', text: 'x' } }] }), /author/);
  assert.throws(() => validateServerMsg({ t: 'welcome', v: 1, you: { ...you, role: 'king' }, activity: 'demo', limits }), /role/);
  assert.deepEqual(validateServerMsg({ t: 'ack', id: 1, seq: 2 }), { t: 'ack', id: 1, seq: 2, held: false });
  // Unknown item kinds and unknown fields pass (forward compatibility, §1 and §2.5).
  assert.ok(validateServerMsg({ t: 'batch', topic: 'demo', epoch: 1, from: 1, to: 1, thinned: 0, items: [{ seq: 1, ts: 1, body: { k: 'poll' } }], extra: true }));
});

test('backoff is capped exponential with full jitter', () => {
  assert.equal(backoffDelay(0, 500, 30000, () => 0.999), 499);
  assert.equal(backoffDelay(3, 500, 30000, () => 0.5), 2000);
  assert.equal(backoffDelay(20, 500, 30000, () => 0.999), 29970);
  assert.equal(backoffDelay(5, 500, 30000, () => 0), 0);
});

test('items come once and in order across a reconnect that resumes, and a gap resumes', async () => {
  const { sockets, factory } = scripted();
  const got = [];
  const statuses = [];
  const c = new ShangliangClient({ url: 'ws://x/ws', token: 't', socket: factory, backoffMs: { initial: 1, max: 1 }, random: () => 0 }, {
    items: (_t, items) => got.push(...items.map((i) => i.seq)),
    status: (s) => statuses.push(s),
  });
  const started = c.start();
  await tick();
  const a = sockets[0];
  a.open();
  assert.deepEqual(a.sent[0], { t: 'auth', v: 1, token: 't' });
  a.push({ t: 'welcome', v: 1, you, activity: 'demo', limits });
  await started;
  c.subscribe('demo');
  assert.deepEqual(a.sent.at(-1), { t: 'sub', topic: 'demo' });
  a.push({ t: 'subscribed', topic: 'demo', epoch: 7, offset: 10, full_view: false });
  a.push({ t: 'batch', topic: 'demo', epoch: 7, from: 11, to: 12, thinned: 0, items: [comment(11, 'a'), comment(12, 'b')] });
  // A gap (13 missing): the client resumes from 12 instead of showing 14.
  a.push({ t: 'batch', topic: 'demo', epoch: 7, from: 14, to: 14, thinned: 0, items: [comment(14, 'd')] });
  assert.deepEqual(a.sent.at(-1), { t: 'sub', topic: 'demo', resume: { epoch: 7, offset: 12 } });
  a.push({ t: 'subscribed', topic: 'demo', epoch: 7, offset: 12, full_view: false });
  a.push({ t: 'batch', topic: 'demo', epoch: 7, from: 13, to: 14, thinned: 0, items: [comment(13, 'c'), comment(14, 'd')] });
  // The connection drops; the next one resumes from 14 and a replayed 14 is not delivered twice.
  a.drop();
  await new Promise((r) => setTimeout(r, 5));
  const b = sockets[1];
  b.open();
  b.push({ t: 'welcome', v: 1, you, activity: 'demo', limits });
  assert.deepEqual(b.sent.at(-1), { t: 'sub', topic: 'demo', resume: { epoch: 7, offset: 14 } });
  b.push({ t: 'subscribed', topic: 'demo', epoch: 7, offset: 14, full_view: false });
  b.push({ t: 'batch', topic: 'demo', epoch: 7, from: 14, to: 14, thinned: 0, items: [comment(14, 'd')] });
  b.push({ t: 'batch', topic: 'demo', epoch: 7, from: 15, to: 15, thinned: 0, items: [comment(15, 'e')] });
  assert.deepEqual(got, [11, 12, 13, 14, 15]);
  assert.ok(statuses.includes('reconnecting'));
  c.close();
});

test('a post resolves with its ack, rejects with its error, and rejects when the connection drops', async () => {
  const { sockets, factory } = scripted();
  const c = new ShangliangClient({ url: 'ws://x/ws', token: 't', socket: factory, backoffMs: { initial: 1000, max: 1000 } });
  const started = c.start();
  await tick();
  const a = sockets[0];
  a.open();
  a.push({ t: 'welcome', v: 1, you, activity: 'demo', limits });
  await started;
  const ok = c.post('demo', '你好');
  const refused = c.post('demo', '太快');
  const lost = c.post('demo', '断了');
  const [p1, p2] = a.sent.filter((m) => m.t === 'post');
  a.push({ t: 'error', id: p2.id, code: 'rate_limited', message: 'too many comments' });
  a.push({ t: 'ack', id: p1.id, seq: 42, held: false });
  assert.deepEqual(await ok, { seq: 42, held: false });
  await assert.rejects(refused, (e) => e.code === 'rate_limited');
  a.drop();
  await assert.rejects(lost, (e) => e.code === 'disconnected');
  c.close();
});

test('a 4401 with a fixed token and a client-bug close are not retried', async () => {
  for (const code of [4401, 4400]) {
    const { sockets, factory } = scripted();
    const statuses = [];
    const c = new ShangliangClient({ url: 'ws://x/ws', token: 't', socket: factory, backoffMs: { initial: 1, max: 1 } }, { status: (s) => statuses.push(s) });
    void c.start();
    await tick();
    sockets[0].open();
    sockets[0].drop(code);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(sockets.length, 1, `no reconnect after ${code}`);
    assert.equal(c.status, 'closed');
  }
});
