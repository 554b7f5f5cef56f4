// The shangliang wire protocol, version 1 (docs/protocol.md; the Rust crate `shangliang-signaling`
// is the reference). Every message type the client speaks or understands lives in this module;
// frames are MessagePack maps with string keys, encoded and decoded by @msgpack/msgpack.

import { Decoder, Encoder } from '@msgpack/msgpack';

export const PROTOCOL_VERSION = 1;

// ---- the messages: generated from the Rust types (signaling/src) by ts-rs ----
// web-client/packages/client/src/generated/protocol.ts is regenerated with
// `SHANGLIANG_WRITE_TS=1 cargo test -p shangliang-signaling --test typescript`, and that test
// fails in CI when it is out of date. Only the names this client gives to single variants are
// declared here.

import type * as G from '../packages/client/src/generated/protocol';

export type {
  ActivityId,
  AnnouncedLimits,
  AudienceCounts,
  AuditEntry,
  Author,
  ClientMsg,
  Command,
  CommentModes,
  ConsultEvent,
  ErrorCode,
  FloorEvent,
  FloorMode,
  FloorSnapshot,
  GrantTarget,
  HeldComment,
  LevelCounts,
  MediaEvent,
  MediaRequest,
  ParticipantId,
  PcKind,
  PolicyChange,
  Position,
  PresentRow,
  QuestionId,
  QuestionOp,
  QuestionState,
  QuestionView,
  Reply,
  ResetReason,
  Role,
  ServerMsg,
  TrackKind,
  TurnEnd,
} from '../packages/client/src/generated/protocol';

/** An item as this client keeps it: a body of a kind it does not know stays opaque (§2.5). */
export type ItemBody = G.ItemBody | UnknownBody;
export type Item = Omit<G.Item, 'body'> & { body: ItemBody };

export type CommentBody = Extract<G.ItemBody, { k: 'comment' }>;
export type HideBody = Extract<G.ItemBody, { k: 'hide' }>;

/** Kinds this client does not know are kept as opaque bodies and ignored. */
export interface UnknownBody {
  k: string;
  [field: string]: unknown;
}

export function isComment(b: ItemBody): b is CommentBody {
  return b.k === 'comment';
}

export function isHide(b: ItemBody): b is HideBody {
  return b.k === 'hide';
}

export type IceCandidateMsg = G.IceCandidate;
export type ConsultSnapshot = G.Snapshot;

type Msg<T extends G.ServerMsg['t']> = Extract<G.ServerMsg, { t: T }>;
export type Welcome = Msg<'welcome'>;
export type Subscribed = Msg<'subscribed'>;
/** Batches and resets carry this client's `Item`s (unknown kinds kept opaque). */
export type Batch = Omit<Msg<'batch'>, 'items'> & { items: Item[] };
export type Reset = Omit<Msg<'reset'>, 'snapshot'> & { snapshot: Item[] };
export type Ack = Msg<'ack'>;
export type ErrorMsg = Msg<'error'>;
export type ReplyMsg = Msg<'reply'>;
export type EventMsg = Msg<'event'>;
export type StateMsg = Msg<'state'>;
export type Pong = Msg<'pong'>;
export type MediaMsg = Msg<'media'>;

/** A message type this client does not know (a newer server); ignored. */
export interface UnknownMsg {
  t: string;
  [field: string]: unknown;
}

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

export function encodeClient(msg: G.ClientMsg): Uint8Array {
  return encoder.encode(msg);
}

/** Decodes a binary (MessagePack) or text (JSON) frame; null if it is not an object with `t`. */
export function decodeServer(data: ArrayBuffer | string): G.ServerMsg | UnknownMsg | null {
  const v: unknown = typeof data === 'string' ? JSON.parse(data) : decoder.decode(new Uint8Array(data));
  if (v === null || typeof v !== 'object' || typeof (v as { t?: unknown }).t !== 'string') return null;
  return v as G.ServerMsg | UnknownMsg;
}
