import { describe, expect, it } from 'vitest';
import { ConsultStore } from '../src/consult';
import type { ConsultSnapshot } from '../src/protocol';

const snap = (extra: Partial<ConsultSnapshot> = {}): ConsultSnapshot => ({
  floor: { mode: 'chaired', hands: [], holder: null, granted_at_ms: null, deadline_ms: null },
  questions: [],
  on_stage: null,
  pinned: [],
  comment_modes: { review: false, slow_mode_ms: null, verified_only: false, lockdown: false, paused: false, comments_closed: false, questions_closed: false },
  present: [{ id: 'member:王委员', name: '王委员', role: 'member' }],
  viewers: 0,
  held: [],
  stage: [],
  on_air: [],
  livestream: false,
  ...extra,
});

describe('the stage in the moderation store', () => {
  it('takes the stage and who is on air from the state, and follows stage events', () => {
    const s = new ConsultStore();
    s.applyState(snap({ livestream: true, stage: ['member:王委员'], on_air: ['member:王委员'] }));
    expect(s.livestream).toBe(true);
    expect(s.stage).toEqual(['member:王委员']);
    expect(s.onAir.has('member:王委员')).toBe(true);
    s.applyEvent({ t: 'stage', stage: [], on_air: [] });
    expect(s.stage).toEqual([]);
    expect(s.onAir.size).toBe(0);
  });

  it('treats an older hub without the stage fields as a room with nobody on air', () => {
    const s = new ConsultStore();
    s.applyState(snap());
    expect(s.livestream).toBe(false);
    expect(s.stage).toEqual([]);
    expect(s.onAir.size).toBe(0);
  });
});
