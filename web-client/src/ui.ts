// Small DOM helpers and the parts every page shares: header with the language switch, the
// connection status line, the comment composer.

import { PostError, type Connection, type ConnState } from './connection';
import { currentLang, hasKey, onLangChange, setLang, t, type I18nKey } from './i18n';
import { formatDuration } from './auditText';
import type { ComposeRule } from './rules';
import type { Ack } from './protocol';

type Attrs = Record<string, string | boolean | number | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

/** Registers a function that sets translated text; runs it now and after every language switch. */
export function i18n(f: () => void): void {
  f();
  onLangChange(f);
}

/** The page header; `title` is read again after a language switch and by `header.refresh()`. */
export function header(title: () => string): HTMLElement & { refresh(): void } {
  const home = h('a', { href: '/', class: 'brand' });
  const heading = h('h1', { class: 'page-title' });
  const lang = h('button', { type: 'button', class: 'lang' });
  lang.addEventListener('click', () => setLang(currentLang() === 'en' ? 'zh-CN' : 'en'));
  const render = () => {
    home.textContent = t('appName');
    home.setAttribute('aria-label', `${t('appName')} — ${t('home')}`);
    heading.textContent = title();
    heading.title = title();
    // The visible text is the accessible name (WCAG 2.5.3); the hint goes in the title.
    lang.textContent = t('langSwitch');
    lang.lang = currentLang() === 'en' ? 'zh-CN' : 'en';
    lang.title = t('langSwitchLabel');
    document.title = `${title()} · ${t('appName')}`;
  };
  i18n(render);
  const el = h('header', { class: 'top' }, home, heading, lang) as HTMLElement & { refresh(): void };
  el.refresh = render;
  return el;
}

export interface Choice<T> {
  label: string;
  value: T;
}

/**
 * A small menu next to `anchor` (per-row choices such as a hide reason or a timeout length).
 * Resolves with the chosen value, or null on Escape / a click elsewhere. Keyboard: focus starts on
 * the first choice, arrows move, Enter chooses, Escape closes and focus returns to the anchor.
 */
export function choose<T>(anchor: HTMLElement, title: string, choices: Choice<T>[]): Promise<T | null> {
  document.querySelector('.chooser')?.dispatchEvent(new Event('close'));
  return new Promise((resolve) => {
    const items = choices.map((c, i) => {
      const b = h('button', { type: 'button', role: 'menuitem', class: 'chooser-item', 'data-i': i }, c.label);
      b.addEventListener('click', () => done(c.value));
      return b;
    });
    const menu = h('div', { class: 'chooser', role: 'menu', 'aria-label': title }, h('p', { class: 'chooser-title', 'aria-hidden': 'true' }, title), ...items);
    let finished = false;
    const done = (v: T | null) => {
      if (finished) return;
      finished = true;
      menu.remove();
      document.removeEventListener('pointerdown', outside, true);
      anchor.focus();
      resolve(v);
    };
    const outside = (e: Event) => {
      if (!menu.contains(e.target as Node)) done(null);
    };
    menu.addEventListener('close', () => done(null));
    menu.addEventListener('keydown', (e) => {
      const i = items.indexOf(document.activeElement as HTMLButtonElement);
      if (e.key === 'Escape') {
        e.preventDefault();
        done(null);
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const n = (i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        items[n].focus();
      }
    });
    document.body.append(menu);
    const r = anchor.getBoundingClientRect();
    const w = menu.offsetWidth;
    const hgt = menu.offsetHeight;
    const left = Math.max(4, Math.min(window.innerWidth - w - 4, r.right - w));
    const below = r.bottom + 4 + hgt <= window.innerHeight;
    menu.style.left = `${left}px`;
    menu.style.top = `${below ? r.bottom + 4 : Math.max(4, r.top - hgt - 4)}px`;
    items[0]?.focus();
    window.setTimeout(() => document.addEventListener('pointerdown', outside, true));
  });
}

/** The connection status line; `data-state` carries the state for styling and tests. */
export function statusLine(conn: () => Connection | null): { el: HTMLElement; update(s: ConnState): void } {
  const text = h('span', { class: 'status-text' });
  const now = h('button', { type: 'button', class: 'status-retry', hidden: true });
  const el = h('div', { class: 'status', role: 'status', 'aria-live': 'polite', 'data-state': 'connecting' }, text, now);
  now.addEventListener('click', () => conn()?.reconnectNow());
  let last: ConnState = { kind: 'connecting' };
  const update = (s: ConnState) => {
    last = s;
    el.dataset.state = s.kind;
    now.hidden = s.kind !== 'reconnecting';
    switch (s.kind) {
      case 'connecting':
        text.textContent = t('connConnecting');
        break;
      case 'live':
        text.textContent = t('connLive');
        break;
      case 'reconnecting':
        text.textContent = t('connReconnecting', { n: s.attempt, s: (s.delayMs / 1000).toFixed(1) });
        break;
      case 'failed':
        text.textContent = s.reason === 'token' ? t('connNeedToken') : t('connFailed', { msg: s.message });
        break;
    }
  };
  onLangChange(() => {
    now.textContent = t('connReconnectNow');
    update(last);
  });
  now.textContent = t('connReconnectNow');
  update(last);
  return { el, update };
}

export function errorText(code: string, vars: Record<string, string | number> = {}): string {
  const key = `err_${code}`;
  return hasKey(key) ? t(key as I18nKey, vars) : t('err_generic', { msg: vars.msg ?? code });
}

export interface ComposerOptions {
  /** The rules for this identity now (lockdown, verified-only, slow mode); null: none known. */
  rules?: () => ComposeRule | null;
  /** After an `ack` (e.g. to show one's own held comment). */
  sent?: (ack: Ack, text: string) => void;
}

/** How long an "已发送" notice stays. */
const NOTICE_MS = 4000;

/**
 * Text input + send button + counter + a rules line (what applies before typing: slow mode and its
 * wait, lockdown or verified-only closing the box) + a message line for errors and acks. Enter
 * sends. Success notices clear by themselves; errors clear when the text changes.
 * `refresh()` re-reads the rules (call it when the comment modes change).
 */
export function composer(conn: () => Connection | null, maxChars: () => number, opts: ComposerOptions = {}): HTMLFormElement & { refresh(): void } {
  const id = `c-${Math.random().toString(36).slice(2, 8)}`;
  const label = h('label', { for: id, class: 'sr-only' });
  const input = h('input', { id, type: 'text', class: 'compose-input', autocomplete: 'off', enterkeyhint: 'send' });
  const count = h('span', { class: 'compose-count', 'aria-hidden': 'true' });
  const send = h('button', { type: 'submit', class: 'compose-send' });
  const rule = h('p', { class: 'compose-rule', hidden: true });
  const msg = h('p', { class: 'compose-msg', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'compose', novalidate: true }, rule, label, input, count, send, msg) as HTMLFormElement & { refresh(): void };
  const chars = (s: string) => [...s.normalize('NFC').trim()].length;
  let clearTimer = 0;
  let tickTimer = 0;
  let sending = false;
  const updateCount = () => {
    const n = chars(input.value);
    count.textContent = t('charCount', { n, max: maxChars() });
    count.classList.toggle('over', n > maxChars());
  };
  const setMsg = (kind: string, text: string) => {
    window.clearTimeout(clearTimer);
    msg.dataset.kind = kind;
    msg.textContent = text;
    if (kind === 'ok') clearTimer = window.setTimeout(() => setMsg('', ''), NOTICE_MS);
  };
  /** Applies the rules: the rules line, the disabled box, the slow-mode countdown on the button. */
  const applyRules = () => {
    window.clearTimeout(tickTimer);
    const r = opts.rules?.() ?? null;
    const blocked = r?.blocked ?? null;
    input.disabled = !!blocked;
    form.dataset.blocked = blocked ?? '';
    const wait = r?.waitMs ?? 0;
    send.disabled = sending || !!blocked || wait > 0;
    if (blocked) {
      rule.hidden = false;
      rule.dataset.kind = 'blocked';
      rule.textContent = blocked === 'lockdown' ? t('ruleLockdown') : t('ruleVerifiedOnly');
    } else if (r?.slowMs) {
      rule.hidden = false;
      rule.dataset.kind = wait > 0 ? 'wait' : 'slow';
      rule.textContent = wait > 0 ? t('ruleSlowWait', { every: formatDuration(r.slowMs), s: Math.ceil(wait / 1000) }) : t('ruleSlow', { every: formatDuration(r.slowMs) });
    } else {
      rule.hidden = true;
      rule.textContent = '';
    }
    send.textContent = wait > 0 ? t('sendIn', { s: Math.ceil(wait / 1000) }) : t('send');
    if (wait > 0) tickTimer = window.setTimeout(applyRules, Math.min(1000, wait));
  };
  i18n(() => {
    label.textContent = t('commentLabel');
    input.placeholder = t('commentPlaceholder');
    send.title = t('sendLabel');
    updateCount();
    applyRules();
  });
  input.addEventListener('input', () => {
    updateCount();
    if (msg.dataset.kind === 'error') setMsg('', '');
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = conn();
    const text = input.value;
    const n = chars(text);
    if (input.disabled || send.disabled) return;
    if (n === 0) return setMsg('error', errorText('text_empty'));
    if (n > maxChars()) return setMsg('error', errorText('text_too_long', { max: maxChars() }));
    if (!c || !c.isLive()) return setMsg('error', errorText('not_connected'));
    sending = true;
    send.disabled = true;
    setMsg('info', t('sending'));
    try {
      const ack = await c.post(text);
      input.value = '';
      updateCount();
      setMsg('ok', ack.held ? t('sentHeld') : t('sent'));
      opts.sent?.(ack, text);
    } catch (err) {
      const code = err instanceof PostError ? err.code : 'internal';
      const m = err instanceof Error ? err.message : String(err);
      setMsg('error', errorText(code, { max: maxChars(), msg: m }));
    } finally {
      sending = false;
      applyRules();
      input.focus();
    }
  });
  form.refresh = applyRules;
  return form;
}

/** A titled region with a placeholder, to be filled when its protocol part lands. */
export function slot(name: string, title: () => string, pending: () => string): { el: HTMLElement; body: HTMLElement } {
  const hid = `slot-${name}`;
  const heading = h('h2', { id: hid });
  const body = h('div', { class: 'slot-body', 'data-slot': name });
  const note = h('p', { class: 'slot-pending' });
  body.append(note);
  i18n(() => {
    heading.textContent = title();
    note.textContent = pending();
  });
  const el = h('section', { class: `slot slot-${name}`, 'aria-labelledby': hid }, heading, body);
  return { el, body };
}

export function formatCount(n: number): string {
  return new Intl.NumberFormat(currentLang()).format(n);
}
