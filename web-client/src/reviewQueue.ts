// The moderator's review queue (先审后发) as far as the protocol lets a client know it.
//
// The server holds every comment of a viewer or guest while review mode is on (and comments with a
// hold word at any time) and sends held comments to moderators in their batches, but it does not
// mark them (docs/protocol.md §5.2). So the console infers: a viewer's or guest's comment that
// arrives while review mode is on is *presumed held* until one of these settles it —
//   - its public copy arrives (a comment whose `approves` names it), or `comment_approved`;
//   - it is hidden (`hide` item or `comment_hidden`) — hiding a held comment is how it is rejected;
//   - approving it answers `not_held` (it was public after all).
// Comments held for a hold word while review is off are not seen as held (the server would have to
// mark them). The queue is pure: the console feeds it and renders `held()`.

import { isComment, isHide, type CommentModes, type Item } from './protocol';
import { toComment, type Comment } from './commentModel';

export class ReviewQueue {
  private review = false;
  private readonly queue = new Map<number, Comment>();
  /** seqs known to be settled (approved, hidden, or public): never queued again, e.g. after a reconnect replays them. */
  private readonly settled = new Set<number>();

  constructor(private readonly max = 1000) {}

  /** Review mode on/off (from `state` and `comment_modes`). Turning it off keeps what is queued:
   * the server keeps those comments held until a moderator approves or hides them. */
  handleModes(m: CommentModes): void {
    this.review = m.review;
  }

  reviewOn(): boolean {
    return this.review;
  }

  /** Items of the moderator's full view, in seq order (batches and `reset` snapshots alike). */
  handleItems(items: Item[]): void {
    for (const i of items) {
      if (isHide(i.body)) {
        this.settle(i.body.target);
        continue;
      }
      if (!isComment(i.body)) continue;
      if (typeof i.body.approves === 'number') {
        this.settle(i.body.approves);
        // The public copy itself is public.
        this.settled.add(i.seq);
        continue;
      }
      const c = toComment(i);
      if (!c || this.settled.has(c.seq) || this.queue.has(c.seq)) continue;
      if (this.review && (c.role === 'viewer' || c.role === 'guest')) {
        this.queue.set(c.seq, c);
        if (this.queue.size > this.max) this.queue.delete(this.queue.keys().next().value as number);
      }
    }
  }

  /** A `reset` replaced the moderator's view: rebuild from the snapshot (settled seqs stay settled). */
  handleReset(items: Item[]): void {
    this.queue.clear();
    this.handleItems(items);
  }

  /** `comment_approved` / `comment_hidden`, or an `approve_comment` answered `not_held`. */
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
