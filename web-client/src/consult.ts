// The moderation state of an activity as this connection sees it: the `state` snapshot with the
// `event`s applied. `available` turns true with the first `state` (a hub without moderation
// never sends one, and the pages keep their placeholders).

import { t } from './i18n';
import type { AudienceCounts, AuditEntry, CommentModes, ConsultEvent, ConsultSnapshot, FloorSnapshot, PresentRow, QuestionView } from './protocol';

/** A timeout or ban this console has seen issued (audit events since it connected). */
export interface Sanction {
  who: string;
  kind: 'timeout' | 'ban';
  /** For timeouts: when it ends (ms since the epoch). */
  untilMs: number | null;
  reason: string;
  atMs: number;
}

export class ConsultStore {
  available = false;
  floor: FloorSnapshot = { mode: 'chaired', hands: [], holder: null, granted_at_ms: null, deadline_ms: null };
  questions = new Map<number, QuestionView>();
  onStage: number | null = null;
  modes: CommentModes = { review: false, slow_mode_ms: null, verified_only: false, lockdown: false, paused: false, comments_closed: false, questions_closed: false };
  present = new Map<string, PresentRow>();
  /** Viewers present now: from the `state`, then from the pushed `audience` counts (never polled). */
  viewers = 0;
  /** A livestream's stage (granted 上台) and who is on air (reaches the public) now. */
  stage: string[] = [];
  onAir = new Set<string>();
  /** The activity has a stage (a livestream). */
  livestream = false;
  /** The last pushed live counts (`audience` event, at most every 2 s; docs/protocol.md §5.4.2). */
  audience: AudienceCounts | null = null;
  audit: AuditEntry[] = [];
  /** seqs approved or hidden since the last state (the console drops them from its review queue). */
  settled = new Set<number>();
  /** Display names of every participant seen (present, askers, comment authors): the audit log,
   * tiles and the floor show names, never ids. */
  readonly names = new Map<string, string>();
  /** Timeouts and bans seen in the audit events since this page connected (moderators only). */
  readonly sanctions = new Map<string, Sanction>();
  private listeners = new Set<() => void>();
  private eventListeners = new Set<(e: ConsultEvent) => void>();
  private frame = 0;

  onChange(f: () => void): void {
    this.listeners.add(f);
  }

  /** Called synchronously for every event (for reactions such as muting on `muted_all`). */
  onEvent(f: (e: ConsultEvent) => void): void {
    this.eventListeners.add(f);
  }

  learnName(id: string, name: string): void {
    if (id && name && this.names.get(id) !== name) {
      this.names.set(id, name);
      if (this.names.size > 20_000) this.names.delete(this.names.keys().next().value as string);
    }
  }

  /** Listeners run at most once per animation frame (votes may change many times a second). */
  private changed(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      for (const f of this.listeners) f();
    });
  }

  applyState(s: ConsultSnapshot): void {
    this.available = true;
    this.floor = { ...s.floor, hands: [...s.floor.hands] };
    this.questions = new Map(s.questions.map((q) => [q.id, q]));
    for (const id of s.pinned) {
      const q = this.questions.get(id);
      if (q) q.pinned = true;
    }
    this.onStage = s.on_stage ?? null;
    this.modes = s.comment_modes;
    this.present = new Map(s.present.map((p) => [p.id, p]));
    for (const p of s.present) this.learnName(p.id, p.name);
    for (const q of s.questions) if (q.asker) this.learnName(q.asker.id, q.asker.name);
    this.viewers = s.viewers;
    this.stage = [...(s.stage ?? [])];
    this.onAir = new Set(s.on_air ?? []);
    this.livestream = !!s.livestream;
    this.settled.clear();
    this.changed();
  }

  applyEvent(e: ConsultEvent): void {
    for (const f of this.eventListeners) f(e);
    switch (e.t) {
      case 'floor':
        switch (e.k) {
          case 'hands_changed':
            this.floor.hands = e.hands;
            break;
          case 'floor_granted':
            this.floor.holder = e.holder;
            this.floor.granted_at_ms = e.granted_at_ms;
            this.floor.deadline_ms = e.deadline_ms;
            break;
          case 'floor_extended':
            this.floor.deadline_ms = e.deadline_ms;
            break;
          case 'floor_ended':
            if (this.floor.holder === e.holder) {
              this.floor.holder = null;
              this.floor.granted_at_ms = null;
              this.floor.deadline_ms = null;
            }
            break;
          case 'mode_changed':
            this.floor.mode = e.mode;
            break;
          case 'muted_all':
            break;
        }
        break;
      case 'question': {
        const q = e.question;
        if (q.asker) this.learnName(q.asker.id, q.asker.name);
        this.questions.set(q.id, q);
        if (q.state === 'on_stage') this.onStage = q.id;
        else if (this.onStage === q.id) this.onStage = null;
        break;
      }
      case 'comment_approved':
      case 'comment_rejected':
      case 'comment_hidden':
        this.settled.add(e.seq);
        break;
      case 'comment_modes':
        this.modes = e.modes;
        break;
      case 'presence':
        this.learnName(e.participant, e.name);
        if (e.present) this.present.set(e.participant, { id: e.participant, name: e.name, role: e.role });
        else this.present.delete(e.participant);
        break;
      case 'stage':
        this.stage = [...e.stage];
        this.onAir = new Set(e.on_air);
        break;
      case 'audience':
        this.audience = e.counts;
        this.viewers = e.counts.viewers;
        break;
      case 'audit':
        this.noteSanction(e.entry);
        this.audit.push(e.entry);
        if (this.audit.length > 200) this.audit.splice(0, this.audit.length - 200);
        break;
      default:
        return;
    }
    this.changed();
  }

  private noteSanction(a: AuditEntry): void {
    if (a.action === 'participant_timed_out') {
      const until = /until=(\d+)/.exec(a.detail);
      this.sanctions.set(a.target, { who: a.target, kind: 'timeout', untilMs: until ? Number(until[1]) : null, reason: a.reason ?? '', atMs: a.at_ms });
    } else if (a.action === 'participant_banned') {
      this.sanctions.set(a.target, { who: a.target, kind: 'ban', untilMs: null, reason: a.reason ?? '', atMs: a.at_ms });
    } else if (a.action === 'participant_unbanned') this.sanctions.delete(a.target);
  }

  /** Sanctions still in force at `nowMs`, newest first. */
  activeSanctions(nowMs: number): Sanction[] {
    return [...this.sanctions.values()].filter((s) => s.kind === 'ban' || (s.untilMs ?? 0) > nowMs).sort((a, b) => b.atMs - a.atMs);
  }

  /** A display name for a participant id; never the raw id (a short neutral label when unknown). */
  nameOf(id: string): string {
    return this.present.get(id)?.name ?? this.names.get(id) ?? knownNameless(id);
  }

  /** The name if it is known, else null. */
  knownName(id: string): string | null {
    return this.present.get(id)?.name ?? this.names.get(id) ?? null;
  }

  /** Questions the public sees, most votes first; the one on stage first of all. A viewer's own
   * pending (and rejected) questions are sent to that viewer alone (docs/protocol.md §5.3), so
   * they are shown to them too, after the public ones. */
  publicQuestions(includeOwn = false): QuestionView[] {
    const own = (q: QuestionView) => includeOwn && (q.state === 'pending' || q.state === 'rejected');
    return [...this.questions.values()]
      .filter((q) => q.state === 'published' || q.state === 'on_stage' || q.state === 'answered' || own(q))
      .sort(
        (a, b) =>
          Number(b.id === this.onStage) - Number(a.id === this.onStage) ||
          Number(own(a)) - Number(own(b)) ||
          b.votes - a.votes ||
          a.id - b.id,
      );
  }

  pinned(): QuestionView[] {
    return [...this.questions.values()].filter((q) => q.pinned || q.id === this.onStage);
  }
}

/** A neutral label for a participant nobody named yet: its role prefix, never the id itself. */
function knownNameless(id: string): string {
  if (id.startsWith('v-')) return `${t('role_viewer')}·${id.slice(2, 6)}`;
  const colon = id.indexOf(':');
  return colon > 0 ? id.slice(colon + 1) : id.slice(0, 8);
}
