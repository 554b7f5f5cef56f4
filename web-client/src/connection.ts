// One websocket session to the hub: auth, subscribe with resume, gap detection, keepalive,
// reconnect with backoff. Delivers each item of the topic exactly once, in seq order.

import {
  CLOSE,
  PROTOCOL_VERSION,
  decodeServer,
  encodeClient,
  type Ack,
  type Batch,
  type ClientMsg,
  type Command,
  type ConsultEvent,
  type ConsultSnapshot,
  type EventMsg,
  type MediaEvent,
  type MediaMsg,
  type MediaRequest,
  type Reply,
  type ReplyMsg,
  type StateMsg,
  type ErrorMsg,
  type Item,
  type Position,
  type Reset,
  type Subscribed,
  type UnknownMsg,
  type Welcome,
} from './protocol';
import { StreamCursor, backoffMs, type Decision } from './streamCursor';

export type ConnState =
  | { kind: 'connecting' }
  | { kind: 'live' }
  | { kind: 'reconnecting'; attempt: number; delayMs: number }
  | { kind: 'failed'; reason: 'token' | 'version' | 'topic'; message: string };

export interface ConnectionEvents {
  state(s: ConnState): void;
  welcome?(w: Welcome): void;
  /** New items after the last delivered one (no duplicates, no gaps). */
  items(items: Item[]): void;
  /** Drop everything shown for the topic and show `items` instead. */
  reset(items: Item[], reason: Reset['reason'] | 'first'): void;
  /** The activity's moderation state (after `subscribed` and after `reset`). */
  consultState?(s: ConsultSnapshot): void;
  /** Something happened in the activity (floor, questions, presence ...). */
  consultEvent?(e: ConsultEvent): void;
  /** A media event the server sent on its own (subscriber offers, ICE, tracks, speaker). */
  mediaEvent?(e: MediaEvent): void;
  /** A polls-and-statements event (docs/protocol.md §8.2), tagged by `k`. */
  consensusEvent?(e: { k: string; [field: string]: unknown }): void;
  /** Messages this module does not handle. */
  other?(m: UnknownMsg): void;
}

/**
 * A token source: `fresh` asks for a new one (the last was refused). Resolves null when there is
 * none to be had (the connection then fails: a member needs a new link); throws when getting one
 * failed for now (the connection retries with backoff).
 */
export type TokenSource = (fresh: boolean) => Promise<string | null>;

export class PostError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const PING_MS = 30_000;
const PONG_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

export function wsUrl(): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws`;
}

export class Connection {
  private ws: WebSocket | null = null;
  private readonly cursor: StreamCursor;
  private attempt = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private pongTimer: number | undefined;
  private connectTimer: number | undefined;
  private nextId = 1;
  private pending = new Map<number, { resolve(a: Ack | ReplyMsg | MediaMsg): void; reject(e: PostError): void }>();
  private stopped = false;
  private tokenRefused = false;
  private authed = false;
  /** Bumped by `stop`: an `open` still waiting for its token gives up. */
  private generation = 0;
  state: ConnState = { kind: 'connecting' };
  /** Counters for diagnostics and tests. */
  readonly stats = { connects: 0, gaps: 0, resets: 0, tokenRefreshes: 0 };
  /** When the last `post` of this connection was acknowledged (ms since the epoch; slow mode counts from it). */
  lastPostAckMs = 0;
  you: Welcome['you'] | null = null;
  limits: Welcome['limits'] | null = null;

  constructor(
    readonly topic: string,
    private readonly tokens: TokenSource,
    private readonly ev: ConnectionEvents,
  ) {
    this.cursor = new StreamCursor(topic);
  }

  start(): void {
    this.stopped = false;
    void this.open();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    window.clearTimeout(this.retryTimer);
    this.clearTimers();
    this.ws?.close(CLOSE.normal);
    this.ws = null;
    this.authed = false;
    this.rejectPending('connection closed');
  }

  private rejectPending(why: string): void {
    for (const p of this.pending.values()) p.reject(new PostError('not_connected', why));
    this.pending.clear();
  }

  /** Skip the backoff wait. */
  reconnectNow(): void {
    if (this.state.kind !== 'reconnecting') return;
    window.clearTimeout(this.retryTimer);
    void this.open();
  }

  /** Where the client stands in the topic (for tests and diagnostics). */
  position(): Position | null {
    return this.cursor.position();
  }

  isLive(): boolean {
    return this.state.kind === 'live';
  }

  send(msg: ClientMsg): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.authed) return false;
    this.ws.send(encodeClient(msg));
    return true;
  }

  /** Posts a comment; resolves with the `ack`, rejects with the error code. */
  post(text: string): Promise<Ack> {
    const id = this.nextId++;
    if (!this.send({ t: 'post', id, topic: this.topic, text })) {
      return Promise.reject(new PostError('not_connected', 'not connected'));
    }
    return new Promise((resolve, reject) =>
      this.pending.set(id, {
        resolve: (m) => {
          this.lastPostAckMs = Date.now();
          resolve(m as Ack);
        },
        reject,
      }),
    );
  }

  /** Sends a media request; resolves with its answer (`error` answers reject). */
  media(req: MediaRequest): Promise<MediaEvent> {
    const id = this.nextId++;
    if (!this.send({ t: 'media', id, req })) return Promise.reject(new PostError('not_connected', 'not connected'));
    return new Promise((resolve, reject) =>
      this.pending.set(id, {
        resolve: (m) => {
          const ev = (m as MediaMsg).ev;
          if (ev.op === 'error') reject(new PostError(ev.code, ev.message));
          else resolve(ev);
        },
        reject,
      }),
    );
  }

  /** Sends a polls-and-statements request; resolves with its `reply` (tagged by `r`), rejects with the error code. */
  consensus(req: { c: string; [field: string]: unknown }): Promise<{ r: string; [field: string]: unknown }> {
    const id = this.nextId++;
    if (!this.send({ t: 'consensus', id, topic: this.topic, req })) {
      return Promise.reject(new PostError('not_connected', 'not connected'));
    }
    return new Promise((resolve, reject) =>
      this.pending.set(id, { resolve: (m) => resolve((m as unknown as { reply: { r: string } }).reply), reject }),
    );
  }

  /** Sends a moderation command; resolves with the `reply`, rejects with the error code. */
  cmd(cmd: Command): Promise<Reply> {
    const id = this.nextId++;
    if (!this.send({ t: 'cmd', id, topic: this.topic, cmd })) {
      return Promise.reject(new PostError('not_connected', 'not connected'));
    }
    return new Promise((resolve, reject) =>
      this.pending.set(id, { resolve: (m) => resolve((m as ReplyMsg).reply), reject }),
    );
  }

  private setState(s: ConnState): void {
    this.state = s;
    this.ev.state(s);
  }

  private clearTimers(): void {
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.pongTimer);
    window.clearTimeout(this.connectTimer);
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    if (this.attempt === 0) this.setState({ kind: 'connecting' });
    const generation = this.generation;
    let token: string | null;
    try {
      token = await this.tokens(this.tokenRefused);
    } catch {
      if (generation === this.generation) this.scheduleRetry();
      return;
    }
    if (this.stopped || generation !== this.generation) return;
    if (!token) {
      this.setState({ kind: 'failed', reason: 'token', message: 'no token' });
      return;
    }
    if (this.tokenRefused) this.stats.tokenRefreshes++;
    this.stats.connects++;
    const ws = new WebSocket(wsUrl());
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.authed = false;
    this.connectTimer = window.setTimeout(() => ws.close(), CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      ws.send(encodeClient({ t: 'auth', v: PROTOCOL_VERSION, token }));
    };
    ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (this.ws !== ws) return;
      let m;
      try {
        m = decodeServer(e.data);
      } catch {
        return;
      }
      if (m) this.handle(m);
    };
    ws.onclose = (e: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.authed = false;
      this.clearTimers();
      this.rejectPending('connection lost');
      if (this.stopped) return;
      if (e.code === CLOSE.unauthenticated) {
        if (this.tokenRefused) {
          this.setState({ kind: 'failed', reason: 'token', message: e.reason });
          return;
        }
        // Refused token (expired, or a hub with another key): get a new one and retry at once.
        this.tokenRefused = true;
        this.setState({ kind: 'reconnecting', attempt: this.attempt + 1, delayMs: 0 });
        void this.open();
        return;
      }
      if (e.code === CLOSE.versionUnsupported) {
        this.setState({ kind: 'failed', reason: 'version', message: e.reason });
        return;
      }
      this.scheduleRetry();
    };
  }

  private scheduleRetry(): void {
    this.attempt += 1;
    const delayMs = backoffMs(this.attempt);
    this.setState({ kind: 'reconnecting', attempt: this.attempt, delayMs });
    this.retryTimer = window.setTimeout(() => void this.open(), delayMs);
  }

  private subscribe(): void {
    this.send({ t: 'sub', topic: this.topic, ...this.cursor.subscribeRequest() });
  }

  private carryOut(d: Decision): void {
    this.stats.gaps = this.cursor.stats.gaps;
    this.stats.resets = this.cursor.stats.resets;
    switch (d.do) {
      case 'deliver':
        this.ev.items(d.items);
        return;
      case 'reset':
        this.ev.reset(d.items, d.reason);
        return;
      case 'resubscribe':
        this.subscribe();
        return;
      case 'none':
        return;
    }
  }

  private handle(m: ReturnType<typeof decodeServer> & object): void {
    switch (m.t) {
      case 'welcome': {
        const w = m as Welcome;
        window.clearTimeout(this.connectTimer);
        this.authed = true;
        this.tokenRefused = false;
        this.you = w.you;
        this.limits = w.limits;
        this.ev.welcome?.(w);
        this.subscribe();
        this.pingTimer = window.setInterval(() => this.ping(), PING_MS);
        return;
      }
      case 'subscribed': {
        if (!this.cursor.handleSubscribed(m as Subscribed)) return;
        this.attempt = 0;
        this.setState({ kind: 'live' });
        return;
      }
      case 'reset':
        this.carryOut(this.cursor.handleReset(m as Reset));
        return;
      case 'batch':
        this.carryOut(this.cursor.handleBatch(m as Batch));
        return;
      case 'ack': {
        const a = m as Ack;
        const p = this.pending.get(a.id);
        if (p) {
          this.pending.delete(a.id);
          p.resolve(a);
        }
        return;
      }
      case 'error': {
        const e = m as ErrorMsg;
        if (e.id != null) {
          const p = this.pending.get(e.id);
          if (p) {
            this.pending.delete(e.id);
            p.reject(new PostError(e.code, e.message));
            return;
          }
        }
        if (e.code === 'unavailable' && this.cursor.awaitingSub()) {
          window.setTimeout(() => this.subscribe(), 1000);
          return;
        }
        if (e.code === 'no_such_topic' || e.code === 'forbidden') {
          if (this.cursor.awaitingSub()) this.setState({ kind: 'failed', reason: 'topic', message: e.message });
          return;
        }
        this.ev.other?.(m as UnknownMsg);
        return;
      }
      case 'reply': {
        const r = m as ReplyMsg;
        const p = this.pending.get(r.id);
        if (p) {
          this.pending.delete(r.id);
          p.resolve(r);
        }
        return;
      }
      case 'media': {
        const mm = m as MediaMsg;
        const p = mm.id != null ? this.pending.get(mm.id) : undefined;
        if (p && mm.id != null) {
          this.pending.delete(mm.id);
          p.resolve(mm);
        } else this.ev.mediaEvent?.(mm.ev);
        return;
      }
      case 'state': {
        const st = m as StateMsg;
        if (st.topic === this.topic) this.ev.consultState?.(st.state);
        return;
      }
      case 'event': {
        const e = m as EventMsg;
        if (e.topic === this.topic) this.ev.consultEvent?.(e.event);
        return;
      }
      case 'pong':
        window.clearTimeout(this.pongTimer);
        return;
      case 'consensus_reply': {
        const r = m as unknown as { id: number };
        const p = this.pending.get(r.id);
        if (p) {
          this.pending.delete(r.id);
          p.resolve(m as unknown as ReplyMsg);
        }
        return;
      }
      case 'consensus': {
        const e = m as unknown as { topic: string; event: { k: string } };
        if (e.topic === this.topic) this.ev.consensusEvent?.(e.event);
        return;
      }
      default:
        this.ev.other?.(m as UnknownMsg);
    }
  }

  private ping(): void {
    const ws = this.ws;
    if (!ws) return;
    if (this.send({ t: 'ping', id: this.nextId++ })) {
      window.clearTimeout(this.pongTimer);
      this.pongTimer = window.setTimeout(() => ws.close(), PONG_TIMEOUT_MS);
    }
  }
}
