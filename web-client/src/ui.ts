// Small DOM helpers and the parts every page shares: header with the language switch, the
// connection status line, the comment composer.

import { PostError, type Connection, type ConnState } from './connection';
import { currentLang, hasKey, onLangChange, setLang, t, type I18nKey } from './i18n';

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

export function header(title: () => string): HTMLElement {
  const home = h('a', { href: '/', class: 'brand' });
  const heading = h('h1', { class: 'page-title' });
  const lang = h('button', { type: 'button', class: 'lang' });
  lang.addEventListener('click', () => setLang(currentLang() === 'en' ? 'zh-CN' : 'en'));
  i18n(() => {
    home.textContent = t('appName');
    home.setAttribute('aria-label', `${t('appName')} — ${t('home')}`);
    heading.textContent = title();
    lang.textContent = t('langSwitch');
    lang.setAttribute('aria-label', t('langSwitchLabel'));
    document.title = `${title()} · ${t('appName')}`;
  });
  return h('header', { class: 'top' }, home, heading, lang);
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

/** Text area + send button + counter + a message line for errors/acks. Enter sends, Shift+Enter is not allowed (no line breaks). */
export function composer(conn: () => Connection | null, maxChars: () => number): HTMLElement {
  const id = `c-${Math.random().toString(36).slice(2, 8)}`;
  const label = h('label', { for: id, class: 'sr-only' });
  const input = h('input', { id, type: 'text', class: 'compose-input', autocomplete: 'off', enterkeyhint: 'send' });
  const count = h('span', { class: 'compose-count', 'aria-hidden': 'true' });
  const send = h('button', { type: 'submit', class: 'compose-send' });
  const msg = h('p', { class: 'compose-msg', role: 'alert', 'aria-live': 'assertive' });
  const form = h('form', { class: 'compose', novalidate: true }, label, input, count, send, msg);
  const chars = (s: string) => [...s.normalize('NFC').trim()].length;
  const updateCount = () => {
    const n = chars(input.value);
    count.textContent = t('charCount', { n, max: maxChars() });
    count.classList.toggle('over', n > maxChars());
  };
  i18n(() => {
    label.textContent = t('commentLabel');
    input.placeholder = t('commentPlaceholder');
    send.textContent = t('send');
    send.setAttribute('aria-label', t('sendLabel'));
    updateCount();
  });
  input.addEventListener('input', () => {
    updateCount();
    if (msg.dataset.kind === 'error') setMsg('', '');
  });
  const setMsg = (kind: string, text: string) => {
    msg.dataset.kind = kind;
    msg.textContent = text;
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = conn();
    const text = input.value;
    const n = chars(text);
    if (n === 0) return setMsg('error', errorText('text_empty'));
    if (n > maxChars()) return setMsg('error', errorText('text_too_long', { max: maxChars() }));
    if (!c || !c.isLive()) return setMsg('error', errorText('not_connected'));
    send.disabled = true;
    setMsg('info', t('sending'));
    try {
      const ack = await c.post(text);
      input.value = '';
      updateCount();
      setMsg('ok', ack.held ? t('sentHeld') : t('sent'));
    } catch (err) {
      const code = err instanceof PostError ? err.code : 'internal';
      const m = err instanceof Error ? err.message : String(err);
      setMsg('error', errorText(code, { max: maxChars(), msg: m }));
    } finally {
      send.disabled = false;
      input.focus();
    }
  });
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
