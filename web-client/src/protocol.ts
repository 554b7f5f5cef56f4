// The shangliang wire protocol, version 1 (docs/protocol.md; the Rust crate `shangliang-signaling`
// is the reference). Every message type the client speaks or understands lives in this module;
// frames are MessagePack maps with string keys, encoded and decoded by @msgpack/msgpack.

import { Decoder, Encoder } from '@msgpack/msgpack';

export const PROTOCOL_VERSION = 1;

export type Role = 'moderator' | 'member' | 'guest' | 'viewer';

export interface Position {
  epoch: number;
  offset: number;
}

export interface Author {
  id: string;
  name: string;
  role: Role;
  verified?: boolean;
}

export interface CommentBody {
  k: 'comment';
  author: Author;
  text: string;
}

export interface HideBody {
  k: 'hide';
  target: number;
}

/** Kinds this client does not know are kept as opaque bodies and ignored. */
export interface UnknownBody {
  k: string;
  [field: string]: unknown;
}

export type ItemBody = CommentBody | HideBody | UnknownBody;

export interface Item {
  seq: number;
  ts: number;
  body: ItemBody;
}

export function isComment(b: ItemBody): b is CommentBody {
  return b.k === 'comment';
}

export function isHide(b: ItemBody): b is HideBody {
  return b.k === 'hide';
}

// ---- client → server ----

export type ClientMsg =
  | { t: 'auth'; v: number; token: string }
  | { t: 'sub'; topic: string; resume?: Position }
  | { t: 'unsub'; topic: string }
  | { t: 'post'; id: number; topic: string; text: string }
  | { t: 'ping'; id: number };

// ---- server → client ----

export interface AnnouncedLimits {
  max_frame_bytes: number;
  max_text_chars: number;
  comments_per_minute: number;
  idle_timeout_ms: number;
}

export type ResetReason = 'epoch_changed' | 'history_gone' | 'offset_ahead';

export type ErrorCode =
  | 'bad_frame'
  | 'unknown_type'
  | 'unauthenticated'
  | 'invalid_token'
  | 'token_expired'
  | 'forbidden'
  | 'version_unsupported'
  | 'no_such_topic'
  | 'too_many_subscriptions'
  | 'text_empty'
  | 'text_too_long'
  | 'text_invalid'
  | 'rate_limited'
  | 'not_allowed'
  | 'unavailable'
  | 'internal';

export interface Welcome {
  t: 'welcome';
  v: number;
  you: Author;
  activity: string;
  limits: AnnouncedLimits;
}

export interface Subscribed {
  t: 'subscribed';
  topic: string;
  epoch: number;
  offset: number;
  full_view: boolean;
}

export interface Batch {
  t: 'batch';
  topic: string;
  epoch: number;
  from: number;
  to: number;
  thinned: number;
  items: Item[];
}

export interface Reset {
  t: 'reset';
  topic: string;
  epoch: number;
  offset: number;
  reason: ResetReason;
  snapshot: Item[];
}

export interface Ack {
  t: 'ack';
  id: number;
  seq: number;
  held?: boolean;
}

export interface ErrorMsg {
  t: 'error';
  id?: number;
  code: ErrorCode;
  message: string;
}

export interface Pong {
  t: 'pong';
  id: number;
}

/** A message type this client does not know (a newer server); ignored. */
export interface UnknownMsg {
  t: string;
  [field: string]: unknown;
}

export type ServerMsg = Welcome | Subscribed | Batch | Reset | Ack | ErrorMsg | Pong;

// ---- close codes (§4) ----

export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  tooLarge: 1009,
  badFrames: 4400,
  unauthenticated: 4401,
  authTimeout: 4402,
  slowConsumer: 4408,
  versionUnsupported: 4426,
  flood: 4429,
} as const;

// ---- HTTP API ----

export type ActivityKind = 'livestream' | 'room';
export type ActivityState = 'scheduled' | 'live' | 'ended';

export interface Activity {
  id: string;
  title: string;
  kind: ActivityKind;
  state: ActivityState;
  epoch: number;
  created_ms: number;
  viewers: number;
}

export interface ViewerTokenResponse {
  token: string;
  subject: string;
  name: string;
  expires_in: number;
}

export interface ApiErrorBody {
  error: string;
  message: string;
}

// ---- codec ----

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

export function encodeClient(msg: ClientMsg): Uint8Array {
  return encoder.encode(msg);
}

/** Decodes a binary (MessagePack) or text (JSON) frame; null if it is not an object with `t`. */
export function decodeServer(data: ArrayBuffer | string): ServerMsg | UnknownMsg | null {
  const v: unknown = typeof data === 'string' ? JSON.parse(data) : decoder.decode(new Uint8Array(data));
  if (v === null || typeof v !== 'object' || typeof (v as { t?: unknown }).t !== 'string') return null;
  return v as ServerMsg | UnknownMsg;
}
