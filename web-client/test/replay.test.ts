import { describe, expect, it } from 'vitest';
import { chapterAt, clock } from '../src/pages/replay';

const ch = (offset_ms: number) => ({ holder: 'h', name: 'n', start_ms: 0, end_ms: null, offset_ms, duration_ms: 0 });

describe('replay time line', () => {
  it('writes times as the export does', () => {
    expect(clock(0)).toBe('0:00');
    expect(clock(12_999)).toBe('0:12');
    expect(clock(3_725_000)).toBe('1:02:05');
  });
  it('the chapter playing is the last one begun', () => {
    const chapters = [ch(0), ch(7_000), ch(20_000)];
    expect(chapterAt(chapters, 0)).toBe(0);
    expect(chapterAt(chapters, 6_999)).toBe(0);
    expect(chapterAt(chapters, 7_000)).toBe(1);
    expect(chapterAt(chapters, 99_000)).toBe(2);
    expect(chapterAt([ch(5_000)], 1_000)).toBe(-1);
  });
});
