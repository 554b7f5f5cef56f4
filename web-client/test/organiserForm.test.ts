import { describe, expect, it } from 'vitest';
import { MAX_TITLE_CHARS, checkDraft, emptyDraft, localInput } from '../src/organiserForm';
import { setLang, t } from '../src/i18n';

const NOW = Date.UTC(2026, 0, 5, 1, 0, 0);

describe('the organiser form', () => {
  it('turns a filled form into the create request with the settings in the hub units', () => {
    const d = { ...emptyDraft(NOW), title: ' 推进城乡融合发展网络议政 ', topic: '以县城为重要载体', turnMinutes: '2.5', slowModeSeconds: '15' };
    const r = checkDraft(d, NOW);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.body.title).toBe('推进城乡融合发展网络议政');
    expect(r.body.planned_end_ms - r.body.scheduled_start_ms).toBe(2 * 3_600_000);
    expect(r.body.settings).toEqual({ discussion: 'chaired', turn_ms: 150_000, question_review: true, comment_review: 'all', slow_mode_ms: 15_000, commenters: 'public' });
    expect(r.body).not.toHaveProperty('committee');
  });

  it('marks each bad field with its own message, as the hub would refuse it', () => {
    const d = emptyDraft(NOW);
    const r = checkDraft(
      { ...d, title: 'x'.repeat(MAX_TITLE_CHARS + 1), topic: '  ', start: localInput(NOW - 60_000), end: localInput(NOW), turnMinutes: '0.2', slowModeSeconds: '0.5' },
      NOW,
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual({ title: 'org_errTooLong', topic: 'org_errRequired', start: 'org_errPast', end: 'org_errDuration', turnMinutes: 'org_errTurn', slowModeSeconds: 'org_errSlowMode' });
    const long = checkDraft({ ...d, title: 't', topic: 't', end: localInput(Date.parse(d.start) + 25 * 3_600_000) }, NOW);
    expect(long.ok ? null : long.errors).toEqual({ end: 'org_errDuration' });
  });

  it('has every message in both languages', () => {
    setLang('en');
    expect(t('org_errDuration')).toBe('5 minutes to 24 hours');
    setLang('zh-CN');
    expect(t('org_errDuration')).toContain('24 小时');
  });
});
