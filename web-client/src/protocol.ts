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
  /** On the public copy of a comment that was held for review: the held original's seq. */
  approves?: number;
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
  | { t: 'sub'; topic: string; resume?: Position; last?: number }
  | { t: 'unsub'; topic: string }
  | { t: 'post'; id: number; topic: string; text: string }
  | { t: 'cmd'; id: number; topic: string; cmd: Command }
  | { t: 'media'; id: number; req: MediaRequest }
  | { t: 'ping'; id: number }
  /** Polls and statements (docs/protocol.md §8); `req` is tagged by `c` (see consensus.ts). */
  | { t: 'consensus'; id: number; topic: string; req: { c: string; [field: string]: unknown } };

// ---- media signalling for room members (`media` req → `media` ev with the same id; events without id) ----

export type PcKind = 'publisher' | 'subscriber';
export type TrackKind = 'audio' | 'video';

export interface IceCandidateMsg {
  candidate: string;
  sdp_mid?: string;
  sdp_mline_index?: number;
}

export type MediaRequest =
  | { op: 'join' }
  | { op: 'publish_offer'; sdp: string }
  | { op: 'subscriber_answer'; sdp: string }
  | { op: 'ice'; pc: PcKind; candidate: IceCandidateMsg }
  | { op: 'ice_restart' }
  | { op: 'set_layer'; track: number; rid: string }
  | { op: 'leave' };

export type MediaEvent =
  | { op: 'joined'; participant: string }
  | { op: 'publish_answer'; sdp: string }
  | { op: 'subscriber_offer'; sdp: string }
  | { op: 'ice'; pc: PcKind; candidate: IceCandidateMsg }
  | { op: 'track_published'; participant: string; track: number; kind: TrackKind }
  | { op: 'track_unpublished'; participant: string; track: number; kind: TrackKind }
  | { op: 'active_speaker'; participant: string }
  | { op: 'connection_state'; pc: PcKind; state: string }
  | { op: 'ok' }
  | { op: 'left' }
  | { op: 'redirect'; node: string }
  | { op: 'error'; code: string; message: string };

export interface MediaMsg {
  t: 'media';
  id?: number;
  ev: MediaEvent;
}

// ---- moderation: the floor, questions, comment moderation (`cmd` → `reply`/`error`; `event`, `state`) ----

/** A participant's stable identity (the token's `sub`). */
export type ParticipantId = string;
export type QuestionId = number;
export type FloorMode = 'chaired' | 'open';
export type TurnEnd = 'expired' | 'revoked' | 'yielded' | 'left';
export type QuestionState = 'pending' | 'published' | 'rejected' | 'on_stage' | 'answered' | 'dismissed';
/** `"next_hand"` or `{participant: id}`. */
export type GrantTarget = 'next_hand' | { participant: ParticipantId };

export type FloorEvent =
  | { k: 'hands_changed'; hands: ParticipantId[] }
  | { k: 'floor_granted'; holder: ParticipantId; granted_at_ms: number; allotted_ms: number; deadline_ms: number }
  | { k: 'floor_extended'; holder: ParticipantId; deadline_ms: number }
  | { k: 'floor_ended'; holder: ParticipantId; ended_at_ms: number; end: TurnEnd; spoken_ms: number; overtime_ms: number }
  | { k: 'mode_changed'; mode: FloorMode }
  | { k: 'muted_all'; at_ms: number };

export interface QuestionView {
  id: QuestionId;
  text: string;
  /** Absent for anonymous questions (except for moderators). */
  asker?: Author | null;
  anonymous: boolean;
  state: QuestionState;
  votes: number;
  pinned: boolean;
  submitted_at_ms: number;
  answered_at_ms?: number | null;
}

export interface CommentModes {
  review: boolean;
  slow_mode_ms?: number | null;
  verified_only: boolean;
  lockdown: boolean;
  /** The organisers paused the session (protocol.md §5.7); absent from older servers. */
  paused?: boolean;
  comments_closed?: boolean;
  questions_closed?: boolean;
}

export type PolicyChange =
  | { set: 'review'; value: boolean }
  | { set: 'slow_mode'; value: number | null }
  | { set: 'verified_only'; value: boolean }
  | { set: 'lockdown'; value: boolean }
  | { set: 'block_words'; value: string[] }
  | { set: 'hold_words'; value: string[] };

export interface HeldComment {
  seq: number;
  author: Author;
  text: string;
  at_ms: number;
}

export interface AuditEntry {
  index: number;
  at_ms: number;
  actor: ParticipantId;
  action: string;
  target: string;
  detail: string;
  reason?: string | null;
  prev_hash: string;
  hash: string;
}

export type ConsultEvent =
  | ({ t: 'floor' } & FloorEvent)
  | { t: 'question'; question: QuestionView }
  | { t: 'comment_approved'; seq: number }
  | { t: 'comment_hidden'; seq: number }
  | { t: 'comment_held'; comment: HeldComment }
  | { t: 'comment_rejected'; seq: number }
  | { t: 'comment_modes'; modes: CommentModes }
  | { t: 'presence'; participant: ParticipantId; name: string; role: Role; present: boolean }
  /** A livestream's stage (上台) and who is on air now (the stage, the floor holder, a pin). */
  | { t: 'stage'; stage: ParticipantId[]; on_air: ParticipantId[] }
  | { t: 'audit'; entry: AuditEntry };

export type QuestionOp =
  | { op: 'publish' }
  | { op: 'reject'; reason?: string | null }
  | { op: 'stage' }
  | { op: 'answer'; by?: ParticipantId | null }
  | { op: 'dismiss'; reason?: string | null }
  | { op: 'pin' }
  | { op: 'unpin' };

export type Command =
  | { c: 'raise_hand' }
  | { c: 'lower_hand'; target?: ParticipantId | null }
  | { c: 'grant_floor'; target: GrantTarget; limit_ms?: number | null }
  | { c: 'extend_floor'; extra_ms: number }
  | { c: 'revoke_floor'; reason?: string | null }
  | { c: 'yield_floor' }
  | { c: 'set_floor_mode'; mode: FloorMode }
  | { c: 'set_auto_advance'; limit_ms?: number | null }
  | { c: 'mute_all' }
  | { c: 'pin_programme'; participant: string | null }
  | { c: 'set_stage'; participant: ParticipantId; on: boolean }
  | { c: 'submit_question'; text: string; anonymous?: boolean }
  | { c: 'vote_question'; id: QuestionId; up: boolean }
  | ({ c: 'moderate_question'; id: QuestionId } & QuestionOp)
  | { c: 'set_question_review'; review: boolean }
  | { c: 'approve_comment'; seq: number }
  | { c: 'hide_comment'; seq: number; reason: string }
  | { c: 'reject_comment'; seq: number; reason: string }
  | { c: 'approve_all_held' }
  | { c: 'set_comment_policy'; change: PolicyChange }
  | { c: 'timeout'; who: ParticipantId; until_ms: number; reason: string }
  | { c: 'ban'; who: ParticipantId; reason: string }
  | { c: 'unban'; who: ParticipantId };

export type Reply =
  | { r: 'done' }
  | { r: 'floor_granted'; holder: ParticipantId }
  | { r: 'floor_extended'; deadline_ms: number }
  | { r: 'question_submitted'; id: QuestionId }
  | { r: 'votes'; votes: number }
  | { r: 'approved'; comment: HeldComment }
  | { r: 'approved_all'; count: number };

export interface FloorSnapshot {
  mode: FloorMode;
  hands: ParticipantId[];
  holder?: ParticipantId | null;
  granted_at_ms?: number | null;
  deadline_ms?: number | null;
}

export interface PresentRow {
  id: ParticipantId;
  name: string;
  role: Role;
}

export interface ConsultSnapshot {
  floor: FloorSnapshot;
  questions: QuestionView[];
  on_stage?: QuestionId | null;
  pinned: QuestionId[];
  comment_modes: CommentModes;
  present: PresentRow[];
  viewers: number;
  /** Held for review now: all for moderators, one's own for everyone else (older servers: absent). */
  held?: HeldComment[];
  /** A livestream's stage: granted 上台 (older servers: absent). */
  stage?: ParticipantId[];
  /** Who reaches the public now (older servers: absent). */
  on_air?: ParticipantId[];
  /** The activity is a livestream: it has a stage (older servers: absent). */
  livestream?: boolean;
}

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
  | 'internal'
  | 'not_your_turn'
  | 'no_floor_holder'
  | 'no_hands'
  | 'not_eligible'
  | 'bad_time_limit'
  | 'no_such_question'
  | 'bad_question_state'
  | 'too_many_questions'
  | 'already_voted'
  | 'not_voted'
  | 'banned'
  | 'timed_out'
  | 'slow_mode'
  | 'lockdown'
  | 'verified_only'
  | 'blocked'
  | 'no_such_comment'
  | 'not_held'
  | 'already_hidden'
  | 'cannot_discipline_moderator'
  | 'paused'
  | 'interaction_closed';

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

export interface ReplyMsg {
  t: 'reply';
  id: number;
  reply: Reply;
}

export interface EventMsg {
  t: 'event';
  topic: string;
  event: ConsultEvent;
}

export interface StateMsg {
  t: 'state';
  topic: string;
  state: ConsultSnapshot;
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

export type ServerMsg = Welcome | Subscribed | Batch | Reset | Ack | ErrorMsg | ReplyMsg | EventMsg | StateMsg | MediaMsg | Pong;

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
