import { describe, expect, it } from 'vitest';
import { composeRule, turnView } from '../src/rules';
import { boxState } from '../src/videoBox';
import { speakingState } from '../src/roomGrid';
import { parseStreamId } from '../src/media/room';
import type { Author, CommentModes } from '../src/protocol';

const viewer: Author = { id: 'v-1', name: '网友', role: 'viewer', verified: false };
const member: Author = { id: 'member:王', name: '王', role: 'member', verified: true };
const modes = (m: Partial<CommentModes> = {}): CommentModes => ({ review: false, slow_mode_ms: null, verified_only: false, lockdown: false, paused: false, comments_closed: false, questions_closed: false, ...m });

describe('the rules shown before typing', () => {
  it('lockdown closes the box for viewers only; verified-only for the unverified', () => {
    expect(composeRule(modes({ lockdown: true }), viewer, 0, 0).blocked).toBe('lockdown');
    expect(composeRule(modes({ lockdown: true }), member, 0, 0).blocked).toBe(null);
    expect(composeRule(modes({ verified_only: true }), viewer, 0, 0).blocked).toBe('verified_only');
    expect(composeRule(modes({ verified_only: true }), member, 0, 0).blocked).toBe(null);
    expect(composeRule(modes({ lockdown: true }), { ...viewer, role: 'moderator' }, 0, 0).blocked).toBe(null);
  });

  it('slow mode says its interval and counts down from the last accepted comment', () => {
    const r = composeRule(modes({ slow_mode_ms: 10_000 }), viewer, 1_000, 4_000);
    expect(r).toEqual({ blocked: null, slowMs: 10_000, waitMs: 7_000 });
    expect(composeRule(modes({ slow_mode_ms: 10_000 }), viewer, 1_000, 20_000).waitMs).toBe(0);
    expect(composeRule(modes({ slow_mode_ms: 10_000 }), viewer, 0, 20_000).waitMs).toBe(0);
  });
});

describe('the speaker turn', () => {
  const floor = { mode: 'chaired' as const, hands: [], holder: 'member:王', granted_at_ms: 0, deadline_ms: 180_000 };
  it('is mine with a bar that shrinks, a warning in the last 30 s and over-time after', () => {
    expect(turnView(floor, 'member:王', 90_000)).toMatchObject({ mine: true, leftMs: 90_000, fraction: 0.5, warn: false, over: false });
    expect(turnView(floor, 'member:王', 155_000)).toMatchObject({ warn: true, over: false });
    expect(turnView(floor, 'member:王', 190_000)).toMatchObject({ warn: false, over: true, fraction: 0 });
    expect(turnView(floor, 'member:李', 90_000).mine).toBe(false);
    expect(turnView({ mode: 'open', hands: [], holder: null, granted_at_ms: null, deadline_ms: null }, 'member:王', 0)).toMatchObject({ holder: null, mine: false });
  });
  it('warns at a fifth of a short turn', () => {
    expect(turnView({ ...floor, deadline_ms: 60_000 }, 'member:王', 49_000).warn).toBe(true);
    expect(turnView({ ...floor, deadline_ms: 60_000 }, 'member:王', 47_000).warn).toBe(false);
  });
});

describe('the video box', () => {
  it('tells not started, waiting for a picture, playing, frozen and reconnecting apart', () => {
    expect(boxState('scheduled', 'idle', false, 0)).toBe('not-started');
    expect(boxState('ended', 'playing', true, 0)).toBe('ended');
    expect(boxState('live', 'connecting', false, 0)).toBe('connecting');
    expect(boxState('live', 'playing', false, 0)).toBe('waiting');
    expect(boxState('live', 'playing', true, 500)).toBe('playing');
    expect(boxState('live', 'playing', true, 5000)).toBe('stalled');
    expect(boxState('live', 'failed', true, 5000)).toBe('reconnecting');
  });
});

describe('the room grid', () => {
  it('reads participant and track from the SFU stream id, participant ids with dashes included', () => {
    expect(parseStreamId('sl-member:王委员-7')).toEqual({ participant: 'member:王委员', track: 7 });
    expect(parseStreamId('sl-v-63bc-a1-12')).toEqual({ participant: 'v-63bc-a1', track: 12 });
    expect(parseStreamId('other')).toEqual({ participant: 'other', track: null });
  });

  it('the highlight leaves a speaker who went quiet, and silence means muted', () => {
    const a = (participant: string, lastPacketAt: number, lastLoudAt: number) => ({ participant, lastPacketAt, lastLoudAt });
    // Both audible, A announced and loud: A.
    expect(speakingState([a('A', 1000, 1000), a('B', 1000, 900)], 'A', 1000).speaking).toBe('A');
    // A stopped talking (still sending silence) and B talks: B, though the server still says A.
    expect(speakingState([a('A', 5000, 1000), a('B', 5000, 4900)], 'A', 5000).speaking).toBe('B');
    // A's mic went off (no packets): muted, and nobody is highlighted.
    const s = speakingState([a('A', 1000, 1000)], 'A', 5000);
    expect(s.speaking).toBe(null);
    expect([...s.muted]).toEqual(['A']);
  });
});
