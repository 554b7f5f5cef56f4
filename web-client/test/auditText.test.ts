import { describe, expect, it } from 'vitest';
import { auditLine, formatClock, formatDuration } from '../src/auditText';
import { setLang } from '../src/i18n';
import type { AuditEntry } from '../src/protocol';

const entry = (action: string, target: string, detail = '', reason: string | null = null, index = 0): AuditEntry => ({
  index,
  at_ms: Date.UTC(2026, 0, 5, 6, 39, 7),
  actor: 'moderator:主持人',
  action,
  target,
  detail,
  reason,
  prev_hash: '',
  hash: '',
});
const names: Record<string, string> = { 'moderator:主持人': '主持人', 'member:王委员': '王委员', 'v-63bc12': '热心市民' };
const look = {
  name: (id: string) => names[id] ?? null,
  comment: (seq: number) => (seq === 12 ? { name: '热心市民', text: '买房送车，加微信' } : null),
  question: (id: number) => (id === 3 ? '农村养老服务怎么保障？' : null),
};

describe('the audit log in words', () => {
  it('names people, says values and numbers entries from 1', () => {
    setLang('zh-CN');
    const l = auditLine(entry('comment_policy_set', 'lockdown', 'true', null, 0), look);
    expect(l.n).toBe(1);
    expect(l.what).toBe('锁定评论：开启');
    expect(l.actor).toBe('主持人');
    expect(auditLine(entry('comment_policy_set', 'slow_mode', '10000ms'), look).what).toBe('慢速模式：每人每 10 秒 一条');
    expect(auditLine(entry('comment_policy_set', 'slow_mode', 'off'), look).what).toBe('慢速模式：关闭');
    expect(auditLine(entry('floor_granted', 'member:王委员', 'limit=180000ms'), look).what).toBe('请 王委员 发言，限时 3 分钟');
    expect(auditLine(entry('comment_hidden', '#12', '', '广告'), look)).toMatchObject({ what: '隐藏第 12 条评论（热心市民：买房送车，加微信）', reason: '（理由：广告）' });
    expect(auditLine(entry('question_published', '3'), look).what).toBe('公开第 3 号问题「农村养老服务怎么保障？」');
    expect(auditLine(entry('participant_unbanned', 'v-63bc12'), look).what).toBe('解除对 热心市民 的禁言或禁止');
  });

  it('never shows a raw participant id', () => {
    setLang('zh-CN');
    const l = auditLine(entry('participant_banned', 'v-unknown99'), look);
    expect(l.what).not.toContain('v-unknown99');
  });

  it('uses a 24-hour clock in both languages', () => {
    setLang('zh-CN');
    const afternoon = new Date(2026, 0, 5, 18, 39, 7).getTime();
    expect(formatClock(afternoon)).toBe('18:39:07');
    expect(formatClock(afternoon)).not.toMatch(/AM|PM|上午|下午/);
    setLang('en');
    expect(formatClock(afternoon)).toBe('18:39:07');
    expect(formatDuration(90_000)).toBe('90 s');
    expect(formatDuration(120_000)).toBe('2 min');
    setLang('zh-CN');
  });
});
