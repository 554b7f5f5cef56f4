// @shangliang/client: a small client of the hub's websocket protocol (docs/protocol.md), JSON
// form. It authenticates, keeps its subscriptions across reconnects by resuming from the last
// (epoch, offset) it holds, delivers every item once and in order (dedup by seq, gap → resume),
// answers posts with their ack, reconnects with capped exponential backoff and full jitter, and
// validates every frame it receives before handing it on.

import { PROTOCOL_VERSION, ValidationError, validateServerMsg } from './messages.js';
import type { Author, ClientMsg, Item, Limits, Position, ServerMsg } from './messages.js';

export * from './messages.js';

/** The subset of the WebSocket API the client uses (the browser's, or `ws` in Node). */
export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

export interface ClientOptions {
  /** `ws://host:port/ws`. */
  url: string;
  /** The token, or a function giving one (called again after a 4401). */
  token: string | (() => string | Promise<string>);
  /** Opens a socket; default: the global `WebSocket`. */
  socket?: SocketFactory;
  /** First reconnect delay (ms, default 500) and the cap (default 30,000). */
  backoffMs?: { initial: number; max: number };
  /** Keepalive interval (ms, default 30,000; the hub closes after 90 s of silence). */
  pingMs?: number;
  /** For tests: the random source of the jitter. */
  random?: () => number;
}

export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface Handlers {
  /** Items of a topic, each once, in seq order. */
  items?: (topic: string, items: Item[]) => void;
  /** The topic's history was replaced (the resume could not be honoured): drop and show `snapshot`. */
  reset?: (topic: string, snapshot: Item[], reason: string) => void;
  /** Items of a range thinned out of the public view (§2.5). */
  thinned?: (topic: string, count: number) => void;
  event?: (topic: string, event: { t: string; [k: string]: unknown }) => void;
  state?: (topic: string, state: Record<string, unknown>) => void;
  welcome?: (you: Author, limits: Limits) => void;
  status?: (status: Status, detail?: string) => void;
  /** A frame failed validation (it is dropped). */
  invalid?: (error: ValidationError, raw: unknown) => void;
  /** An `error` frame without an id (bad frame, frame rate). */
  error?: (code: string, message: string) => void;
}

export class ProtocolError extends Error {
  constructor(public code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

/** Close codes after which reconnecting cannot help (a client bug, §4). */
const FATAL = new Set([4400, 4426, 1009]);

/** The delay before reconnect attempt `attempt` (0-based): full jitter over a capped exponential. */
export function backoffDelay(attempt: number, initial: number, max: number, random: () => number): number {
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

interface Pending { resolve: (ack: { seq: number; held: boolean }) => void; reject: (e: Error) => void }

export class ShangliangClient {
  private ws: SocketLike | null = null;
  private positions = new Map<string, Position | null>();
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private attempt = 0;
  private authed = false;
  private stopped = false;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private waiting: (() => void)[] = [];
  status: Status = 'closed';
  you: Author | null = null;
  limits: Limits | null = null;

  constructor(private opts: ClientOptions, private on: Handlers = {}) {}

  /** Connects (and keeps reconnecting until `close`). Resolves once authenticated. */
  start(): Promise<void> {
    this.stopped = false;
    const ready = this.ready();
    void this.open();
    return ready;
  }

  /** Resolves when the client is authenticated. */
  ready(): Promise<void> {
    return this.authed ? Promise.resolve() : new Promise((r) => this.waiting.push(r));
  }

  /** Subscribes to `topic`; after a reconnect the subscription resumes where it was. */
  subscribe(topic: string): void {
    if (!this.positions.has(topic)) this.positions.set(topic, null);
    if (this.authed) this.sendSub(topic);
  }

  unsubscribe(topic: string): void {
    this.positions.delete(topic);
    if (this.authed) this.send({ t: 'unsub', topic });
  }

  /** The position held for `topic` (what a resume would ask for). */
  position(topic: string): Position | null {
    return this.positions.get(topic) ?? null;
  }

  /**
   * Posts a comment. Resolves with its ack once it is durable; rejects with a `ProtocolError`
   * (`rate_limited`, `text_too_long`, …) or, if the connection drops first, with
   * `ProtocolError('disconnected')` — the comment may or may not have been stored then.
   */
  post(topic: string, text: string): Promise<{ seq: number; held: boolean }> {
    if (!this.authed) return Promise.reject(new ProtocolError('disconnected', 'not connected'));
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ t: 'post', id, topic, text });
    });
  }

  close(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.ws?.close(1000, 'bye');
    this.teardown('closed');
  }

  // ---- internals ----

  private setStatus(s: Status, detail?: string) {
    this.status = s;
    this.on.status?.(s, detail);
  }

  private async open() {
    this.setStatus(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const token = typeof this.opts.token === 'function' ? await this.opts.token() : this.opts.token;
    const factory = this.opts.socket ?? ((url: string) => new (globalThis as unknown as { WebSocket: new (u: string) => SocketLike }).WebSocket(url));
    const ws = factory(this.opts.url);
    this.ws = ws;
    ws.onopen = () => this.send({ t: 'auth', v: PROTOCOL_VERSION, token });
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.teardown('reconnecting');
      if (this.stopped) return this.setStatus('closed');
      // 4401 with a fixed token: the same token would be refused again.
      if (FATAL.has(ev.code) || (ev.code === 4401 && typeof this.opts.token === 'string')) {
        this.stopped = true;
        return this.setStatus('closed', `closed ${ev.code} ${ev.reason}: a client bug, not retried`);
      }
      const b = this.opts.backoffMs ?? { initial: 500, max: 30_000 };
      const delay = backoffDelay(this.attempt++, b.initial, b.max, this.opts.random ?? Math.random);
      this.setStatus('reconnecting', `closed ${ev.code}; retry in ${delay} ms`);
      this.retryTimer = setTimeout(() => void this.open(), delay);
    };
  }

  private teardown(status: Status) {
    this.authed = false;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    for (const p of this.pending.values()) p.reject(new ProtocolError('disconnected', 'the connection closed before the answer'));
    this.pending.clear();
    if (status === 'closed') this.setStatus('closed');
  }

  private send(m: ClientMsg) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(m));
  }

  private sendSub(topic: string) {
    const pos = this.positions.get(topic);
    this.send(pos ? { t: 'sub', topic, resume: pos } : { t: 'sub', topic });
  }

  private receive(data: unknown) {
    let msg: ServerMsg | null;
    try {
      if (typeof data !== 'string') throw new ValidationError('a binary frame on a JSON connection');
      msg = validateServerMsg(JSON.parse(data));
    } catch (e) {
      const err = e instanceof ValidationError ? e : new ValidationError(String(e));
      this.on.invalid?.(err, data);
      return;
    }
    if (msg) this.handle(msg);
  }

  private handle(m: ServerMsg) {
    switch (m.t) {
      case 'welcome': {
        this.authed = true;
        this.attempt = 0;
        this.you = m.you;
        this.limits = m.limits;
        this.on.welcome?.(m.you, m.limits);
        this.setStatus('open');
        for (const topic of this.positions.keys()) this.sendSub(topic);
        const ping = this.opts.pingMs ?? 30_000;
        let n = 0;
        this.pingTimer = setInterval(() => this.send({ t: 'ping', id: ++n }), ping);
        for (const w of this.waiting.splice(0)) w();
        return;
      }
      case 'subscribed':
        if (this.positions.has(m.topic)) this.positions.set(m.topic, { epoch: m.epoch, offset: m.offset });
        return;
      case 'reset':
        if (!this.positions.has(m.topic)) return;
        this.positions.set(m.topic, { epoch: m.epoch, offset: m.offset });
        this.on.reset?.(m.topic, m.snapshot, m.reason);
        return;
      case 'batch': {
        const pos = this.positions.get(m.topic);
        if (!pos || m.epoch !== pos.epoch) return;
        if (m.to <= pos.offset) return; // all seen (a duplicate after a resume)
        if (m.from > pos.offset + 1) {
          // Frames were lost for this connection: resume from what is held (§2.5).
          this.sendSub(m.topic);
          return;
        }
        const fresh = m.items.filter((it) => it.seq > pos.offset);
        pos.offset = m.to;
        if (fresh.length) this.on.items?.(m.topic, fresh);
        if (m.thinned) this.on.thinned?.(m.topic, m.thinned);
        return;
      }
      case 'ack': {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        p?.resolve({ seq: m.seq, held: m.held });
        return;
      }
      case 'error': {
        const p = m.id != null ? this.pending.get(m.id) : undefined;
        if (p && m.id != null) {
          this.pending.delete(m.id);
          p.reject(new ProtocolError(m.code, m.message));
        } else {
          this.on.error?.(m.code, m.message);
        }
        return;
      }
      case 'event':
        this.on.event?.(m.topic, m.event);
        return;
      case 'state':
        this.on.state?.(m.topic, m.state);
        return;
      default:
        return;
    }
  }
}
