// The organiser's create/edit form as a pure model (issue 14): what the fields hold, the checks the
// hub makes too (src/admin/activity.rs, src/admin/settings.rs: the same limits), so the organiser
// sees a refusal next to the field before sending, and the request body it becomes.

import type { I18nKey } from './i18n';

/** Limits, as the hub has them. */
export const MAX_TITLE_CHARS = 100;
export const MAX_TOPIC_CHARS = 200;
export const MAX_DESCRIPTION_CHARS = 5000;
export const MIN_DURATION_MS = 5 * 60_000;
export const MAX_DURATION_MS = 24 * 3_600_000;
export const MIN_TURN_S = 30;
export const MAX_TURN_S = 30 * 60;
export const MAX_SLOW_MODE_S = 600;

export type Kind = 'livestream' | 'room';
export type Discussion = 'chaired' | 'open';
export type CommentReview = 'off' | 'keywords' | 'all';
export type Commenters = 'public' | 'verified' | 'members_only';

/** What the form's inputs hold (times as `<input type="datetime-local">` values, local time). */
export interface DraftInput {
  title: string;
  topic: string;
  description: string;
  kind: Kind;
  committee: string;
  start: string;
  end: string;
  discussion: Discussion;
  turnMinutes: string;
  questionReview: boolean;
  commentReview: CommentReview;
  slowModeSeconds: string;
  commenters: Commenters;
}

export type Field = keyof DraftInput;

/** The body of `POST /api/admin/activities`. */
export interface CreateBody {
  title: string;
  topic: string;
  description: string;
  kind: Kind;
  committee?: string;
  scheduled_start_ms: number;
  planned_end_ms: number;
  settings: {
    discussion: Discussion;
    turn_ms: number;
    question_review: boolean;
    comment_review: CommentReview;
    slow_mode_ms: number;
    commenters: Commenters;
  };
}

export type Checked = { ok: true; body: CreateBody } | { ok: false; errors: Partial<Record<Field, I18nKey>> };

const chars = (s: string) => [...s.trim()].length;

/** Checks the inputs at `nowMs`; either the request body or one message key per bad field. */
export function checkDraft(d: DraftInput, nowMs: number): Checked {
  const errors: Partial<Record<Field, I18nKey>> = {};
  if (chars(d.title) === 0) errors.title = 'org_errRequired';
  else if (chars(d.title) > MAX_TITLE_CHARS) errors.title = 'org_errTooLong';
  if (chars(d.topic) === 0) errors.topic = 'org_errRequired';
  else if (chars(d.topic) > MAX_TOPIC_CHARS) errors.topic = 'org_errTooLong';
  if (chars(d.description) > MAX_DESCRIPTION_CHARS) errors.description = 'org_errTooLong';
  const start = Date.parse(d.start);
  const end = Date.parse(d.end);
  if (Number.isNaN(start)) errors.start = 'org_errRequired';
  else if (start < nowMs) errors.start = 'org_errPast';
  if (Number.isNaN(end)) errors.end = 'org_errRequired';
  else if (!Number.isNaN(start) && (end - start < MIN_DURATION_MS || end - start > MAX_DURATION_MS)) errors.end = 'org_errDuration';
  const turn = Number(d.turnMinutes) * 60;
  if (!Number.isFinite(turn) || turn < MIN_TURN_S || turn > MAX_TURN_S) errors.turnMinutes = 'org_errTurn';
  const slow = d.slowModeSeconds.trim() === '' ? 0 : Number(d.slowModeSeconds);
  if (!Number.isInteger(slow) || (slow !== 0 && (slow < 1 || slow > MAX_SLOW_MODE_S))) errors.slowModeSeconds = 'org_errSlowMode';
  if (Object.keys(errors).length) return { ok: false, errors };
  return {
    ok: true,
    body: {
      title: d.title.trim(),
      topic: d.topic.trim(),
      description: d.description.trim(),
      kind: d.kind,
      ...(d.committee ? { committee: d.committee } : {}),
      scheduled_start_ms: start,
      planned_end_ms: end,
      settings: {
        discussion: d.discussion,
        turn_ms: Math.round(turn * 1000),
        question_review: d.questionReview,
        comment_review: d.commentReview,
        slow_mode_ms: slow * 1000,
        commenters: d.commenters,
      },
    },
  };
}

/** A `datetime-local` value (local time, minutes) for `ms`. */
export function localInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** An empty form: a livestream tomorrow at 9:00 for two hours, the hub's defaults. */
export function emptyDraft(nowMs: number): DraftInput {
  const d = new Date(nowMs + 86_400_000);
  d.setHours(9, 0, 0, 0);
  return {
    title: '',
    topic: '',
    description: '',
    kind: 'livestream',
    committee: '',
    start: localInput(d.getTime()),
    end: localInput(d.getTime() + 2 * 3_600_000),
    discussion: 'chaired',
    turnMinutes: '3',
    questionReview: true,
    commentReview: 'all',
    slowModeSeconds: '10',
    commenters: 'public',
  };
}
