// Panels for the moderation parts: the floor, the questions, the pinned question, comment policy.
// Each renders from a ConsultStore and sends `cmd`s on a Connection. They re-render whole (lists
// are short) at most once per frame, and put keyboard focus back on the control that had it.

import { PostError, type Connection } from './connection';
import type { ConsultStore } from './consult';
import { t, type I18nKey } from './i18n';
import type { Command, QuestionOp, QuestionView } from './protocol';
import { errorText, h, i18n } from './ui';

export interface Who {
  id: () => string | null;
  moderator: boolean;
}

/** Re-renders `box` with `build`, keeping focus on the element with the same `data-key`. */
function rerender(box: HTMLElement, build: () => Node[]): void {
  const active = document.activeElement as HTMLElement | null;
  const key = active && box.contains(active) ? active.dataset.key : undefined;
  box.replaceChildren(...build());
  if (key) (box.querySelector(`[data-key="${CSS.escape(key)}"]`) as HTMLElement | null)?.focus();
}

function button(key: string, label: string, onClick: () => void, extra: Record<string, string> = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'btn small', 'data-key': key, ...extra }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** Sends `cmd`, showing a refusal in `msg`. */
function send(conn: () => Connection | null, msg: HTMLElement, cmd: Command, ok?: () => void): void {
  const c = conn();
  if (!c) return;
  msg.textContent = '';
  c.cmd(cmd).then(
    () => ok?.(),
    (e: unknown) => {
      const code = e instanceof PostError ? e.code : 'internal';
      msg.textContent = errorText(code, { msg: e instanceof Error ? e.message : String(e) });
    },
  );
}

function seconds(ms: number): string {
  return String(Math.max(0, Math.round(ms / 1000)));
}

export function floorPanel(body: HTMLElement, store: ConsultStore, conn: () => Connection | null, who: Who): void {
  const box = h('div', { class: 'floor' });
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  let timer = 0;
  const render = () => {
    if (!store.available) return;
    body.querySelector('.slot-pending')?.remove();
    if (!box.isConnected) body.append(box, msg);
    const f = store.floor;
    const me = who.id();
    const cmd = (c: Command) => send(conn, msg, c);
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
        h('p', { class: 'muted' }, f.mode === 'chaired' ? t('modeChaired') : t('modeOpen')),
      );
      const hands = h('ol', { class: 'hands', 'aria-label': t('hands', { n: f.hands.length }) });
      for (const id of f.hands) {
        const li = h('li', { 'data-id': id }, store.nameOf(id));
        if (who.moderator) li.append(' ', button(`grant-${id}`, t('grantTo', { name: store.nameOf(id) }), () => cmd({ c: 'grant_floor', target: { participant: id } })));
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
          button('grant-next', t('grantNext'), () => cmd({ c: 'grant_floor', target: 'next_hand' })),
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
        out.push(h('h3', {}, t('present', { n: present.length })), h('ul', { class: 'present' }, ...present.map((p) => h('li', {}, `${p.name}（${t(`role_${p.role}` as I18nKey)}）`))));
      }
      return out;
    });
  };
  store.onChange(render);
  i18n(render);
}

function askerName(q: QuestionView): string {
  return q.asker ? q.asker.name : t('anonymousAsker');
}

/** The public questions (vote; submit), or for moderators every question with its actions. */
export function questionsPanel(body: HTMLElement, store: ConsultStore, conn: () => Connection | null, who: Who): void {
  const list = h('ol', { class: 'questions' });
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  const voted = new Set<number>();
  // Submit form (everyone but moderators asks questions).
  const text = h('input', { type: 'text', class: 'ask-input', maxlength: 500, 'data-key': 'ask' });
  const anon = h('input', { type: 'checkbox', id: `anon-${Math.random().toString(36).slice(2, 7)}` });
  const anonLabel = h('label', { for: anon.id });
  const submit = h('button', { type: 'submit', class: 'btn small primary' });
  const form = h('form', { class: 'ask' }, text, submit, h('span', { class: 'ask-anon' }, anon, anonLabel));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = text.value.trim();
    if (!v) return;
    send(conn, msg, { c: 'submit_question', text: v, anonymous: anon.checked }, () => {
      text.value = '';
      msg.textContent = t('questionSubmitted');
    });
  });
  const render = () => {
    text.setAttribute('aria-label', t('askLabel'));
    text.placeholder = t('askPlaceholder');
    submit.textContent = t('submitQuestion');
    anonLabel.textContent = t('anonymous');
    if (!store.available) return;
    body.querySelector('.slot-pending')?.remove();
    if (!list.isConnected) {
      body.append(list);
      if (!who.moderator && who.id()) body.append(form);
      body.append(msg);
    }
    const qs = who.moderator
      ? [...store.questions.values()].sort((a, b) => Number(a.state !== 'pending') - Number(b.state !== 'pending') || b.votes - a.votes || a.id - b.id)
      : store.publicQuestions();
    rerender(list, () =>
      qs.map((q) => {
        const li = h('li', { class: `question q-${q.state}`, 'data-id': String(q.id), 'aria-label': t('questionLabel', { id: q.id, text: q.text }) });
        li.append(
          h('p', { class: 'q-text' }, q.text),
          h('p', { class: 'q-meta muted' }, `${askerName(q)} · ${t(`qstate_${q.state}` as I18nKey)}${q.pinned ? ` · ${t('pinnedTag')}` : ''}`),
        );
        const actions = h('div', { class: 'q-actions' });
        if (!who.moderator && who.id()) {
          const mine = voted.has(q.id);
          actions.append(
            button(`vote-${q.id}`, mine ? t('unvote', { n: q.votes }) : t('upvote', { n: q.votes }), () =>
              send(conn, msg, { c: 'vote_question', id: q.id, up: !mine }, () => {
                if (mine) voted.delete(q.id);
                else voted.add(q.id);
                render();
              }),
              { 'aria-pressed': String(mine), 'aria-label': t('upvoteLabel', { n: q.votes }) },
            ),
          );
        } else {
          actions.append(h('span', { class: 'q-votes' }, t('upvote', { n: q.votes })));
        }
        if (who.moderator) {
          const op = (o: QuestionOp) => send(conn, msg, { c: 'moderate_question', id: q.id, ...o });
          const ops: [string, QuestionOp][] = [];
          if (q.state === 'pending') ops.push(['q_publish', { op: 'publish' }], ['q_reject', { op: 'reject' }]);
          if (q.state === 'published') ops.push(['q_stage', { op: 'stage' }]);
          if (q.state === 'on_stage') ops.push(['q_answer', { op: 'answer' }]);
          if (q.state === 'published' || q.state === 'on_stage') ops.push(['q_dismiss', { op: 'dismiss' }]);
          if (q.state !== 'pending' && q.state !== 'rejected' && q.state !== 'dismissed') ops.push(q.pinned ? ['q_unpin', { op: 'unpin' }] : ['q_pin', { op: 'pin' }]);
          for (const [key, o] of ops) actions.append(button(`${key}-${q.id}`, t(key as I18nKey), () => op(o), { 'aria-label': `${t(key as I18nKey)}: ${q.text}` }));
        }
        li.append(actions);
        return li;
      }),
    );
  };
  store.onChange(render);
  i18n(render);
}

/** The pinned question / the one on stage, for the watch page. */
export function pinnedPanel(body: HTMLElement, store: ConsultStore): void {
  const box = h('div', { class: 'pinned' });
  const render = () => {
    if (!store.available) return;
    const ps = store.pinned();
    const note = body.querySelector('.slot-pending') as HTMLElement | null;
    if (note) note.hidden = ps.length > 0;
    if (!box.isConnected) body.append(box);
    box.replaceChildren(
      ...ps.map((q) =>
        h('blockquote', { class: 'pinned-q', 'data-id': String(q.id) }, h('p', {}, q.text), h('footer', { class: 'muted' }, `${askerName(q)} · ${t(`qstate_${q.state}` as I18nKey)}`)),
      ),
    );
  };
  store.onChange(render);
  i18n(render);
}

/** Comment policy switches for moderators. */
export function policyPanel(body: HTMLElement, store: ConsultStore, conn: () => Connection | null): void {
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
      cb.addEventListener('change', () => send(conn, msg, { c: 'set_comment_policy', change: { set: key, value: cb.checked } }));
      return h('p', {}, cb, h('label', { for: id }, t(label)));
    };
    rerender(box, () => [toggle('review', 'policyReview'), toggle('verified_only', 'policyVerified'), toggle('lockdown', 'policyLockdown')]);
  };
  store.onChange(render);
  i18n(render);
}
