// The comment list's model without the DOM: what is shown, in seq order, each comment once.
// Hides remove their target whenever it arrived; the public copy of an approved comment
// (`approves`) replaces the held original (moderators saw both), in live batches and in `reset`
// snapshots alike; the oldest comments are dropped beyond a cap.

import { isComment, isHide, type Item, type Role } from './protocol';

export interface Comment {
  seq: number;
  ts: number;
  /** The author's participant id (token subject). */
  authorId: string;
  name: string;
  role: Role;
  verified: boolean;
  text: string;
  /** On the public copy of an approved comment: the held original's seq. */
  approves?: number;
  /** The reader's own comment held for review, shown to them alone (审核中) until it is approved
   * (its public copy replaces it) or hidden. */
  pending?: boolean;
}

export function toComment(i: Item): Comment | null {
  if (!isComment(i.body)) return null;
  const a = i.body.author;
  const c: Comment = { seq: i.seq, ts: i.ts, authorId: a.id, name: a.name, role: a.role, verified: !!a.verified, text: i.body.text };
  if (typeof i.body.approves === 'number') c.approves = i.body.approves;
  return c;
}

/** What one `apply` changed, for the view: how many were dropped at the front and added at the end. */
export interface Applied {
  dropped: number;
  added: number;
  replaced: boolean;
}

export class CommentModel {
  private items: Comment[] = [];
  private pendingAppend: Comment[] = [];
  private pendingRemove: number[] = [];
  private pendingReplace: Comment[] | null = null;

  constructor(readonly cap = 5000) {}

  /** Queues new items of the topic (comments are shown, hides remove their target). */
  push(items: Item[]): void {
    for (const i of items) {
      const c = toComment(i);
      if (c) {
        this.pendingAppend.push(c);
        if (c.approves !== undefined) this.pendingRemove.push(c.approves);
      } else if (isHide(i.body)) this.pendingRemove.push(i.body.target);
    }
    // A hidden tab gets no animation frames: keep only what the list could show anyway.
    if (this.pendingAppend.length > 2 * this.cap) this.pendingAppend.splice(0, this.pendingAppend.length - this.cap);
  }

  /** Replaces everything (a `reset` snapshot, which may hold hides and approved copies too). */
  replace(items: Item[]): void {
    this.pendingAppend = [];
    this.pendingRemove = [];
    const gone = new Set<number>();
    for (const i of items) {
      if (isHide(i.body)) gone.add(i.body.target);
      else if (isComment(i.body) && typeof i.body.approves === 'number') gone.add(i.body.approves);
    }
    const list: Comment[] = [];
    let last = 0;
    for (const i of items) {
      const c = toComment(i);
      if (c && !gone.has(c.seq) && c.seq > last) {
        list.push(c);
        last = c.seq;
      }
    }
    this.pendingReplace = list.length > this.cap ? list.slice(list.length - this.cap) : list;
  }

  /** Shows `c` in seq order though older comments arrived since (one's own held comment: the
   * server never sends it to its author). */
  insert(c: Comment): void {
    this.apply();
    if (this.indexOf(c.seq) >= 0) return;
    this.insertSorted(c);
  }

  private insertSorted(c: Comment): void {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].seq < c.seq) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, c);
  }

  /** Whether changes are queued. */
  dirty(): boolean {
    return this.pendingReplace !== null || this.pendingAppend.length > 0 || this.pendingRemove.length > 0;
  }

  /** Applies the queued changes. */
  apply(): Applied {
    let replaced = false;
    if (this.pendingReplace) {
      this.items = this.pendingReplace;
      this.pendingReplace = null;
      replaced = true;
    }
    let added = 0;
    for (const c of this.pendingAppend) {
      const last = this.items.length ? this.items[this.items.length - 1].seq : 0;
      if (c.seq > last) {
        this.items.push(c);
        added++;
      } else if (this.items[this.items.length - 1].pending && this.indexOf(c.seq) < 0) {
        // One's own held comment was shown ahead of the stream: older comments still go in order.
        this.insertSorted(c);
        added++;
      }
    }
    this.pendingAppend = [];
    for (const seq of this.pendingRemove) {
      const i = this.indexOf(seq);
      if (i >= 0) this.items.splice(i, 1);
    }
    this.pendingRemove = [];
    let dropped = 0;
    if (this.items.length > this.cap) {
      dropped = this.items.length - this.cap;
      this.items.splice(0, dropped);
    }
    return { dropped, added, replaced };
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): Comment {
    return this.items[i];
  }

  /** The index of the comment `seq`, or -1 (binary search: items are in seq order). */
  indexOf(seq: number): number {
    let lo = 0;
    let hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.items[mid].seq;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  all(): Comment[] {
    return this.items.slice();
  }
}

/**
 * Row positions for rows of one fixed height, of which a few (the expanded ones) are taller:
 * the offset of row `i` is `i * rowHeight` plus the extra height of the expanded rows above it.
 * With no expanded row this is pure arithmetic, as before; with k of them each lookup costs O(k).
 */
export class RowLayout {
  /** (index, extra px), sorted by index. */
  private extras: [number, number][] = [];

  constructor(readonly rowHeight: number) {}

  setExtras(extras: [number, number][]): void {
    this.extras = extras.filter(([, e]) => e > 0).sort((a, b) => a[0] - b[0]);
  }

  /** The top of row `i`. */
  offset(i: number): number {
    let y = i * this.rowHeight;
    for (const [j, e] of this.extras) {
      if (j >= i) break;
      y += e;
    }
    return y;
  }

  /** The height of row `i`. */
  height(i: number): number {
    for (const [j, e] of this.extras) if (j === i) return this.rowHeight + e;
    return this.rowHeight;
  }

  total(n: number): number {
    return this.offset(n);
  }

  /** The row at height `y` (clamped to 0..n-1; 0 when there are none). */
  indexAt(y: number, n: number): number {
    if (n <= 0) return 0;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offset(mid) <= y) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
