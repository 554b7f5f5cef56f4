// Polls, agree/disagree statements and the consensus list (docs/protocol.md §8): a store fed by
// `consensus` events and `{c: "state"}`, and three components — the viewer's poll card (with its
// countdown and live tally), the viewer's statement card (赞成 / 反对 / 跳过, what to vote on next
// comes from the hub's routing) with the consensus list, and the moderator's panel (prepare,
// launch and close polls, promote a comment to a statement, the groups' consensus and divisions).
// Its strings live here (zh-CN first, English) so the shared tables stay untouched.

import type { Connection } from './connection';
import { PostError } from './connection';
import { currentLang } from './i18n';
import { h, i18n } from './ui';

type Json = { [field: string]: unknown };

/** How a poll is answered (tagged by `kind`). */
export interface PollKind {
  kind: 'single_choice' | 'multiple_choice' | 'rating' | 'open_word';
  options?: string[];
  max_choices?: number;
  min?: number;
  max?: number;
  max_words?: number;
}

export interface PollView {
  id: number;
  question: string;
  kind: PollKind;
  state: 'prepared' | 'open' | 'closed';
  opened_at_ms?: number | null;
  closes_at_ms?: number | null;
  closed_at_ms?: number | null;
  changeable: boolean;
}

export interface PollTally {
  poll: number;
  revision: number;
  state: PollView['state'];
  voters: number;
  counts: number[];
  mean?: number | null;
  by_tier: { part: 'member' | 'verified' | 'anonymous'; voters: number; counts: number[] }[];
  words: { word: string; count: number }[];
}

export interface StatementView {
  id: number;
  text: string;
  source: { from: 'comment'; seq: number } | { from: 'question'; id: number } | { from: 'written' };
  state: 'active' | 'withdrawn';
}

interface Scored {
  statement: number;
  score?: number;
  spread?: number;
}

const zh = {
  pollSlot: '现场投票',
  pollNone: '暂无进行中的投票',
  pollEnds: '剩余 {s} 秒',
  pollClosed: '投票已结束',
  pollSubmit: '提交',
  pollAnswered: '已提交，感谢参与',
  pollVoters: '{n} 人参与',
  pollWords: '输入一个词',
  statementSlot: '表态',
  statementNone: '暂无待表态的主张',
  agree: '赞成',
  disagree: '反对',
  pass: '跳过',
  consensusList: '共识',
  consensusNone: '尚未形成共识',
  divisiveList: '分歧',
  consoleSlot: '投票与共识',
  newPoll: '新建投票',
  question: '问题',
  kind: '类型',
  single_choice: '单选',
  multiple_choice: '多选',
  rating: '评分',
  open_word: '词云',
  optionsLabel: '选项（每行一个）',
  countdown: '倒计时（秒）',
  create: '创建',
  launch: '发起',
  close: '结束',
  promote: '评论转为主张',
  promoteSeq: '评论序号',
  promoteText: '主张文字（可选）',
  write: '写一条主张',
  groups: '意见分组：{g}',
  failed: '操作失败：{msg}',
};
const en: typeof zh = {
  pollSlot: 'Live poll',
  pollNone: 'No poll is open',
  pollEnds: '{s} s left',
  pollClosed: 'Poll closed',
  pollSubmit: 'Submit',
  pollAnswered: 'Answer received, thank you',
  pollVoters: '{n} answered',
  pollWords: 'Type a word',
  statementSlot: 'Your view',
  statementNone: 'Nothing to vote on now',
  agree: 'Agree',
  disagree: 'Disagree',
  pass: 'Pass',
  consensusList: 'Consensus',
  consensusNone: 'No consensus yet',
  divisiveList: 'Divisions',
  consoleSlot: 'Polls and consensus',
  newPoll: 'New poll',
  question: 'Question',
  kind: 'Kind',
  single_choice: 'Single choice',
  multiple_choice: 'Multiple choice',
  rating: 'Rating',
  open_word: 'Open word',
  optionsLabel: 'Options (one per line)',
  countdown: 'Countdown (s)',
  create: 'Create',
  launch: 'Launch',
  close: 'Close',
  promote: 'Comment to statement',
  promoteSeq: 'Comment seq',
  promoteText: 'Statement text (optional)',
  write: 'Write a statement',
  groups: 'Opinion groups: {g}',
  failed: 'Failed: {msg}',
};

function s(key: keyof typeof zh, vars?: Record<string, string | number>): string {
  let out = (currentLang() === 'en' ? en : zh)[key];
  if (vars) for (const [k, v] of Object.entries(vars)) out = out.replaceAll(`{${k}}`, String(v));
  return out;
}

/** What the page knows of the activity's polls and statements. */
export class ConsensusStore {
  polls = new Map<number, PollView>();
  tallies = new Map<number, PollTally>();
  statements = new Map<number, StatementView>();
  consensus: Scored[] = [];
  divisive: Scored[] = [];
  groups: { id: number; size: number }[] = [];
  private listeners: (() => void)[] = [];

  onChange(f: () => void): void {
    this.listeners.push(f);
  }

  private changed(): void {
    for (const f of this.listeners) f();
  }

  /** Asks the hub for the state (after every (re)connect). */
  async refresh(conn: Connection): Promise<void> {
    const st = (await conn.consensus({ c: 'state' })) as unknown as {
      polls: PollView[];
      tallies: PollTally[];
      statements: StatementView[];
      map?: { groups: { id: number; size: number }[]; consensus: [number, number][] } | null;
      console?: { consensus: Scored[]; divisive: Scored[] } | null;
    };
    this.polls = new Map(st.polls.map((p) => [p.id, p]));
    this.tallies = new Map(st.tallies.map((t) => [t.poll, t]));
    this.statements = new Map(st.statements.map((x) => [x.id, x]));
    if (st.map) this.applyMap(st.map);
    if (st.console) this.divisive = st.console.divisive;
    this.changed();
  }

  private applyMap(map: { groups: { id: number; size: number }[]; consensus: [number, number][] }): void {
    this.groups = map.groups;
    this.consensus = map.consensus.map(([statement, score]) => ({ statement, score }));
  }

  applyEvent(e: Json & { k: string }): void {
    switch (e.k) {
      case 'poll_changed': {
        const p = e.poll as PollView;
        this.polls.set(p.id, p);
        break;
      }
      case 'poll_tally': {
        const t = e.tally as PollTally;
        const old = this.tallies.get(t.poll);
        if (!old || old.revision <= t.revision) this.tallies.set(t.poll, t);
        break;
      }
      case 'statement_changed': {
        const x = e.statement as StatementView;
        if (x.state === 'active') this.statements.set(x.id, x);
        else this.statements.delete(x.id);
        break;
      }
      case 'group_map':
        this.applyMap(e.map as { groups: { id: number; size: number }[]; consensus: [number, number][] });
        break;
      case 'group_console':
        this.divisive = (e.summary as { divisive: Scored[] }).divisive;
        break;
      default:
        return;
    }
    this.changed();
  }

  /** The poll to show a viewer: the latest open one, else the latest closed one. */
  current(): PollView | null {
    const all = [...this.polls.values()].filter((p) => p.state !== 'prepared');
    return all.filter((p) => p.state === 'open').pop() ?? all.pop() ?? null;
  }
}

function labels(p: PollView): string[] {
  const k = p.kind;
  if (k.options) return k.options;
  if (k.kind === 'rating' && k.min !== undefined && k.max !== undefined) {
    const out = [];
    for (let v = k.min; v <= k.max; v++) out.push(String(v));
    return out;
  }
  return [];
}

function failText(e: unknown): string {
  return s('failed', { msg: e instanceof PostError ? e.code : String(e) });
}

/** Result bars of a tally (or its words). */
function results(p: PollView, t: PollTally | undefined): HTMLElement {
  const box = h('div', { class: 'poll-results', 'data-voters': String(t?.voters ?? 0) });
  box.append(h('p', { class: 'poll-voters', text: s('pollVoters', { n: t?.voters ?? 0 }) }));
  if (p.kind.kind === 'open_word') {
    box.append(h('p', { class: 'poll-words', text: (t?.words ?? []).map((w) => `${w.word} ${w.count}`).join(' · ') }));
    return box;
  }
  const max = Math.max(1, ...(t?.counts ?? [0]));
  labels(p).forEach((label, i) => {
    const n = t?.counts[i] ?? 0;
    const bar = h('span', { class: 'poll-bar' });
    bar.style.width = `${Math.round((100 * n) / max)}%`;
    box.append(h('div', { class: 'poll-row', 'data-option': String(i), 'data-count': String(n) }, h('span', { class: 'poll-label', text: label }), bar, h('span', { class: 'poll-count', text: String(n) })));
  });
  return box;
}

/** The viewer's poll card: the question, a countdown, the answer controls, the live tally. */
export function pollCard(el: HTMLElement, store: ConsensusStore, conn: () => Connection | null): void {
  const answered = new Set<number>();
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  const countdown = h('span', { class: 'poll-countdown', 'aria-live': 'off' });
  const send = (poll: number, answer: Json) => {
    const c = conn();
    if (!c) return;
    msg.textContent = '';
    c.consensus({ c: 'poll_answer', poll, answer }).then(
      () => {
        answered.add(poll);
        render();
      },
      (e: unknown) => {
        if (e instanceof PostError && e.code === 'already_answered') answered.add(poll);
        msg.textContent = failText(e);
        render();
      },
    );
  };
  let shown = '';
  const render = () => {
    const p = store.current();
    // Tallies come every 500 ms: only the results change then, the controls stay as they are.
    const key = p ? `${p.id}:${p.state}:${answered.has(p.id)}:${currentLang()}` : '';
    const old = el.querySelector('.poll-results');
    if (p && key === shown && old) {
      old.replaceWith(results(p, store.tallies.get(p.id)));
      return;
    }
    shown = key;
    el.replaceChildren();
    if (!p) {
      el.append(h('p', { class: 'slot-pending', text: s('pollNone') }));
      return;
    }
    const card = h('div', { class: 'poll-card', 'data-poll': String(p.id), 'data-state': p.state });
    card.append(h('p', { class: 'poll-question', text: p.question }), countdown);
    const t = store.tallies.get(p.id);
    if (p.state === 'open' && !answered.has(p.id)) {
      const controls = h('div', { class: 'poll-controls' });
      const kind = p.kind.kind;
      if (kind === 'single_choice' || kind === 'rating') {
        labels(p).forEach((label, i) => {
          const b = h('button', { type: 'button', class: 'poll-option', 'data-option': String(i), text: label });
          b.addEventListener('click', () => send(p.id, kind === 'rating' ? { a: 'rating', value: (p.kind.min ?? 0) + i } : { a: 'choice', option: i }));
          controls.append(b);
        });
      } else if (kind === 'multiple_choice') {
        const boxes = labels(p).map((label, i) => {
          const cb = h('input', { type: 'checkbox', 'data-option': String(i) });
          controls.append(h('label', { class: 'poll-option' }, cb, label));
          return cb;
        });
        const b = h('button', { type: 'button', class: 'poll-submit', text: s('pollSubmit') });
        b.addEventListener('click', () => send(p.id, { a: 'choices', options: boxes.flatMap((cb, i) => (cb.checked ? [i] : [])) }));
        controls.append(b);
      } else {
        const input = h('input', { type: 'text', class: 'poll-word', maxlength: 24, placeholder: s('pollWords'), 'aria-label': s('pollWords') });
        const b = h('button', { type: 'button', class: 'poll-submit', text: s('pollSubmit') });
        b.addEventListener('click', () => input.value.trim() && send(p.id, { a: 'words', words: [input.value.trim()] }));
        controls.append(input, b);
      }
      card.append(controls);
    } else if (p.state === 'open') {
      card.append(h('p', { class: 'poll-answered', role: 'status', text: s('pollAnswered') }));
    }
    if (p.state === 'closed' || answered.has(p.id)) card.append(results(p, t));
    card.append(msg);
    el.append(card);
    tick();
  };
  const tick = () => {
    const p = store.current();
    if (!p) return;
    if (p.state === 'closed') countdown.textContent = s('pollClosed');
    else if (p.closes_at_ms) countdown.textContent = s('pollEnds', { s: Math.max(0, Math.ceil((p.closes_at_ms - Date.now()) / 1000)) });
    else countdown.textContent = '';
  };
  window.setInterval(tick, 250);
  store.onChange(render);
  i18n(render);
}

/** The viewer's statement card (what to vote on next, from the hub's routing) and the consensus list. */
export function statementCard(el: HTMLElement, store: ConsensusStore, conn: () => Connection | null): void {
  let current: StatementView | null = null;
  let asking = false;
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  const card = h('div', { class: 'statement-card' });
  const list = h('ol', { class: 'consensus-list' });
  const listH = h('h3', { class: 'consensus-h' });
  const next = () => {
    const c = conn();
    if (!c || asking) return;
    asking = true;
    c.consensus({ c: 'statement_next', n: 1 }).then(
      (r) => {
        asking = false;
        current = ((r.statements as StatementView[]) ?? [])[0] ?? null;
        render();
      },
      () => {
        asking = false;
      },
    );
  };
  const vote = (v: 'agree' | 'disagree' | 'pass') => {
    const c = conn();
    if (!c || !current) return;
    c.consensus({ c: 'statement_vote', statement: current.id, vote: v }).then(
      () => {
        current = null;
        next();
      },
      (e: unknown) => (msg.textContent = failText(e)),
    );
  };
  const render = () => {
    card.replaceChildren();
    if (!current) card.append(h('p', { class: 'slot-pending', text: s('statementNone') }));
    else {
      card.dataset.statement = String(current.id);
      card.append(h('p', { class: 'statement-text', text: current.text }));
      const row = h('div', { class: 'statement-votes' });
      for (const v of ['agree', 'disagree', 'pass'] as const) {
        const b = h('button', { type: 'button', class: `vote-${v}`, 'data-vote': v, text: s(v) });
        b.addEventListener('click', () => vote(v));
        row.append(b);
      }
      card.append(row);
    }
    listH.textContent = s('consensusList');
    list.replaceChildren(
      ...store.consensus
        .map((x) => store.statements.get(x.statement))
        .filter((x): x is StatementView => !!x)
        .map((x) => h('li', { 'data-statement': String(x.id), text: x.text })),
    );
    if (!store.consensus.length) list.append(h('li', { class: 'slot-pending', text: s('consensusNone') }));
  };
  el.replaceChildren(card, msg, listH, list);
  store.onChange(() => {
    if (!current) next();
    render();
  });
  i18n(render);
}

/** The moderator's panel: prepare, launch and close polls (with live tallies), promote a comment or write a statement, the consensus and the divisions. */
export function consensusConsole(el: HTMLElement, store: ConsensusStore, conn: () => Connection | null): void {
  const msg = h('p', { class: 'panel-msg', role: 'alert' });
  const run = (req: Json & { c: string }) => {
    const c = conn();
    if (!c) return Promise.resolve();
    msg.textContent = '';
    return c.consensus(req).then(
      () => undefined,
      (e: unknown) => {
        msg.textContent = failText(e);
      },
    );
  };
  const question = h('input', { type: 'text', class: 'new-poll-question', maxlength: 200 });
  const kind = h('select', { class: 'new-poll-kind' });
  const options = h('textarea', { class: 'new-poll-options', rows: 3 });
  const countdown = h('input', { type: 'number', class: 'new-poll-countdown', min: 5, max: 3600, value: '60' });
  const create = h('button', { type: 'button', class: 'new-poll-create' });
  create.addEventListener('click', () => {
    const k = kind.value;
    const opts = options.value.split('\n').map((o) => o.trim()).filter(Boolean);
    const spec: Json = { question: question.value, kind: k };
    if (k === 'single_choice') spec.options = opts;
    if (k === 'multiple_choice') Object.assign(spec, { options: opts, max_choices: opts.length });
    if (k === 'rating') Object.assign(spec, { min: 1, max: 5 });
    if (k === 'open_word') spec.max_words = 1;
    const secs = Number(countdown.value);
    void run({ c: 'poll_create', spec, ...(secs > 0 ? { countdown_s: secs } : {}) }).then(() => {
      question.value = '';
      options.value = '';
    });
  });
  const seq = h('input', { type: 'number', class: 'promote-seq', min: 1 });
  const text = h('input', { type: 'text', class: 'promote-text', maxlength: 140 });
  const promote = h('button', { type: 'button', class: 'promote-go' });
  promote.addEventListener('click', () => {
    const t = text.value.trim();
    if (seq.value) void run({ c: 'statement_promote', seq: Number(seq.value), ...(t ? { text: t } : {}) });
    else if (t) void run({ c: 'statement_create', text: t });
    seq.value = '';
    text.value = '';
  });
  const polls = h('ul', { class: 'console-polls' });
  const groups = h('p', { class: 'console-groups' });
  const consensus = h('ol', { class: 'console-consensus' });
  const divisive = h('ol', { class: 'console-divisive' });
  const labelled = (label: () => string, input: HTMLElement) => {
    const l = h('label', {}, h('span'), input);
    i18n(() => {
      (l.firstChild as HTMLElement).textContent = label();
      input.setAttribute('aria-label', label());
    });
    return l;
  };
  const form = h(
    'div',
    { class: 'new-poll' },
    labelled(() => s('question'), question),
    labelled(() => s('kind'), kind),
    labelled(() => s('optionsLabel'), options),
    labelled(() => s('countdown'), countdown),
    create,
  );
  const promoteForm = h('div', { class: 'promote' }, labelled(() => s('promoteSeq'), seq), labelled(() => s('promoteText'), text), promote);
  const consensusH = h('h3');
  const divisiveH = h('h3');
  el.replaceChildren(form, polls, promoteForm, msg, groups, consensusH, consensus, divisiveH, divisive);
  const statementText = (id: number) => store.statements.get(id)?.text ?? `S${id}`;
  i18n(() => {
    const chosen = kind.value || 'single_choice';
    kind.replaceChildren(...(['single_choice', 'multiple_choice', 'rating', 'open_word'] as const).map((k) => h('option', { value: k, text: s(k) })));
    kind.value = chosen;
    create.textContent = s('create');
    promote.textContent = `${s('promote')} / ${s('write')}`;
    consensusH.textContent = s('consensusList');
    divisiveH.textContent = s('divisiveList');
  });
  const render = () => {
    polls.replaceChildren(
      ...[...store.polls.values()].map((p) => {
        const li = h('li', { 'data-poll': String(p.id), 'data-state': p.state }, h('span', { class: 'console-poll-q', text: `P${p.id} ${p.question}` }));
        if (p.state === 'prepared') {
          const b = h('button', { type: 'button', class: 'poll-launch', text: s('launch') });
          b.addEventListener('click', () => void run({ c: 'poll_launch', poll: p.id }));
          li.append(b);
        } else if (p.state === 'open') {
          const b = h('button', { type: 'button', class: 'poll-close', text: s('close') });
          b.addEventListener('click', () => void run({ c: 'poll_close', poll: p.id }));
          li.append(b);
        }
        if (p.state !== 'prepared') li.append(results(p, store.tallies.get(p.id)));
        return li;
      }),
    );
    groups.textContent = s('groups', { g: store.groups.map((g) => `${g.id}: ${g.size}`).join(', ') || '-' });
    consensus.replaceChildren(...store.consensus.map((x) => h('li', { 'data-statement': String(x.statement), text: statementText(x.statement) })));
    divisive.replaceChildren(...store.divisive.map((x) => h('li', { 'data-statement': String(x.statement), text: statementText(x.statement) })));
  };
  store.onChange(render);
  i18n(render);
}

/** The slot's heading text. */
export const consensusTitles = { poll: () => s('pollSlot'), statement: () => s('statementSlot'), console: () => s('consoleSlot') };
