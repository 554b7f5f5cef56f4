// The audit log in words: who did what to whom, with names instead of participant ids, values
// instead of codes (`comment_policy_set lockdown true` → 锁定评论：开启), 24-hour times in the
// page's language and 1-based entry numbers. Pure: names and comments come from lookups.

import { currentLang, t, type I18nKey } from './i18n';
import type { AuditEntry } from './protocol';

export interface AuditLookups {
  /** A participant's display name, if known. */
  name(id: string): string | null;
  /** A comment's author and text, if the console holds it. */
  comment?(seq: number): { name: string; text: string } | null;
  /** A question's text, if known. */
  question?(id: number): string | null;
}

/** "3 分钟", "90 秒" / "3 min", "90 s". */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s >= 3600 && s % 3600 === 0) return t('durHours', { n: s / 3600 });
  if (s >= 60 && s % 60 === 0) return t('durMinutes', { n: s / 60 });
  return t('durSeconds', { n: s });
}

/** 24-hour clock time in the page's language (zh-CN shows 14:05:09, never 2:05 PM). */
export function formatClock(ms: number, withSeconds = true): string {
  return new Intl.DateTimeFormat(currentLang(), {
    hour: '2-digit',
    minute: '2-digit',
    ...(withSeconds ? { second: '2-digit' } : {}),
    hourCycle: 'h23',
  }).format(new Date(ms));
}

function snippet(s: string, n = 24): string {
  const chars = [...s];
  return chars.length > n ? `${chars.slice(0, n).join('')}…` : s;
}

/** "10000ms" → 10000; "limit=180000ms" → 180000; "+60000ms" → 60000. */
function msIn(detail: string): number | null {
  const m = /(\d+)\s*ms/.exec(detail);
  return m ? Number(m[1]) : null;
}

const onOff = (v: string) => (v === 'true' || v === 'on' ? t('valueOn') : t('valueOff'));

/** What the entry did, in words (without time and actor). */
export function auditWhat(e: AuditEntry, look: AuditLookups): string {
  const who = (id: string) => look.name(id) ?? t('someone');
  const q = () => {
    const n = Number(e.target);
    const text = look.question?.(n);
    return text ? t('auditQuestionRef', { n, text: snippet(text) }) : t('auditQuestionNo', { n });
  };
  const c = () => {
    const seq = Number(e.target.replace(/^#/, ''));
    const hit = look.comment?.(seq);
    return hit ? t('auditCommentRef', { n: seq, name: hit.name, text: snippet(hit.text) }) : t('auditCommentNo', { n: seq });
  };
  const ms = msIn(e.detail);
  switch (e.action) {
    case 'floor_granted':
      return ms ? t('audit_floor_granted_for', { name: who(e.target), dur: formatDuration(ms) }) : t('audit_floor_granted', { name: who(e.target) });
    case 'floor_extended':
      return t('audit_floor_extended', { name: who(e.target), dur: formatDuration(ms ?? 0) });
    case 'floor_revoked':
      return t('audit_floor_revoked', { name: who(e.target) });
    case 'floor_mode_set':
      return t('audit_floor_mode_set', { mode: e.detail === 'open' ? t('modeOpen') : t('modeChaired') });
    case 'floor_auto_advance_set':
      return ms ? t('audit_auto_advance_on', { dur: formatDuration(ms) }) : t('audit_auto_advance_off');
    case 'muted_all':
      return t('audit_muted_all');
    case 'stage_granted':
      return t('audit_stage_granted', { name: who(e.target) });
    case 'stage_revoked':
      return t('audit_stage_revoked', { name: who(e.target) });
    case 'hand_lowered':
      return t('audit_hand_lowered', { name: who(e.target) });
    case 'question_published':
    case 'question_rejected':
    case 'question_staged':
    case 'question_answered':
    case 'question_dismissed':
    case 'question_pinned':
    case 'question_unpinned':
      return t(`audit_${e.action}` as I18nKey, { q: q() });
    case 'question_review_set':
      return t('audit_question_review_set', { v: onOff(e.detail) });
    case 'comment_approved':
      return t('audit_comment_approved', { c: c() });
    case 'comment_hidden':
      return t('audit_comment_hidden', { c: c() });
    case 'comment_rejected':
      return t('audit_comment_rejected', { c: c() });
    case 'comment_approved_all':
      return t('audit_comment_approved_all', { n: e.detail.match(/count=(\d+)/)?.[1] ?? '?' });
    case 'comment_policy_set':
      switch (e.target) {
        case 'review':
          return t('audit_policy', { what: t('policyReview'), v: onOff(e.detail) });
        case 'verified_only':
          return t('audit_policy', { what: t('policyVerifiedShort'), v: onOff(e.detail) });
        case 'lockdown':
          return t('audit_policy', { what: t('policyLockdownShort'), v: onOff(e.detail) });
        case 'slow_mode':
          return ms ? t('audit_slow_mode_on', { dur: formatDuration(ms) }) : t('audit_policy', { what: t('slowMode'), v: t('valueOff') });
        case 'block_words':
        case 'hold_words': {
          const n = e.detail ? e.detail.split('|').filter(Boolean).length : 0;
          return t(e.target === 'block_words' ? 'audit_block_words' : 'audit_hold_words', { n });
        }
        default:
          return `${e.target} = ${e.detail}`;
      }
    case 'participant_timed_out': {
      const until = /until=(\d+)/.exec(e.detail);
      return until ? t('audit_timed_out_until', { name: who(e.target), time: formatClock(Number(until[1]), false) }) : t('audit_timed_out', { name: who(e.target) });
    }
    case 'participant_banned':
      return t('audit_banned', { name: who(e.target) });
    case 'participant_unbanned':
      return t('audit_unbanned', { name: who(e.target) });
    default:
      return [e.action, e.target, e.detail].filter(Boolean).join(' ');
  }
}

/** One line of the log: "14:05:09 主持人：隐藏评论 #12（张三：……）（理由：广告）". */
export function auditLine(e: AuditEntry, look: AuditLookups): { n: number; time: string; actor: string; what: string; reason: string } {
  return {
    n: e.index + 1,
    time: formatClock(e.at_ms),
    actor: look.name(e.actor) ?? t('someone'),
    what: auditWhat(e, look),
    reason: e.reason ? t('auditReason', { r: e.reason }) : '',
  };
}
