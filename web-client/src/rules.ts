// Pure rules the pages show before anyone acts: whether the composer is open for this identity
// under the comment modes (the server enforces the same rules, docs/protocol.md §2.6), how long
// slow mode still makes them wait, and what a floor holder's turn looks like now.

import type { Author, CommentModes, FloorSnapshot } from './protocol';

export type ComposeBlock = 'lockdown' | 'verified_only' | null;

export interface ComposeRule {
  /** Why posting is refused for everyone like this author right now, or null. */
  blocked: ComposeBlock;
  /** Slow mode's interval (ms) for this author, or null when it does not apply. */
  slowMs: number | null;
  /** How long until this author may post again under slow mode (0: now). */
  waitMs: number;
}

/** The server's order of checks for a non-moderator: … lockdown → verified-only → text → blocked
 * words → slow mode. Moderators bypass all of them. */
export function composeRule(modes: CommentModes, you: Author | null, lastPostMs: number, nowMs: number): ComposeRule {
  if (!you || you.role === 'moderator') return { blocked: null, slowMs: null, waitMs: 0 };
  let blocked: ComposeBlock = null;
  if (modes.lockdown && you.role === 'viewer') blocked = 'lockdown';
  else if (modes.verified_only && !you.verified) blocked = 'verified_only';
  const slowMs = modes.slow_mode_ms ?? null;
  const waitMs = slowMs && lastPostMs ? Math.max(0, lastPostMs + slowMs - nowMs) : 0;
  return { blocked, slowMs, waitMs };
}

export interface TurnView {
  /** Who holds the floor (null: nobody). */
  holder: string | null;
  /** This participant holds it. */
  mine: boolean;
  /** Time left (negative: over time), null without a deadline. */
  leftMs: number | null;
  /** Share of the turn left, 0..1 (for a countdown bar). */
  fraction: number;
  /** Little time left: warn the speaker. */
  warn: boolean;
  over: boolean;
}

/** Warn when this much of a turn is left (or a fifth of it, for short turns). */
export const WARN_MS = 30_000;

export function turnView(floor: FloorSnapshot, me: string | null, nowMs: number): TurnView {
  const holder = floor.holder ?? null;
  const mine = !!holder && holder === me;
  if (!holder || !floor.deadline_ms) return { holder, mine, leftMs: null, fraction: 1, warn: false, over: false };
  const leftMs = floor.deadline_ms - nowMs;
  const span = Math.max(1, floor.deadline_ms - (floor.granted_at_ms ?? floor.deadline_ms - 1));
  const fraction = Math.min(1, Math.max(0, leftMs / span));
  const warnAt = Math.min(WARN_MS, span / 5);
  return { holder, mine, leftMs, fraction, warn: leftMs >= 0 && leftMs <= warnAt, over: leftMs < 0 };
}
