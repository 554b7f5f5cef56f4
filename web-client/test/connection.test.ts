// The connection against a fake WebSocket: what it sends, how it resumes after a drop, how it
// renews a refused token, and how posts resolve.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Connection, type ConnState } from '../src/connection';
import type { Item } from '../src/protocol';
import { Decoder, Encoder } from '@msgpack/msgpack';

const dec = new Decoder();
const enc = new Encoder();

class FakeSocket {
  static all: FakeSocket[] = [];
  static OPEN = 1;
  readyState = 0;
  binaryType = 'blob';
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: ArrayBuffer }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(b: Uint8Array): void {
    this.sent.push(dec.decode(b) as Record<string, unknown>);
  }
  close(code = 1000): void {
    this.drop(code);
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  deliver(m: unknown): void {
    const b = enc.encode(m);
    this.onmessage?.({ data: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer });
  }
  drop(code = 1006, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const item = (seq: number): Item => ({ seq, ts: seq, body: { k: 'comment', author: { id: 'v-1', name: '网友', role: 'viewer' , verified: false }, text: `c${seq}` } });
const welcome = { t: 'welcome', v: 1, you: { id: 'v-1', name: '网友', role: 'viewer' }, activity: 'demo', limits: { max_frame_bytes: 16384, max_text_chars: 500, comments_per_minute: 20, idle_timeout_ms: 90000 } };

beforeEach(() => {
  FakeSocket.all = [];
  vi.useFakeTimers();
  vi.stubGlobal('WebSocket', FakeSocket);
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function start(tokens = vi.fn(async (fresh: boolean) => (fresh ? 'fresh-token' : 'token'))) {
  const got: Item[] = [];
  const resets: [Item[], string][] = [];
  const states: ConnState[] = [];
  const conn = new Connection('demo', tokens, { state: (s) => states.push(s), items: (i) => got.push(...i), reset: (i, r) => resets.push([i, r]) });
  conn.start();
  return { conn, got, resets, states, tokens };
}

async function connect(): Promise<FakeSocket> {
  await vi.advanceTimersByTimeAsync(0);
  const ws = FakeSocket.all.at(-1)!;
  ws.open();
  return ws;
}

describe('Connection', () => {
  it('authenticates, subscribes asking for the recent history, and goes live', async () => {
    const { conn, got, resets, states } = start();
    const ws = await connect();
    expect(ws.sent[0]).toEqual({ t: 'auth', v: 1, token: 'token' });
    ws.deliver(welcome);
    expect(ws.sent[1]).toEqual({ t: 'sub', topic: 'demo', last: 50 });
    ws.deliver({ t: 'subscribed', topic: 'demo', epoch: 5, offset: 0, full_view: false });
    ws.deliver({ t: 'batch', topic: 'demo', epoch: 5, from: 1, to: 2, thinned: 0, items: [item(1), item(2)] });
    expect(states.at(-1)).toEqual({ kind: 'live' });
    expect(got).toEqual([item(1), item(2)]);
    expect(resets).toEqual([]);
    expect(conn.position()).toEqual({ epoch: 5, offset: 2 });
    conn.stop();
  });

  it('after a drop it reconnects with backoff and resumes from the last seq it holds', async () => {
    const { conn, got, states } = start();
    let ws = await connect();
    ws.deliver(welcome);
    ws.deliver({ t: 'subscribed', topic: 'demo', epoch: 5, offset: 0, full_view: false });
    ws.deliver({ t: 'batch', topic: 'demo', epoch: 5, from: 1, to: 3, thinned: 0, items: [item(1), item(2), item(3)] });
    ws.drop(1006);
    expect(states.at(-1)?.kind).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(700);
    ws = FakeSocket.all.at(-1)!;
    expect(FakeSocket.all.length).toBe(2);
    ws.open();
    ws.deliver(welcome);
    expect(ws.sent[1]).toEqual({ t: 'sub', topic: 'demo', resume: { epoch: 5, offset: 3 } });
    ws.deliver({ t: 'subscribed', topic: 'demo', epoch: 5, offset: 3, full_view: false });
    ws.deliver({ t: 'batch', topic: 'demo', epoch: 5, from: 3, to: 4, thinned: 0, items: [item(3), item(4)] });
    expect(got.map((i) => i.seq)).toEqual([1, 2, 3, 4]);
    conn.stop();
  });

  it('a refused token (4401) is renewed once at once; a second refusal fails the connection', async () => {
    const { conn, tokens, states } = start();
    let ws = await connect();
    ws.drop(4401, 'token expired');
    await vi.advanceTimersByTimeAsync(0);
    expect(tokens).toHaveBeenLastCalledWith(true);
    ws = FakeSocket.all.at(-1)!;
    ws.open();
    expect(ws.sent[0]).toEqual({ t: 'auth', v: 1, token: 'fresh-token' });
    ws.drop(4401, 'invalid token');
    expect(states.at(-1)).toEqual({ kind: 'failed', reason: 'token', message: 'invalid token' });
    expect(conn.stats.tokenRefreshes).toBe(1);
    conn.stop();
  });

  it('a post resolves with its ack and rejects with the error code', async () => {
    const { conn } = start();
    const ws = await connect();
    ws.deliver(welcome);
    const ok = conn.post('你好');
    const bad = conn.post('再来');
    const [p1, p2] = ws.sent.filter((m) => m.t === 'post') as { id: number }[];
    ws.deliver({ t: 'ack', id: p1.id, seq: 9, held: true });
    ws.deliver({ t: 'error', id: p2.id, code: 'slow_mode', message: 'wait 5000 ms' });
    await expect(ok).resolves.toMatchObject({ seq: 9, held: true });
    await expect(bad).rejects.toMatchObject({ code: 'slow_mode' });
    expect(conn.lastPostAckMs).toBeGreaterThan(0);
    conn.stop();
    await expect(conn.post('x')).rejects.toMatchObject({ code: 'not_connected' });
  });
});
