// The moderator's review queue (先审后发), as the server marks it (docs/protocol.md §5.2): the
// comments held now come in `state.held` (replacing what the queue held: after a reconnect the
// state is the base again), each new one in a `comment_held` event; a comment leaves the queue
// when it is approved (`comment_approved`, or its public copy — a comment whose `approves` names
// it — arrives), rejected (`comment_rejected`) or hidden (`comment_hidden`, a `hide` item). No
// guessing from the review mode: a comment held for a hold word while review is off is queued
// like any other, and a comment that was public is never shown as held.
// The queue is pure: the console feeds it and renders `held()`.

import { isComment, isHide, type CommentModes, type HeldComment, type Item } from './protocol';
import type { Comment } from './commentModel';

const fromHeld = (h: HeldComment): Comment => ({
  seq: h.seq,
  ts: h.at_ms,
  authorId: h.author.id,
  name: h.author.name,
  role: h.author.role,
  verified: !!h.author.verified,
  text: h.text,
});

export class ReviewQueue {
  private review = false;
  private readonly queue = new Map<number, Comment>();
  /** seqs settled since the last state: a `comment_held` that arrives late does not bring them back. */
  private readonly settled = new Set<number>();

  constructor(private readonly max = 1000) {}

  /** Review mode on/off (from `state` and `comment_modes`). Turning it off keeps the queue: the
   * server keeps those comments held until a moderator approves or rejects them. */
  handleModes(m: CommentModes): void {
    this.review = m.review;
  }

  reviewOn(): boolean {
    return this.review;
  }

  /** `state.held`: the comments held now, the base after every (re)subscription. */
  handleState(held: HeldComment[] | undefined): void {
    this.queue.clear();
    this.settled.clear();
    for (const h of held ?? []) this.add(h);
  }

  /** `comment_held`: a comment was stored held. */
  handleHeld(h: HeldComment): void {
    if (!this.settled.has(h.seq)) this.add(h);
  }

  private add(h: HeldComment): void {
    this.queue.set(h.seq, fromHeld(h));
    if (this.queue.size > this.max) this.queue.delete(this.queue.keys().next().value as number);
  }

  /** Items of the moderator's full view: public copies and hides settle their originals. */
  handleItems(items: Item[]): void {
    for (const i of items) {
      if (isHide(i.body)) this.settle(i.body.target);
      else if (isComment(i.body) && typeof i.body.approves === 'number') this.settle(i.body.approves);
    }
  }

  /** `comment_approved` / `comment_rejected` / `comment_hidden`, or an answer `not_held`. */
  settle(seq: number): void {
    this.queue.delete(seq);
    this.settled.add(seq);
    if (this.settled.size > 4 * this.max) {
      const it = this.settled.values();
      for (let k = 0; k < this.max; k++) this.settled.delete(it.next().value as number);
    }
  }

  isHeld(seq: number): boolean {
    return this.queue.has(seq);
  }

  /** Oldest first. */
  held(): Comment[] {
    return [...this.queue.values()].sort((a, b) => a.seq - b.seq);
  }

  get size(): number {
    return this.queue.size;
  }

  /** The comment after `seq` in the queue (or the first), for "next" navigation. */
  next(seq: number | null): Comment | null {
    const h = this.held();
    if (!h.length) return null;
    if (seq === null) return h[0];
    return h.find((c) => c.seq > seq) ?? h[0];
  }
}
