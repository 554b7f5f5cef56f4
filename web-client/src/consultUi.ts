// Panels for the moderation parts: the floor, the questions, the pinned question, comment policy,
// sanctions. Each renders from a ConsultStore and sends `cmd`s on a Connection. They re-render
// whole (lists are short) at most once per frame, and put keyboard focus back on the control that
// had it.

import { PostError, type Connection } from './connection';
import type { ConsultStore } from './consult';
import { formatClock, formatDuration } from './auditText';
import { t, type I18nKey } from './i18n';
import type { Command, QuestionOp, QuestionView } from './protocol';
import { choose, errorText, h, i18n } from './ui';

export interface Who {
  id: () => string | null;
  moderator: boolean;
}

/** The reasons a moderator picks from, per row (hides, timeouts, question rejections). */
export const REASONS: I18nKey[] = ['reasonImproper', 'reasonAd', 'reasonOffTopic', 'reasonDuplicate'];

/** Turn lengths offered when giving the floor (ms). */
export const TURN_LIMITS = [60_000, 120_000, 180_000, 300_000, 600_000];
/** Slow-mode intervals offered (ms); null is off. */
export const SLOW_MODES: (number | null)[] = [null, 5_000, 10_000, 30_000, 60_000];

/** Re-renders `box` with `build`, keeping focus on the element with the same `data-key`. */
export function rerender(box: HTMLElement, build: () => Node[]): void {
  const active = document.activeElement as HTMLElement | null;
  const key = active && box.contains(active) ? active.dataset.key : undefined;
  box.replaceChildren(...build());
  if (key) (box.querySelector(`[data-key="${CSS.escape(key)}"]`) as HTMLElement | null)?.focus();
}

export function button(key: string, label: string, onClick: (b: HTMLButtonElement) => void, extra: Record<string, string> = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'btn small', 'data-key': key, ...extra }, label);
  b.addEventListener('click', () => onClick(b));
  return b;
}

/** Sends `cmd`, showing a refusal in `msg`. */
export function send(conn: () => Connection | null, msg: HTMLElement, cmd: Command, ok?: () => void, failed?: (code: string) => void): void {
  const c = conn();
  if (!c) return;
  msg.textContent = '';
  c.cmd(cmd).then(
    () => ok?.(),
    (e: unknown) => {
      const code = e instanceof PostError ? e.code : 'internal';
      msg.textContent = errorText(code, { msg: e instanceof Error ? e.message : String(e) });
      failed?.(code);
    },
  );
}

/** Asks for a reason next to `anchor`: one of REASONS. */
export function chooseReason(anchor: HTMLElement, title: string): Promise<string | null> {
  return choose(anchor, title, REASONS.map((k) => ({ label: t(k), value: t(k) })));
}

function seconds(ms: number): string {
  return String(Math.max(0, Math.round(ms / 1000)));
}

export function floorPanel(body: HTMLElement, store: ConsultStore, conn: () => Connection | null, who: Who): void {
  const box = h('div', { class: 'floor' });
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  // The turn length for the next grant (moderators).
  const limitId = `turn-limit-${Math.random().toString(36).slice(2, 7)}`;
  const limit = h('select', { id: limitId, class: 'turn-limit', 'data-key': 'turn-limit' });
  const limitLabel = h('label', { for: limitId });
  let limitMs = 180_000;
  limit.addEventListener('change', () => (limitMs = Number(limit.value)));
  let timer = 0;
  const render = () => {
    if (!store.available) return;
    body.querySelector('.slot-pending')?.remove();
    if (!box.isConnected) body.append(box, msg);
    const f = store.floor;
    const me = who.id();
    const cmd = (c: Command) => send(conn, msg, c);
    limitLabel.textContent = t('turnLimit');
    limit.replaceChildren(...TURN_LIMITS.map((ms) => h('option', { value: String(ms), selected: ms === limitMs }, formatDuration(ms))));
    rerender(box, () => {
      const out: Node[] = [];
      const holder = f.holder ? t('holder', { name: store.nameOf(f.holder) }) : t('holderNone');
      const clock = h('span', { class: 'floor-clock', 'aria-live': 'off' });
      const tick = () => {
        if (!f.deadline_ms) return void (clock.textContent = '');
        const left = f.deadline_ms - Date.now();
        clock.textContent = left >= 0 ? t('remaining', { s: seconds(left) }) : t('overtime', { s: seconds(-left) });
        clock.classList.toggle('over', left < 0);
      };
      tick();
      window.clearInterval(timer);
      if (f.deadline_ms) timer = window.setInterval(tick, 1000);
      out.push(
        h('p', { class: 'floor-holder', 'data-holder': f.holder ?? '' }, h('strong', {}, holder), ' ', clock),
        h('p', { class: 'muted' }, f.mode === 'chaired' ? t('modeChairedExplained') : t('modeOpenExplained')),
      );
      const hands = h('ol', { class: 'hands', 'aria-label': t('hands', { n: f.hands.length }) });
      for (const id of f.hands) {
        const li = h('li', { 'data-id': id }, h('span', { class: 'hand-name' }, store.nameOf(id)));
        if (who.moderator) li.append(' ', button(`grant-${id}`, t('grantTo', { name: store.nameOf(id) }), () => cmd({ c: 'grant_floor', target: { participant: id }, limit_ms: limitMs })));
        hands.append(li);
      }
      out.push(h('h3', {}, t('hands', { n: f.hands.length })), f.hands.length ? hands : h('p', { class: 'muted' }, t('handsNone')));
      const bar = h('div', { class: 'floor-actions', role: 'toolbar', 'aria-label': t('floor') });
      if (me && !who.moderator) {
        const raised = f.hands.includes(me);
        bar.append(
          raised
            ? button('hand', t('lowerHand'), () => cmd({ c: 'lower_hand' }), { 'aria-pressed': 'true' })
            : button('hand', t('raiseHand'), () => cmd({ c: 'raise_hand' }), { 'aria-pressed': 'false' }),
        );
      }
      if (me && f.holder === me) bar.append(button('yield', t('yield'), () => cmd({ c: 'yield_floor' })));
      if (who.moderator) {
        bar.append(
          h('span', { class: 'turn-limit-box' }, limitLabel, limit),
          button('grant-next', t('grantNext'), () => cmd({ c: 'grant_floor', target: 'next_hand', limit_ms: limitMs })),
          button('extend', t('extend'), () => cmd({ c: 'extend_floor', extra_ms: 60_000 })),
          button('revoke', t('revoke'), () => cmd({ c: 'revoke_floor' })),
          button('mute-all', t('muteAll'), () => cmd({ c: 'mute_all' })),
          f.mode === 'chaired'
            ? button('mode', t('setModeOpen'), () => cmd({ c: 'set_floor_mode', mode: 'open' }))
            : button('mode', t('setModeChaired'), () => cmd({ c: 'set_floor_mode', mode: 'chaired' })),
        );
      }
      out.push(bar);
      const present = [...store.present.values()];
      if (present.length) {
        // A livestream's stage: 直播中 beside whoever reaches the public; 上台/下台 for moderators.
        const row = (p: (typeof present)[number]) => {
          const li = h('li', { 'data-id': p.id }, `${p.name}（${t(`role_${p.role}` as I18nKey)}）`);
          if (!store.livestream) return li;
          if (store.onAir.has(p.id)) li.append(' ', h('span', { class: 'on-air-tag' }, t('onAirTag')));
          if (who.moderator) {
            const on = store.stage.includes(p.id);
            li.append(
              ' ',
              on
                ? button(`stage-${p.id}`, t('stageOff'), () => cmd({ c: 'set_stage', participant: p.id, on: false }), { title: t('stageOffLabel', { name: p.name }) })
                : button(`stage-${p.id}`, t('stageOn'), () => cmd({ c: 'set_stage', participant: p.id, on: true }), { title: t('stageOnLabel', { name: p.name }) }),
            );
          }
          return li;
        };
        out.push(h('h3', {}, t('present', { n: present.length })), h('ul', { class: 'present' }, ...present.map(row)));
      }
      return out;
    });
  };
  store.onChange(render);
  i18n(render);
}

/** Who asked, as this viewer may see it; moderators see anonymous askers' names marked 匿名. */
function askerName(q: QuestionView, moderator: boolean): string {
  if (!q.asker) return t('anonymousAsker');
  return moderator && q.anonymous ? t('askerAnonymousMarked', { name: q.asker.name }) : q.asker.name;
}

/** Per activity and identity, kept across reloads: questions this viewer asked and upvoted. */
class MyQuestions {
  constructor(private readonly key: string) {}
  private read(): { asked: number[]; voted: number[] } {
    try {
      const v = JSON.parse(localStorage.getItem(this.key) ?? 'null') as { asked: number[]; voted: number[] } | null;
      if (v && Array.isArray(v.asked) && Array.isArray(v.voted)) return v;
    } catch {
      /* corrupt: start over */
    }
    return { asked: [], voted: [] };
  }
  private write(v: { asked: number[]; voted: number[] }): void {
    localStorage.setItem(this.key, JSON.stringify({ asked: v.asked.slice(-200), voted: v.voted.slice(-2000) }));
  }
  asked(id: number): boolean {
    return this.read().asked.includes(id);
  }
  voted(id: number): boolean {
    return this.read().voted.includes(id);
  }
  addAsked(id: number): void {
    const v = this.read();
    if (!v.asked.includes(id)) v.asked.push(id);
    this.write(v);
  }
  setVoted(id: number, on: boolean): void {
    const v = this.read();
    v.voted = v.voted.filter((x) => x !== id);
    if (on) v.voted.push(id);
    this.write(v);
  }
}

/** The public questions (vote; submit), or for moderators every question with its actions. */
export function questionsPanel(body: HTMLElement, store: ConsultStore, conn: () => Connection | null, who: Who, activity = ''): void {
  const list = h('ol', { class: 'questions' });
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  const mine = () => new MyQuestions(`shangliang.questions.${activity}.${who.id() ?? ''}`);
  // Submit form (everyone but moderators asks questions).
  const text = h('input', { type: 'text', class: 'ask-input', maxlength: 500, 'data-key': 'ask' });
  const anon = h('input', { type: 'checkbox', class: 'ask-anon-box', id: `anon-${Math.random().toString(36).slice(2, 7)}` });
  const anonLabel = h('label', { for: anon.id, class: 'ask-anon' }, anon);
  const anonText = h('span');
  anonLabel.append(anonText);
  const submit = h('button', { type: 'submit', class: 'btn small primary' });
  const form = h('form', { class: 'ask' }, text, submit, anonLabel);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = text.value.trim();
    if (!v) return;
    const c = conn();
    if (!c) return;
    msg.textContent = '';
    c.cmd({ c: 'submit_question', text: v, anonymous: anon.checked }).then(
      (r) => {
        if (r.r === 'question_submitted') mine().addAsked(r.id);
        text.value = '';
        msg.dataset.kind = 'ok';
        msg.textContent = t('questionSubmitted');
        window.setTimeout(() => {
          if (msg.dataset.kind === 'ok') msg.textContent = '';
        }, 5000);
        render();
      },
      (err: unknown) => {
        msg.dataset.kind = 'error';
        msg.textContent = errorText(err instanceof PostError ? err.code : 'internal', { msg: String(err) });
      },
    );
  });
  const render = () => {
    text.setAttribute('aria-label', t('askLabel'));
    text.placeholder = t('askPlaceholder');
    submit.textContent = t('submitQuestion');
    anonText.textContent = t('anonymous');
    if (!store.available) return;
    body.querySelector('.slot-pending')?.remove();
    if (!list.isConnected) {
      if (!who.moderator && who.id()) body.append(form);
      body.append(msg, list);
    }
    const me = who.id();
    const my = mine();
    const isMine = (q: QuestionView) => (!!me && q.asker?.id === me) || my.asked(q.id) || (!who.moderator && (q.state === 'pending' || q.state === 'rejected'));
    const qs = who.moderator
      ? [...store.questions.values()].sort((a, b) => Number(a.state !== 'pending') - Number(b.state !== 'pending') || b.votes - a.votes || a.id - b.id)
      : store.publicQuestions(true);
    rerender(list, () =>
      qs.map((q) => {
        const own = !who.moderator && isMine(q);
        const li = h('li', { class: `question q-${q.state}${own ? ' q-mine' : ''}`, 'data-id': String(q.id), 'aria-label': t('questionLabel', { id: q.id, text: q.text }) });
        const state = own && q.state === 'pending' ? t('qstate_pending_mine') : t(`qstate_${q.state}` as I18nKey);
        li.append(
          h('p', { class: 'q-text' }, q.text),
          h('p', { class: 'q-meta muted' }, `${own ? t('askedByYou') : askerName(q, who.moderator)} · ${state}${q.pinned ? ` · ${t('pinnedTag')}` : ''}`),
        );
        if (who.moderator && q.anonymous) li.querySelector('.q-meta')!.prepend(h('span', { class: 'anon-tag' }, t('anonymousTag')), ' ');
        const actions = h('div', { class: 'q-actions' });
        const public_ = q.state === 'published' || q.state === 'on_stage';
        if (!who.moderator && me && public_ && !own) {
          const voted = my.voted(q.id);
          actions.append(
            button(`vote-${q.id}`, voted ? t('unvote', { n: q.votes }) : t('upvote', { n: q.votes }), () =>
              send(
                conn,
                msg,
                { c: 'vote_question', id: q.id, up: !voted },
                () => {
                  my.setVoted(q.id, !voted);
                  render();
                },
                (code) => {
                  // The server knows better: keep our memory in line with it.
                  if (code === 'already_voted') my.setVoted(q.id, true);
                  if (code === 'not_voted') my.setVoted(q.id, false);
                  render();
                },
              ),
              { 'aria-pressed': String(voted), title: voted ? t('unvoteLabel', { n: q.votes }) : t('upvoteLabel', { n: q.votes }) },
            ),
          );
        } else if (q.state !== 'pending' && q.state !== 'rejected') {
          actions.append(h('span', { class: 'q-votes' }, t('votes', { n: q.votes })));
        }
        if (who.moderator) {
          const op = (o: QuestionOp) => send(conn, msg, { c: 'moderate_question', id: q.id, ...o });
          const ops: [string, (b: HTMLButtonElement) => void][] = [];
          const withReason = (key: 'q_reject' | 'q_dismiss', make: (reason: string) => QuestionOp) => (b: HTMLButtonElement) =>
            void chooseReason(b, t(key)).then((r) => r && op(make(r)));
          if (q.state === 'pending') ops.push(['q_publish', () => op({ op: 'publish' })], ['q_reject', withReason('q_reject', (reason) => ({ op: 'reject', reason }))]);
          if (q.state === 'published') ops.push(['q_stage', () => op({ op: 'stage' })]);
          if (q.state === 'on_stage') ops.push(['q_answer', () => op({ op: 'answer' })]);
          if (public_) ops.push(['q_dismiss', withReason('q_dismiss', (reason) => ({ op: 'dismiss', reason }))]);
          if (q.state !== 'pending' && q.state !== 'rejected' && q.state !== 'dismissed') ops.push(q.pinned ? ['q_unpin', () => op({ op: 'unpin' })] : ['q_pin', () => op({ op: 'pin' })]);
          for (const [key, f] of ops) actions.append(button(`${key}-${q.id}`, t(key as I18nKey), f, { 'aria-label': `${t(key as I18nKey)}: ${q.text}` }));
        }
        if (actions.childNodes.length) li.append(actions);
        return li;
      }),
    );
  };
  store.onChange(render);
  i18n(render);
}

/** The question on stage (and pinned ones), for the watch page: directly under the video. */
export function pinnedPanel(body: HTMLElement, store: ConsultStore): void {
  const box = h('div', { class: 'pinned' });
  const render = () => {
    if (!store.available) return;
    const ps = store.pinned().sort((a, b) => Number(b.id === store.onStage) - Number(a.id === store.onStage));
    const note = body.querySelector('.slot-pending') as HTMLElement | null;
    if (note) note.hidden = ps.length > 0;
    if (!box.isConnected) body.append(box);
    box.replaceChildren(
      ...ps.map((q) =>
        h(
          'blockquote',
          { class: `pinned-q${q.id === store.onStage ? ' on-stage' : ''}`, 'data-id': String(q.id) },
          h('p', {}, q.text),
          h('footer', { class: 'muted' }, `${askerName(q, false)} · ${t(`qstate_${q.state}` as I18nKey)}`),
        ),
      ),
    );
  };
  store.onChange(render);
  i18n(render);
}

/** Comment policy switches and slow mode, for moderators. */
/**
 * The comment policy. `reviewOff`, when given, is asked before review mode is turned off (the
 * console asks whether to release the comments still held); review goes off only if it resolves
 * `true`.
 */
export function policyPanel(body: HTMLElement, store: ConsultStore, conn: () => Connection | null, reviewOff?: (anchor: HTMLElement) => Promise<boolean>): void {
  const box = h('div', { class: 'policy' });
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  const render = () => {
    if (!store.available) return;
    body.querySelector('.slot-pending')?.remove();
    if (!box.isConnected) body.append(box, msg);
    const m = store.modes;
    const toggle = (key: 'review' | 'verified_only' | 'lockdown', label: I18nKey) => {
      const id = `policy-${key}`;
      const cb = h('input', { type: 'checkbox', id, 'data-key': id });
      cb.checked = m[key];
      cb.addEventListener('change', async () => {
        if (key === 'review' && !cb.checked && reviewOff && !(await reviewOff(cb))) {
          cb.checked = true;
          return;
        }
        send(conn, msg, { c: 'set_comment_policy', change: { set: key, value: cb.checked } });
      });
      return h('label', { class: 'check-row', for: id }, cb, h('span', {}, t(label)));
    };
    const slowId = 'policy-slow';
    const slow = h('select', { id: slowId, 'data-key': slowId });
    for (const v of SLOW_MODES) slow.append(h('option', { value: String(v ?? 0), selected: (m.slow_mode_ms ?? null) === v }, v === null ? t('slowOff') : t('slowEvery', { dur: formatDuration(v) })));
    if (m.slow_mode_ms && !SLOW_MODES.includes(m.slow_mode_ms)) slow.append(h('option', { value: String(m.slow_mode_ms), selected: true }, t('slowEvery', { dur: formatDuration(m.slow_mode_ms) })));
    slow.addEventListener('change', () => {
      const v = Number(slow.value);
      send(conn, msg, { c: 'set_comment_policy', change: { set: 'slow_mode', value: v > 0 ? v : null } });
    });
    rerender(box, () => [
      toggle('review', 'policyReview'),
      toggle('verified_only', 'policyVerified'),
      toggle('lockdown', 'policyLockdown'),
      h('p', { class: 'slow-row' }, h('label', { for: slowId }, t('slowMode')), ' ', slow),
    ]);
  };
  store.onChange(render);
  i18n(render);
}

/** Timeouts and bans issued while this console was open, each with an undo (`unban` lifts both). */
export function sanctionsPanel(body: HTMLElement, store: ConsultStore, conn: () => Connection | null): void {
  const list = h('ul', { class: 'sanctions' });
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  const render = () => {
    const active = store.activeSanctions(Date.now());
    const note = body.querySelector('.slot-pending') as HTMLElement | null;
    if (note) note.hidden = active.length > 0;
    if (!list.isConnected) body.append(list, msg);
    rerender(list, () =>
      active.map((s) =>
        h(
          'li',
          { 'data-who': s.who },
          h('span', { class: 'sanction-text' }, s.kind === 'ban' ? t('sanctionBan', { name: store.nameOf(s.who) }) : t('sanctionTimeout', { name: store.nameOf(s.who), time: formatClock(s.untilMs ?? 0, false) }), s.reason ? ` · ${s.reason}` : ''),
          ' ',
          button(`unban-${s.who}`, t('undoSanction'), () => send(conn, msg, { c: 'unban', who: s.who }), { 'aria-label': t('undoSanctionLabel', { name: store.nameOf(s.who) }) }),
        ),
      ),
    );
  };
  store.onChange(render);
  window.setInterval(render, 15_000);
  i18n(render);
}
