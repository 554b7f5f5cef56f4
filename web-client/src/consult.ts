// The moderation state of an activity as this connection sees it: the `state` snapshot with the
// `event`s applied. `available` turns true with the first `state` (a hub without moderation
// never sends one, and the pages keep their placeholders).

import type { AuditEntry, CommentModes, ConsultEvent, ConsultSnapshot, FloorSnapshot, PresentRow, QuestionView } from './protocol';

export class ConsultStore {
  available = false;
  floor: FloorSnapshot = { mode: 'chaired', hands: [] };
  questions = new Map<number, QuestionView>();
  onStage: number | null = null;
  modes: CommentModes = { review: false, verified_only: false, lockdown: false };
  present = new Map<string, PresentRow>();
  viewers = 0;
  audit: AuditEntry[] = [];
  /** seqs approved or hidden since the last state (the console drops them from its review queue). */
  settled = new Set<number>();
  private listeners = new Set<() => void>();
  private frame = 0;

  onChange(f: () => void): void {
    this.listeners.add(f);
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
    this.viewers = s.viewers;
    this.settled.clear();
    this.changed();
  }

  applyEvent(e: ConsultEvent): void {
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
        this.questions.set(q.id, q);
        if (q.state === 'on_stage') this.onStage = q.id;
        else if (this.onStage === q.id) this.onStage = null;
        break;
      }
      case 'comment_approved':
      case 'comment_hidden':
        this.settled.add(e.seq);
        break;
      case 'comment_modes':
        this.modes = e.modes;
        break;
      case 'presence':
        if (e.present) this.present.set(e.participant, { id: e.participant, name: e.name, role: e.role });
        else this.present.delete(e.participant);
        break;
      case 'audit':
        this.audit.push(e.entry);
        if (this.audit.length > 200) this.audit.splice(0, this.audit.length - 200);
        break;
      default:
        return;
    }
    this.changed();
  }

  nameOf(id: string): string {
    return this.present.get(id)?.name ?? id;
  }

  /** Questions the public sees, most votes first; the one on stage first of all. */
  publicQuestions(): QuestionView[] {
    return [...this.questions.values()]
      .filter((q) => q.state === 'published' || q.state === 'on_stage' || q.state === 'answered')
      .sort((a, b) => Number(b.id === this.onStage) - Number(a.id === this.onStage) || b.votes - a.votes || a.id - b.id);
  }

  pinned(): QuestionView[] {
    return [...this.questions.values()].filter((q) => q.pinned || q.id === this.onStage);
  }
}
