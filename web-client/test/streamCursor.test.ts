import { describe, expect, it } from 'vitest';
import { HISTORY_ITEMS, StreamCursor, backoffMs } from '../src/streamCursor';
import type { Item } from '../src/protocol';

const c = (seq: number, text = `c${seq}`): Item => ({ seq, ts: seq, body: { k: 'comment', author: { id: 'v-1', name: '网友', role: 'viewer' , verified: false }, text } });
const batch = (from: number, to: number, items: Item[], epoch = 7) => ({ topic: 'demo', epoch, from, to, items });

describe('StreamCursor', () => {
  it('a first visit asks for the last items before the edge and takes their batch as its first view', () => {
    const k = new StreamCursor('demo');
    expect(k.subscribeRequest()).toEqual({ last: HISTORY_ITEMS });
    expect(k.handleSubscribed({ topic: 'demo', epoch: 7, offset: 38 })).toBe(true);
    expect(k.handleBatch(batch(39, 40, [c(39), c(40)]))).toEqual({ do: 'deliver', items: [c(39), c(40)] });
    expect(k.stats.resets).toBe(0);
    expect(k.position()).toEqual({ epoch: 7, offset: 40 });
    // A reset (the server could not honour anything) is still the first view, not a lost stream.
    const k2 = new StreamCursor('demo');
    k2.subscribeRequest();
    k2.handleSubscribed({ topic: 'demo', epoch: 7, offset: 40 });
    expect(k2.handleReset({ topic: 'demo', epoch: 7, offset: 40, reason: 'epoch_changed', snapshot: [c(40)] })).toEqual({ do: 'reset', items: [c(40)], reason: 'first' });
    expect(k2.stats.resets).toBe(0);
  });

  it('delivers each item once and in order across overlapping batches', () => {
    const k = new StreamCursor('demo');
    k.subscribeRequest();
    k.handleSubscribed({ topic: 'demo', epoch: 7, offset: 10 });
    expect(k.handleBatch(batch(11, 12, [c(11), c(12)]))).toEqual({ do: 'deliver', items: [c(11), c(12)] });
    // A catch-up batch that overlaps what we hold: only the new item.
    expect(k.handleBatch(batch(12, 13, [c(12), c(13)]))).toEqual({ do: 'deliver', items: [c(13)] });
    // Entirely old: nothing.
    expect(k.handleBatch(batch(11, 13, [c(11), c(12), c(13)]))).toEqual({ do: 'none' });
    // A range with nothing visible (held comments) still moves the position.
    expect(k.handleBatch(batch(14, 15, []))).toEqual({ do: 'none' });
    expect(k.position()).toEqual({ epoch: 7, offset: 15 });
  });

  it('a batch past the next seq is a gap: resubscribe with the position held', () => {
    const k = new StreamCursor('demo');
    k.subscribeRequest();
    k.handleSubscribed({ topic: 'demo', epoch: 7, offset: 10 });
    expect(k.handleBatch(batch(13, 14, [c(13), c(14)]))).toEqual({ do: 'resubscribe', why: 'gap' });
    expect(k.stats.gaps).toBe(1);
    expect(k.subscribeRequest().resume).toEqual({ epoch: 7, offset: 10 });
    // Batches of the old subscription are ignored until `subscribed`.
    expect(k.handleBatch(batch(11, 14, [c(11), c(14)]))).toEqual({ do: 'none' });
    k.handleSubscribed({ topic: 'demo', epoch: 7, offset: 10 });
    expect(k.handleBatch(batch(11, 14, [c(11), c(14)]))).toEqual({ do: 'deliver', items: [c(11), c(14)] });
  });

  it('another epoch resubscribes, and the reset that follows a failed resume is counted', () => {
    const k = new StreamCursor('demo');
    k.subscribeRequest();
    k.handleSubscribed({ topic: 'demo', epoch: 7, offset: 10 });
    expect(k.handleBatch(batch(1, 1, [c(1)], 9))).toEqual({ do: 'resubscribe', why: 'epoch' });
    expect(k.subscribeRequest().resume).toEqual({ epoch: 7, offset: 10 });
    k.handleSubscribed({ topic: 'demo', epoch: 9, offset: 3 });
    // Not honoured: the position stands until the reset replaces it.
    expect(k.position()).toEqual({ epoch: 7, offset: 10 });
    expect(k.handleReset({ topic: 'demo', epoch: 9, offset: 3, reason: 'epoch_changed', snapshot: [c(3)] })).toEqual({ do: 'reset', items: [c(3)], reason: 'epoch_changed' });
    expect(k.stats.resets).toBe(1);
    expect(k.handleBatch(batch(4, 4, [c(4)], 9))).toEqual({ do: 'deliver', items: [c(4)] });
  });

  it('ignores other topics', () => {
    const k = new StreamCursor('demo');
    k.subscribeRequest();
    expect(k.handleSubscribed({ topic: 'other', epoch: 1, offset: 1 })).toBe(false);
    expect(k.awaitingSub()).toBe(true);
    expect(k.handleBatch({ ...batch(1, 1, [c(1)]), topic: 'other' })).toEqual({ do: 'none' });
  });
});

describe('backoffMs', () => {
  it('starts at half a second, doubles, stops at 15 s, and jitters by a quarter', () => {
    expect(backoffMs(1, () => 0.5)).toBe(500);
    expect(backoffMs(2, () => 0.5)).toBe(1000);
    expect(backoffMs(6, () => 0.5)).toBe(15_000);
    expect(backoffMs(60, () => 0.5)).toBe(15_000);
    expect(backoffMs(1, () => 0)).toBe(375);
    expect(backoffMs(1, () => 0.999999)).toBe(625);
  });
});
