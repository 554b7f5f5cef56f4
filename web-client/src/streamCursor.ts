// Where a connection stands in its topic, and what each `subscribed` / `reset` / `batch` means
// for it: the pure part of the exactly-once, in-order delivery (docs/protocol.md §2.4–2.5).
// `Connection` feeds it the server's messages and carries out the decisions it returns.
//
//   const sub = cursor.subscribeRequest();      // send {t:'sub', topic, ...sub}
//   cursor.handleSubscribed(msg);               // then for every reset/batch:
//   const d = cursor.handleBatch(msg);          // deliver d.items, or resubscribe

import type { Batch, Item, Position, Reset, Subscribed } from './protocol';

export type Decision =
  | { do: 'none' }
  | { do: 'deliver'; items: Item[] }
  | { do: 'reset'; items: Item[]; reason: Reset['reason'] | 'first' }
  | { do: 'resubscribe'; why: 'gap' | 'epoch' };

/** How many items before the live edge a first visit asks for (`sub.last`, docs/protocol.md §2.4). */
export const HISTORY_ITEMS = 50;

export class StreamCursor {
  private pos: Position | null = null;
  /** A `sub` is in flight: batches of an older subscription are ignored until `subscribed`. */
  private awaiting = false;
  /** The sub in flight had no position to resume from (first load). */
  private first = false;
  readonly stats = { gaps: 0, resets: 0 };

  constructor(readonly topic: string) {}

  position(): Position | null {
    return this.pos ? { ...this.pos } : null;
  }

  awaitingSub(): boolean {
    return this.awaiting;
  }

  /**
   * The next `sub`: `resume` from the position held, or, without one (a first visit), `last`: the
   * server starts [`HISTORY_ITEMS`] items before the live edge (from the durable record after a
   * restart), so a new viewer sees the recent comments instead of an empty list.
   */
  subscribeRequest(): { resume?: Position; last?: number } {
    this.awaiting = true;
    this.first = this.pos === null;
    return this.pos ? { resume: { ...this.pos } } : { last: HISTORY_ITEMS };
  }

  handleSubscribed(s: Pick<Subscribed, 'topic' | 'epoch' | 'offset'>): boolean {
    if (s.topic !== this.topic) return false;
    this.awaiting = false;
    // Honoured: the position stands. Not honoured with a position: a `reset` follows and replaces
    // it. Not honoured without one (a first visit): start at the live edge until the reset comes.
    if (!this.pos) this.pos = { epoch: s.epoch, offset: s.offset };
    return true;
  }

  handleReset(r: Pick<Reset, 'topic' | 'epoch' | 'offset' | 'reason' | 'snapshot'>): Decision {
    if (r.topic !== this.topic) return { do: 'none' };
    this.pos = { epoch: r.epoch, offset: r.offset };
    const reason = this.first ? 'first' : r.reason;
    if (!this.first) this.stats.resets++;
    this.first = false;
    return { do: 'reset', items: r.snapshot, reason };
  }

  handleBatch(b: Pick<Batch, 'topic' | 'epoch' | 'from' | 'to' | 'items'>): Decision {
    if (b.topic !== this.topic || this.awaiting || !this.pos) return { do: 'none' };
    if (b.epoch !== this.pos.epoch) return { do: 'resubscribe', why: 'epoch' };
    if (b.from > this.pos.offset + 1) {
      // Frames were lost (this connection fell behind): resume from what we hold.
      this.stats.gaps++;
      return { do: 'resubscribe', why: 'gap' };
    }
    if (b.to <= this.pos.offset) return { do: 'none' };
    const held = this.pos.offset;
    const fresh = b.from <= held ? b.items.filter((i) => i.seq > held) : b.items;
    this.pos.offset = b.to;
    return fresh.length ? { do: 'deliver', items: fresh } : { do: 'none' };
  }
}

/** The wait before reconnect attempt `attempt` (1-based): 0.5 s doubling to 15 s, ±25 % jitter. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(15_000, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.75 + random() * 0.5));
}
