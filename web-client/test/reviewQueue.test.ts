import { describe, expect, it } from 'vitest';
import { ReviewQueue } from '../src/reviewQueue';
import type { Item, Role } from '../src/protocol';

const c = (seq: number, role: Role = 'viewer', extra: Record<string, unknown> = {}): Item => ({
  seq,
  ts: seq,
  body: { k: 'comment', author: { id: `${role}-${seq}`, name: `${role}${seq}`, role }, text: `t${seq}`, ...extra },
});
const modes = (review: boolean) => ({ review, verified_only: false, lockdown: false });
const held = (q: ReviewQueue) => q.held().map((x) => x.seq);

describe('ReviewQueue', () => {
  it('queues viewers and guests while review is on; members and moderators are never held', () => {
    const q = new ReviewQueue();
    q.handleItems([c(1)]);
    q.handleModes(modes(true));
    q.handleItems([c(2), c(3, 'guest'), c(4, 'member'), c(5, 'moderator')]);
    expect(held(q)).toEqual([2, 3]);
    expect(q.isHeld(2)).toBe(true);
    expect(q.isHeld(1)).toBe(false);
  });

  it('an approved copy, a hide or a not_held answer settles a comment for good', () => {
    const q = new ReviewQueue();
    q.handleModes(modes(true));
    q.handleItems([c(1), c(2), c(3)]);
    q.handleItems([c(4, 'moderator', { approves: 1 }), { seq: 5, ts: 5, body: { k: 'hide', target: 2 } }]);
    q.settle(3);
    expect(held(q)).toEqual([]);
    // After a reconnect the same items come again (a reset snapshot): nothing comes back.
    q.handleReset([c(1), c(2), c(3), c(4, 'viewer', { approves: 1 }), c(6)]);
    expect(held(q)).toEqual([6]);
  });

  it('turning review off keeps what is queued (the server keeps it held)', () => {
    const q = new ReviewQueue();
    q.handleModes(modes(true));
    q.handleItems([c(1)]);
    q.handleModes(modes(false));
    q.handleItems([c(2)]);
    expect(held(q)).toEqual([1]);
    expect(q.reviewOn()).toBe(false);
  });

  it('next walks the queue and wraps', () => {
    const q = new ReviewQueue();
    q.handleModes(modes(true));
    q.handleItems([c(1), c(5), c(9)]);
    expect(q.next(null)?.seq).toBe(1);
    expect(q.next(1)?.seq).toBe(5);
    expect(q.next(9)?.seq).toBe(1);
    expect(q.size).toBe(3);
  });

  it('keeps at most its limit, dropping the oldest', () => {
    const q = new ReviewQueue(2);
    q.handleModes(modes(true));
    q.handleItems([c(1), c(2), c(3)]);
    expect(held(q)).toEqual([2, 3]);
  });
});
