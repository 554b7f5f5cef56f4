// The messages of docs/protocol.md (JSON form), and a validator for everything the server
// sends: the client never casts unvalidated data. The types are generated from the Rust crate
// `shangliang-signaling` by ts-rs (src/generated/protocol.ts; a Rust test fails in CI when the
// file is out of date, and says how to regenerate it); test/hub.test.mjs drives a real hub so
// that a frame the validator refuses fails the test.

import type { AnnouncedLimits, ServerMsg } from './generated/protocol.js';

export type * from './generated/protocol.js';

export const PROTOCOL_VERSION = 1;

/** The limits of `welcome` (the generated name is `AnnouncedLimits`). */
export type Limits = AnnouncedLimits;

export class ValidationError extends Error {}

type Obj = Record<string, unknown>;

function fail(path: string, want: string, got: unknown): never {
  throw new ValidationError(`${path}: want ${want}, got ${JSON.stringify(got)?.slice(0, 80)}`);
}
function obj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'an object', v);
  return v as Obj;
}
function str(o: Obj, k: string, path: string): string {
  if (typeof o[k] !== 'string') fail(`${path}.${k}`, 'a string', o[k]);
  return o[k] as string;
}
/** A non-negative integer that a JavaScript number holds exactly (the protocol keeps below 2^53). */
function uint(o: Obj, k: string, path: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${path}.${k}`, 'an unsigned integer', v);
  return v as number;
}
function optUint(o: Obj, k: string, path: string): void {
  if (o[k] !== undefined && o[k] !== null) uint(o, k, path);
}
function bool(o: Obj, k: string, path: string): void {
  if (typeof o[k] !== 'boolean') fail(`${path}.${k}`, 'a boolean', o[k]);
}
function tagged(o: Obj, k: string, tag: string, path: string): void {
  str(obj(o[k], `${path}.${k}`), tag, `${path}.${k}`);
}
const ROLES = ['moderator', 'member', 'guest', 'viewer'];
function author(v: unknown, path: string): void {
  const a = obj(v, path);
  str(a, 'id', path);
  str(a, 'name', path);
  if (!ROLES.includes(str(a, 'role', path))) fail(`${path}.role`, ROLES.join('|'), a.role);
  if (a.verified !== undefined) bool(a, 'verified', path);
}
function items(o: Obj, k: string, path: string): void {
  if (!Array.isArray(o[k])) fail(`${path}.${k}`, 'an array', o[k]);
  (o[k] as unknown[]).forEach((it, i) => {
    const p = `${path}.${k}[${i}]`;
    const item = obj(it, p);
    uint(item, 'seq', p);
    uint(item, 'ts', p);
    const body = obj(item.body, `${p}.body`);
    const kind = str(body, 'k', `${p}.body`);
    if (kind === 'comment') {
      author(body.author, `${p}.body.author`);
      str(body, 'text', `${p}.body`);
      optUint(body, 'approves', `${p}.body`);
    } else if (kind === 'hide') {
      uint(body, 'target', `${p}.body`);
    } // Other kinds: kept opaque; clients ignore kinds they do not know (§2.5).
  });
}

/**
 * Validates one decoded server message. Returns it typed, `null` for a message type this
 * client does not know (ignored, as the protocol asks), or throws `ValidationError`.
 */
export function validateServerMsg(v: unknown): ServerMsg | null {
  const m = obj(v, 'msg');
  const t = str(m, 't', 'msg');
  const p = t;
  switch (t) {
    case 'welcome': {
      uint(m, 'v', p);
      author(m.you, `${p}.you`);
      str(m, 'activity', p);
      const l = obj(m.limits, `${p}.limits`);
      for (const k of ['max_frame_bytes', 'max_text_chars', 'comments_per_minute', 'idle_timeout_ms']) uint(l, k, `${p}.limits`);
      optUint(l, 'frames_per_second', `${p}.limits`);
      break;
    }
    case 'subscribed':
      str(m, 'topic', p); uint(m, 'epoch', p); uint(m, 'offset', p); bool(m, 'full_view', p);
      break;
    case 'batch':
      str(m, 'topic', p); uint(m, 'epoch', p); uint(m, 'from', p); uint(m, 'to', p); uint(m, 'thinned', p);
      if ((m.to as number) < (m.from as number) - 1) fail(`${p}.to`, '>= from - 1', m.to);
      items(m, 'items', p);
      break;
    case 'reset':
      str(m, 'topic', p); uint(m, 'epoch', p); uint(m, 'offset', p); str(m, 'reason', p);
      items(m, 'snapshot', p);
      break;
    case 'ack':
      uint(m, 'id', p); uint(m, 'seq', p);
      if (m.held !== undefined) bool(m, 'held', p);
      break;
    case 'error':
      optUint(m, 'id', p); str(m, 'code', p); str(m, 'message', p);
      break;
    case 'reply':
      uint(m, 'id', p); tagged(m, 'reply', 'r', p);
      break;
    case 'event':
      str(m, 'topic', p); tagged(m, 'event', 't', p);
      break;
    case 'state':
      str(m, 'topic', p); obj(m.state, `${p}.state`);
      break;
    case 'pong':
      uint(m, 'id', p);
      break;
    case 'media':
      optUint(m, 'id', p); tagged(m, 'ev', 'op', p);
      break;
    case 'consensus_reply':
      uint(m, 'id', p); tagged(m, 'reply', 'r', p);
      break;
    case 'consensus':
      str(m, 'topic', p); tagged(m, 'event', 'k', p);
      break;
    default:
      return null;
  }
  if (m.t === 'ack' && m.held === undefined) m.held = false;
  return m as unknown as ServerMsg;
}
