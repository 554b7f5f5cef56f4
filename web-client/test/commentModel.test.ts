import { describe, expect, it } from 'vitest';
import { CommentModel, RowLayout } from '../src/commentModel';
import type { Item } from '../src/protocol';

const c = (seq: number, extra: Record<string, unknown> = {}): Item => ({
  seq,
  ts: seq,
  body: { k: 'comment', author: { id: `v-${seq}`, name: `网友${seq}`, role: 'viewer' }, text: `第${seq}条`, ...extra },
});
const hide = (seq: number, target: number): Item => ({ seq, ts: seq, body: { k: 'hide', target } });
const seqs = (m: CommentModel) => m.all().map((x) => x.seq);

describe('CommentModel', () => {
  it('keeps comments in seq order, each once, ignoring unknown kinds', () => {
    const m = new CommentModel();
    m.push([c(1), c(2), { seq: 3, ts: 3, body: { k: 'poll', q: '?' } }, c(4)]);
    m.push([c(2), c(4), c(5)]);
    m.apply();
    expect(seqs(m)).toEqual([1, 2, 4, 5]);
  });

  it('a hide removes its target however long ago it arrived', () => {
    const m = new CommentModel();
    m.push([c(1), c(2), c(3)]);
    m.apply();
    m.push([c(4), hide(5, 1)]);
    m.apply();
    expect(seqs(m)).toEqual([2, 3, 4]);
  });

  it("the public copy of an approved comment replaces the held original, live and in a reset snapshot", () => {
    const m = new CommentModel();
    m.push([c(1), c(2)]);
    m.apply();
    m.push([c(3, { approves: 2 })]);
    m.apply();
    expect(seqs(m)).toEqual([1, 3]);
    // A moderator's reset snapshot holds both the held original and its copy: show the copy once.
    m.replace([c(1), c(2), c(3, { approves: 2 }), c(4), hide(5, 4)]);
    m.apply();
    expect(seqs(m)).toEqual([1, 3]);
    expect(m.at(1).approves).toBe(2);
  });

  it('drops the oldest beyond its cap, and trims a backlog built up in a hidden tab', () => {
    const m = new CommentModel(3);
    m.push([1, 2, 3, 4, 5].map((s) => c(s)));
    expect(m.apply()).toEqual({ dropped: 2, added: 5, replaced: false });
    expect(seqs(m)).toEqual([3, 4, 5]);
    const big = new CommentModel(2);
    big.push([1, 2, 3, 4, 5, 6, 7].map((s) => c(s)));
    big.apply();
    expect(seqs(big)).toEqual([6, 7]);
  });

  it("one's own held comment is shown in seq order until its approved copy replaces it", () => {
    const m = new CommentModel();
    m.push([c(1), c(3)]);
    m.apply();
    m.insert({ seq: 2, ts: 2, authorId: 'v-me', name: '我', role: 'viewer', verified: false, text: '待审', pending: true });
    expect(seqs(m)).toEqual([1, 2, 3]);
    expect(m.at(1).pending).toBe(true);
    m.push([c(4, { approves: 2 })]);
    m.apply();
    expect(seqs(m)).toEqual([1, 3, 4]);
    expect(m.all().some((x) => x.pending)).toBe(false);
  });

  it("one's own held comment shown ahead of the stream does not push older comments out", () => {
    const m = new CommentModel();
    // After a reload the state (with one's held seq 9) comes before the history batches.
    m.insert({ seq: 9, ts: 9, authorId: 'v-me', name: '我', role: 'viewer', verified: false, text: '待审', pending: true });
    m.push([c(5), c(7), c(8)]);
    m.apply();
    expect(seqs(m)).toEqual([5, 7, 8, 9]);
    // Replayed again (a reconnect): no duplicates; then the live stream goes on after it.
    m.push([c(7), c(8), c(10)]);
    m.apply();
    expect(seqs(m)).toEqual([5, 7, 8, 9, 10]);
  });

  it('finds comments by seq', () => {
    const m = new CommentModel();
    m.push([c(2), c(5), c(9)]);
    m.apply();
    expect(m.indexOf(5)).toBe(1);
    expect(m.indexOf(6)).toBe(-1);
  });
});

describe('RowLayout', () => {
  it('is plain arithmetic without expanded rows', () => {
    const l = new RowLayout(52);
    expect(l.offset(10)).toBe(520);
    expect(l.total(100)).toBe(5200);
    expect(l.indexAt(0, 100)).toBe(0);
    expect(l.indexAt(53, 100)).toBe(1);
    expect(l.indexAt(999_999, 100)).toBe(99);
  });

  it('an expanded row pushes the rows below it down by its extra height', () => {
    const l = new RowLayout(52);
    l.setExtras([[5, 100], [2, 30]]);
    expect(l.offset(2)).toBe(104);
    expect(l.height(2)).toBe(82);
    expect(l.offset(3)).toBe(186);
    expect(l.offset(6)).toBe(6 * 52 + 130);
    expect(l.total(10)).toBe(520 + 130);
    // The row under a height is the last one starting at or above it.
    expect(l.indexAt(185, 10)).toBe(2);
    expect(l.indexAt(186, 10)).toBe(3);
    for (let y = 0; y < 650; y += 7) {
      const i = l.indexAt(y, 10);
      expect(l.offset(i)).toBeLessThanOrEqual(y);
      if (i < 9) expect(l.offset(i + 1)).toBeGreaterThan(y);
    }
  });
});
