import { describe, expect, it } from 'vitest';
import { ReviewQueue } from '../src/reviewQueue';
import type { HeldComment, Item, Role } from '../src/protocol';

const c = (seq: number, role: Role = 'viewer', extra: Record<string, unknown> = {}): Item => ({
  seq,
  ts: seq,
  body: { k: 'comment', author: { id: `${role}-${seq}`, name: `${role}${seq}`, role }, text: `t${seq}`, ...extra },
});
const h = (seq: number): HeldComment => ({ seq, author: { id: `v-${seq}`, name: `网友${seq}`, role: 'viewer', verified: false }, text: `t${seq}`, at_ms: seq });
const modes = (review: boolean) => ({ review, slow_mode_ms: null, verified_only: false, lockdown: false, paused: false, comments_closed: false, questions_closed: false });
const held = (q: ReviewQueue) => q.held().map((x) => x.seq);

describe('ReviewQueue', () => {
  it('holds what the server marks held, nothing else, whatever the review mode', () => {
    const q = new ReviewQueue();
    q.handleModes(modes(true));
    // Comments in the full view are not presumed held.
    q.handleItems([c(1), c(2), c(3, 'guest')]);
    expect(held(q)).toEqual([]);
    q.handleState([h(2)]);
    q.handleHeld(h(4));
    q.handleModes(modes(false));
    // A hold word while review is off: marked by the server, so queued.
    q.handleHeld(h(6));
    expect(held(q)).toEqual([2, 4, 6]);
    expect(q.isHeld(2)).toBe(true);
    expect(q.isHeld(1)).toBe(false);
    expect(q.held()[0]).toMatchObject({ seq: 2, name: '网友2', text: 't2', authorId: 'v-2' });
  });

  it('an approval, a rejection, a public copy or a hide settles a comment; a late comment_held does not bring it back', () => {
    const q = new ReviewQueue();
    q.handleState([h(1), h(2), h(3), h(4)]);
    q.handleItems([c(5, 'viewer', { approves: 1 }), { seq: 6, ts: 6, body: { k: 'hide', target: 2 } }]);
    q.settle(3);
    expect(held(q)).toEqual([4]);
    q.handleHeld(h(3));
    expect(held(q)).toEqual([4]);
  });

  it('after a reconnect the state is the base: an approved comment is not queued again and a new one is', () => {
    const q = new ReviewQueue();
    q.handleState([h(1), h(2)]);
    q.settle(1);
    // Reconnected: the catch-up replays the original and its copy; the state lists what is held now.
    q.handleState([h(2), h(7)]);
    q.handleItems([c(1), c(8, 'viewer', { approves: 1 })]);
    expect(held(q)).toEqual([2, 7]);
  });

  it('turning review off keeps the queue (the server keeps those comments held)', () => {
    const q = new ReviewQueue();
    q.handleModes(modes(true));
    q.handleState([h(1)]);
    q.handleModes(modes(false));
    expect(held(q)).toEqual([1]);
    expect(q.reviewOn()).toBe(false);
  });

  it('next walks the queue and wraps', () => {
    const q = new ReviewQueue();
    q.handleState([h(1), h(5), h(9)]);
    expect(q.next(null)?.seq).toBe(1);
    expect(q.next(1)?.seq).toBe(5);
    expect(q.next(9)?.seq).toBe(1);
    expect(q.size).toBe(3);
  });

  it('keeps at most its limit, dropping the oldest', () => {
    const q = new ReviewQueue(2);
    q.handleState([h(1), h(2), h(3)]);
    expect(held(q)).toEqual([2, 3]);
  });
});
