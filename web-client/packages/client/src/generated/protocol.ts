// Generated from the Rust types of the crate shangliang-signaling (signaling/src) by ts-rs.
// Do not edit: regenerate with
//   SHANGLIANG_WRITE_TS=1 cargo test -p shangliang-signaling --test typescript
// (the same test fails in CI when this file is not up to date).

/**
 * Identifier of an activity (a video consultation, a livestreamed deliberation ...).
 * Its comment stream is the topic of the same name.
 *
 * 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 _ -`; cheap to clone.
 */
export type ActivityId = string;

/**
 * Limits the server announces in `welcome`.
 */
export type AnnouncedLimits = { 
/**
 * Largest frame the client may send, in bytes.
 */
max_frame_bytes: number, 
/**
 * Longest comment text, in characters.
 */
max_text_chars: number, 
/**
 * Comments one identity may post per minute.
 */
comments_per_minute: number, 
/**
 * The server closes a connection that sent nothing (not even `ping`) for this long.
 */
idle_timeout_ms: number, 
/**
 * Frames the client may send per second, sustained (bursts of twice that); frames over it
 * are not processed (`rate_limited`) and 3 seconds over it close with 4429. Absent (0)
 * from servers older than this field.
 */
frames_per_second: number, };

/**
 * Who is present in an activity now, counted by identity (several connections of one token
 * count once), across every node of a cluster.
 */
export type AudienceCounts = { 
/**
 * Viewers (the public) present.
 */
viewers: number, 
/**
 * Members, guests and moderators present.
 */
participants: number, 
/**
 * Present identities (any role) whose token names an organisation, by its level; those
 * without one are only in the totals.
 */
by_level: LevelCounts, };

/**
 * One moderator action.
 */
export type AuditEntry = { 
/**
 * Position in the log, from 0.
 */
index: number, 
/**
 * When (ms since the Unix epoch).
 */
at_ms: number, 
/**
 * The moderator.
 */
actor: ParticipantId, 
/**
 * What was done, snake_case (e.g. `floor_granted`, `comment_hidden`).
 */
action: string, 
/**
 * What it was done to (a participant id, a question `Q3`, a comment `#12`, a setting
 * name), or empty.
 */
target: string, 
/**
 * The action's parameters (`limit=60000ms`, `until=...`, a setting's new value), or empty.
 */
detail: string, 
/**
 * The reason given, if any.
 */
reason: string | null, 
/**
 * Hex SHA-256 of the previous entry (64 zeros for the first).
 */
prev_hash: string, 
/**
 * Hex SHA-256 of this entry's canonical form.
 */
hash: string, };

/**
 * Who wrote an item, as every reader of the topic sees it.
 */
export type Author = { 
/**
 * Stable pseudonymous id of the identity (the token's subject).
 */
id: ParticipantId, 
/**
 * Display name.
 */
name: string, 
/**
 * Role in the activity.
 */
role: Role, 
/**
 * Whether the identity is verified (real-name) by the organisers.
 */
verified: boolean, };

/**
 * Messages a client sends.
 */
export type ClientMsg = { "t": "auth", 
/**
 * Protocol version, [`crate::PROTOCOL_VERSION`].
 */
v: number, 
/**
 * A signed token (JWT).
 */
token: string, } | { "t": "sub", 
/**
 * The topic (activity id).
 */
topic: ActivityId, 
/**
 * Resume after this position instead of starting at the live edge.
 */
resume?: Position | null, 
/**
 * Without `resume`: start this many items before the live edge (at most
 * [`crate::limits::MAX_SUB_LAST`]), so a newcomer sees the recent comments, from
 * memory or from the durable record (after a restart too).
 */
last?: number | null, } | { "t": "unsub", 
/**
 * The topic.
 */
topic: ActivityId, } | { "t": "post", 
/**
 * Client-chosen request id, echoed in the answer.
 */
id: number, 
/**
 * The topic.
 */
topic: ActivityId, 
/**
 * The text.
 */
text: string, } | { "t": "cmd", 
/**
 * Client-chosen request id, echoed in the answer.
 */
id: number, 
/**
 * The activity.
 */
topic: ActivityId, 
/**
 * The request, tagged by `c`.
 */
cmd: Command, } | { "t": "ping", 
/**
 * Echoed.
 */
id: number, } | { "t": "media", 
/**
 * Client-chosen request id, echoed in the answer.
 */
id: number, 
/**
 * The request.
 */
req: MediaRequest, } | { "t": "consensus", 
/**
 * Client-chosen request id, echoed in the answer.
 */
id: number, 
/**
 * The activity.
 */
topic: ActivityId, 
/**
 * The request, tagged by `c`.
 */
req: { c: string; [field: string]: unknown }, };

/**
 * A request to an activity. Serialized tagged by `c`.
 */
export type Command = { "c": "raise_hand" } | { "c": "lower_hand", 
/**
 * Whose; `None` for one's own.
 */
target?: ParticipantId | null, } | { "c": "grant_floor", 
/**
 * To whom.
 */
target: GrantTarget, 
/**
 * For how long; `None` for the activity's default.
 */
limit_ms?: number | null, } | { "c": "extend_floor", 
/**
 * How much.
 */
extra_ms: number, } | { "c": "revoke_floor", 
/**
 * Why.
 */
reason?: string | null, } | { "c": "yield_floor" } | { "c": "set_floor_mode", 
/**
 * The mode.
 */
mode: FloorMode, } | { "c": "set_auto_advance", 
/**
 * Turn length, or `None` for off.
 */
limit_ms?: number | null, } | { "c": "mute_all" } | { "c": "pin_programme", 
/**
 * The participant (subject) to show, or `None`.
 */
participant?: ParticipantId | null, } | { "c": "set_stage", 
/**
 * The participant (subject).
 */
participant: ParticipantId, 
/**
 * 上台 (true) or 下台 (false).
 */
on: boolean, } | { "c": "submit_question", 
/**
 * The text.
 */
text: string, 
/**
 * Hide the asker from other viewers.
 */
anonymous?: boolean, } | { "c": "vote_question", 
/**
 * The question.
 */
id: QuestionId, 
/**
 * Vote or un-vote.
 */
up: boolean, } | { "c": "moderate_question", 
/**
 * The question.
 */
id: QuestionId, } & ({ "op": "publish" } | { "op": "reject", 
/**
 * Why (kept in the record).
 */
reason?: string | null, } | { "op": "stage" } | { "op": "answer", 
/**
 * Who answered.
 */
by?: ParticipantId | null, } | { "op": "dismiss", 
/**
 * Why.
 */
reason?: string | null, } | { "op": "pin" } | { "op": "unpin" }) | { "c": "set_question_review", 
/**
 * On or off.
 */
review: boolean, } | { "c": "approve_comment", 
/**
 * The comment.
 */
seq: Seq, } | { "c": "reject_comment", 
/**
 * The comment.
 */
seq: Seq, 
/**
 * Why (kept in the audit log).
 */
reason: string, } | { "c": "approve_all_held" } | { "c": "hide_comment", 
/**
 * The comment.
 */
seq: Seq, 
/**
 * Why.
 */
reason: string, } | { "c": "set_comment_policy", 
/**
 * The change.
 */
change: PolicyChange, } | { "c": "timeout", 
/**
 * Whom.
 */
who: ParticipantId, 
/**
 * Until when.
 */
until_ms: number, 
/**
 * Why.
 */
reason: string, } | { "c": "ban", 
/**
 * Whom.
 */
who: ParticipantId, 
/**
 * Why.
 */
reason: string, } | { "c": "unban", 
/**
 * Whom.
 */
who: ParticipantId, };

/**
 * The modes a moderator sets.
 */
export type CommentModes = { 
/**
 * 先审后发: comments of viewers and guests wait for a moderator.
 */
review: boolean, 
/**
 * Minimum interval between two comments of one identity, in ms.
 */
slow_mode_ms: number | null, 
/**
 * Only verified identities may post.
 */
verified_only: boolean, 
/**
 * Only members, guests and moderators may post.
 */
lockdown: boolean, 
/**
 * The organisers paused the session: no comments, questions, votes or hands from anyone
 * but the moderators until they resume it (refused with `paused`). Absent from older
 * servers: `false`.
 */
paused: boolean, 
/**
 * The organisers closed comments for now (refused with `interaction_closed`).
 */
comments_closed: boolean, 
/**
 * The organisers closed questions for now (refused with `interaction_closed`).
 */
questions_closed: boolean, };

/**
 * An event the server delivers.
 */
export type ConsultEvent = { "t": "floor" } & FloorEvent | { "t": "question", 
/**
 * The question as this audience sees it.
 */
question: QuestionView, } | { "t": "comment_approved", 
/**
 * Its sequence number.
 */
seq: Seq, } | { "t": "comment_hidden", 
/**
 * Its sequence number.
 */
seq: Seq, } | { "t": "comment_held", 
/**
 * The held comment.
 */
comment: HeldComment, } | { "t": "comment_rejected", 
/**
 * Its sequence number.
 */
seq: Seq, } | { "t": "comment_modes", 
/**
 * The modes now.
 */
modes: CommentModes, } | { "t": "presence", 
/**
 * Who.
 */
participant: ParticipantId, 
/**
 * Display name.
 */
name: string, 
/**
 * Role.
 */
role: Role, 
/**
 * Whether present now.
 */
present: boolean, } | { "t": "stage", 
/**
 * Granted 上台 by a moderator, in order of the grant.
 */
stage: Array<ParticipantId>, 
/**
 * On air now (sorted).
 */
on_air: Array<ParticipantId>, } | { "t": "audit", 
/**
 * The entry.
 */
entry: AuditEntry, } | { "t": "audience", 
/**
 * The counts.
 */
counts: AudienceCounts, };

/**
 * A topic's history generation. It changes only when the topic's history is lost (for example
 * the record was deleted); a resume position from another epoch cannot be honoured.
 * Kept below 2^31 so that JavaScript clients hold it exactly.
 */
export type Epoch = number;

/**
 * Stable error codes. Clients switch on these; the message text is for people.
 */
export type ErrorCode = "bad_frame" | "unknown_type" | "unauthenticated" | "invalid_token" | "token_expired" | "forbidden" | "version_unsupported" | "no_such_topic" | "too_many_subscriptions" | "text_empty" | "text_too_long" | "text_invalid" | "rate_limited" | "not_allowed" | "unavailable" | "internal" | "not_your_turn" | "no_floor_holder" | "no_hands" | "not_eligible" | "bad_time_limit" | "no_such_question" | "bad_question_state" | "too_many_questions" | "already_voted" | "not_voted" | "banned" | "timed_out" | "slow_mode" | "lockdown" | "verified_only" | "blocked" | "no_such_comment" | "not_held" | "already_hidden" | "cannot_discipline_moderator" | "no_such_poll" | "bad_poll_state" | "already_answered" | "invalid_answer" | "no_such_statement" | "already_promoted" | "limit_reached" | "paused" | "interaction_closed" | "vote_capped";

/**
 * What the server broadcasts to everyone in the activity.
 */
export type FloorEvent = { "k": "hands_changed", 
/**
 * Raised hands, oldest first.
 */
hands: Array<ParticipantId>, } | { "k": "floor_granted", 
/**
 * The holder.
 */
holder: ParticipantId, 
/**
 * When the turn began.
 */
granted_at_ms: number, 
/**
 * The time limit.
 */
allotted_ms: number, 
/**
 * When the floor is due back.
 */
deadline_ms: number, } | { "k": "floor_extended", 
/**
 * The holder.
 */
holder: ParticipantId, 
/**
 * The new deadline.
 */
deadline_ms: number, } | { "k": "floor_ended", 
/**
 * Who held it.
 */
holder: ParticipantId, 
/**
 * When it ended.
 */
ended_at_ms: number, 
/**
 * How.
 */
end: TurnEnd, 
/**
 * How long it lasted.
 */
spoken_ms: number, 
/**
 * See [`Turn::overtime_ms`].
 */
overtime_ms: number, } | { "k": "mode_changed", 
/**
 * The new mode.
 */
mode: FloorMode, } | { "k": "muted_all", 
/**
 * When.
 */
at_ms: number, };

/**
 * Who is heard.
 */
export type FloorMode = "chaired" | "open";

/**
 * The floor as a joining client needs it.
 */
export type FloorSnapshot = { 
/**
 * Chaired or open.
 */
mode: FloorMode, 
/**
 * Raised hands, oldest first.
 */
hands: Array<ParticipantId>, 
/**
 * Who holds the floor.
 */
holder: ParticipantId | null, 
/**
 * When their turn began.
 */
granted_at_ms: number | null, 
/**
 * When it is due back.
 */
deadline_ms: number | null, };

/**
 * Whom the floor goes to.
 */
export type GrantTarget = "next_hand" | { "participant": ParticipantId };

/**
 * A held comment awaiting a moderator.
 */
export type HeldComment = { 
/**
 * Its sequence number.
 */
seq: Seq, 
/**
 * Who wrote it.
 */
author: Author, 
/**
 * The text.
 */
text: string, 
/**
 * When it was stored.
 */
at_ms: number, };

/**
 * An ICE candidate (trickle), as `RTCIceCandidateInit` has it.
 */
export type IceCandidate = { 
/**
 * The `candidate:...` attribute (without `a=`). Empty: end of candidates.
 */
candidate: string, 
/**
 * The media section's mid.
 */
sdp_mid?: string | null, 
/**
 * The media section's index.
 */
sdp_mline_index?: number | null, };

/**
 * A STUN/TURN server for the client's `RTCPeerConnection` (`RTCIceServer`): the hub's TURN
 * relay with time-limited credentials, for networks where neither UDP nor ICE-TCP to the
 * node gets through.
 */
export type IceServer = { 
/**
 * `turn:`, `turns:` or `stun:` URLs.
 */
urls: Array<string>, 
/**
 * `{expiry}:{subject}` (TURN REST credentials).
 */
username?: string | null, 
/**
 * base64 HMAC-SHA1 of the username with the secret the TURN server shares with the hub.
 */
credential?: string | null, };

/**
 * One item of a topic. Encoded once when it is accepted, then shared by every delivery.
 */
export type Item = { 
/**
 * Its position in the topic.
 */
seq: Seq, 
/**
 * When the hub accepted it, in milliseconds since the Unix epoch.
 */
ts: number, 
/**
 * What it is.
 */
body: ItemBody, };

/**
 * The kinds of item a topic carries.
 */
export type ItemBody = { "k": "comment", 
/**
 * Who wrote it.
 */
author: Author, 
/**
 * The text: 1 to 500 characters, NFC-normalised, no control characters.
 */
text: string, 
/**
 * For the public copy of a comment that was held for review: the held original's seq
 * (clients may ignore it; moderators use it to drop the held copy from their queue).
 */
approves?: Seq | null, } | { "k": "hide", 
/**
 * The sequence number of the hidden comment.
 */
target: Seq, };

/**
 * Counts per organisation level ([`crate::OrgLevel`]).
 */
export type LevelCounts = { 
/**
 * 省
 */
province: number, 
/**
 * 市
 */
city: number, 
/**
 * 县
 */
county: number, };

/**
 * Why a media request failed.
 */
export type MediaErrorCode = "forbidden" | "no_such_room" | "already_joined" | "not_joined" | "invalid_sdp" | "room_full" | "node_full" | "not_allowed" | "closed" | "internal";

/**
 * What the media plane tells a member.
 */
export type MediaEvent = { "op": "joined", 
/**
 * The participant id the others see (the token's subject).
 */
participant: ParticipantId, 
/**
 * STUN/TURN servers for both peer connections (`new RTCPeerConnection({iceServers})`);
 * empty when the hub has no TURN relay configured.
 */
ice_servers?: Array<IceServer>, } | { "op": "publish_answer", 
/**
 * The SDP answer (ICE gathering complete).
 */
sdp: string, } | { "op": "subscriber_offer", 
/**
 * The SDP offer (ICE gathering complete).
 */
sdp: string, } | { "op": "ice", 
/**
 * Which connection.
 */
pc: PcKind, 
/**
 * The candidate.
 */
candidate: IceCandidate, } | { "op": "track_published", 
/**
 * Who.
 */
participant: ParticipantId, 
/**
 * The track's id (for `set_layer`).
 */
track: number, 
/**
 * Audio or video.
 */
kind: TrackKind, } | { "op": "track_unpublished", 
/**
 * Who.
 */
participant: ParticipantId, 
/**
 * The track.
 */
track: number, 
/**
 * Audio or video.
 */
kind: TrackKind, } | { "op": "active_speaker", 
/**
 * Who speaks.
 */
participant: ParticipantId, } | { "op": "connection_state", 
/**
 * Which connection.
 */
pc: PcKind, 
/**
 * The new state.
 */
state: string, } | { "op": "ok" } | { "op": "left" } | { "op": "redirect", 
/**
 * The node hosting the room.
 */
node: NodeId, } | { "op": "error", 
/**
 * Stable code.
 */
code: MediaErrorCode, 
/**
 * Human-readable detail (English).
 */
message: string, };

/**
 * What a member asks of the media plane.
 */
export type MediaRequest = { "op": "join" } | { "op": "publish_offer", 
/**
 * The SDP offer, at most [`crate::limits::MAX_SDP_BYTES`].
 */
sdp: string, } | { "op": "subscriber_answer", 
/**
 * The SDP answer, at most [`crate::limits::MAX_SDP_BYTES`].
 */
sdp: string, } | { "op": "ice", 
/**
 * Which connection.
 */
pc: PcKind, 
/**
 * The candidate.
 */
candidate: IceCandidate, } | { "op": "ice_restart" } | { "op": "set_layer", 
/**
 * The track, as named in `track_published`.
 */
track: number, 
/**
 * The layer.
 */
rid: string, } | { "op": "leave" };

/**
 * A node of a cluster: its public base URL as the node list names it (`http://10.0.0.5:8080`),
 * which is how clients and the other nodes reach it. Cheap to clone.
 */
export type NodeId = string;

/**
 * A participant: the token's subject (a stable, pseudonymous id of the identity). The same id
 * names the identity in the moderation state, on its comments, in its connections' inboxes and
 * in the SFU. Any text the token issuer chose is allowed (the token is signed); cheap to clone.
 */
export type ParticipantId = string;

/**
 * Which of a member's two peer connections.
 */
export type PcKind = "publisher" | "subscriber";

/**
 * A moderator's change to the policy.
 */
export type PolicyChange = { "set": "review", "value": boolean } | { "set": "slow_mode", "value": number | null } | { "set": "verified_only", "value": boolean } | { "set": "lockdown", "value": boolean } | { "set": "block_words", "value": Array<string> } | { "set": "hold_words", "value": Array<string> };

/**
 * Where a subscriber stands in a topic: the epoch it saw and the last sequence number it holds.
 */
export type Position = { 
/**
 * The topic's epoch the client saw.
 */
epoch: Epoch, 
/**
 * The last sequence number the client holds (0 if none).
 */
offset: Seq, };

/**
 * A member, guest or moderator who is present.
 */
export type PresentRow = { 
/**
 * Who.
 */
id: ParticipantId, 
/**
 * Display name.
 */
name: string, 
/**
 * Role.
 */
role: Role, };

/**
 * A question of one activity, numbered from 1 in order of submission.
 */
export type QuestionId = number;

/**
 * A moderator's decision on a question.
 */
export type QuestionOp = { "op": "publish" } | { "op": "reject", 
/**
 * Why (kept in the record).
 */
reason?: string | null, } | { "op": "stage" } | { "op": "answer", 
/**
 * Who answered.
 */
by?: ParticipantId | null, } | { "op": "dismiss", 
/**
 * Why.
 */
reason?: string | null, } | { "op": "pin" } | { "op": "unpin" };

/**
 * Where a question stands.
 */
export type QuestionState = "pending" | "published" | "rejected" | "on_stage" | "answered" | "dismissed";

/**
 * A question as sent to clients.
 */
export type QuestionView = { 
/**
 * Its id.
 */
id: QuestionId, 
/**
 * The text.
 */
text: string, 
/**
 * The asker; `None` for an anonymous question in the public view.
 */
asker: Author | null, 
/**
 * Whether it was asked anonymously.
 */
anonymous: boolean, 
/**
 * Where it stands.
 */
state: QuestionState, 
/**
 * Upvotes.
 */
votes: number, 
/**
 * Pinned by a moderator.
 */
pinned: boolean, 
/**
 * When it was submitted.
 */
submitted_at_ms: number, 
/**
 * When it was answered.
 */
answered_at_ms: number | null, };

/**
 * What a successful [`Command`] answers.
 */
export type Reply = { "r": "done" } | { "r": "floor_granted", 
/**
 * The holder.
 */
holder: ParticipantId, } | { "r": "floor_extended", 
/**
 * The deadline.
 */
deadline_ms: number, } | { "r": "question_submitted", 
/**
 * Its id.
 */
id: QuestionId, } | { "r": "votes", 
/**
 * The count.
 */
votes: number, } | { "r": "approved", 
/**
 * It.
 */
comment: HeldComment, } | { "r": "approved_all", 
/**
 * The number.
 */
count: number, };

/**
 * Why a resume became a `reset`.
 */
export type ResetReason = "epoch_changed" | "history_gone" | "offset_ahead";

/**
 * The role a token grants in an activity, from most to least powerful.
 */
export type Role = "moderator" | "member" | "guest" | "viewer";

/**
 * Position of an item in a topic: the first item has `Seq(1)`; `Seq(0)` means "before the
 * first item". Sequence numbers of a topic never repeat within one [`Epoch`].
 */
export type Seq = number;

/**
 * Messages the server sends.
 */
export type ServerMsg = { "t": "welcome", 
/**
 * Protocol version the server speaks.
 */
v: number, 
/**
 * The identity the token names.
 */
you: Author, 
/**
 * The activity the token is for.
 */
activity: ActivityId, 
/**
 * Limits this connection is held to.
 */
limits: AnnouncedLimits, } | { "t": "subscribed", 
/**
 * The topic.
 */
topic: ActivityId, 
/**
 * The topic's current epoch.
 */
epoch: Epoch, 
/**
 * The last sequence number the client holds now: the resume offset if it was honoured,
 * else the live edge. The next `batch` starts right after it.
 */
offset: Seq, 
/**
 * Whether this connection sees the moderators' full view (held comments included).
 */
full_view: boolean, } | { "t": "batch", 
/**
 * The topic.
 */
topic: ActivityId, 
/**
 * The topic's epoch.
 */
epoch: Epoch, 
/**
 * First sequence number covered.
 */
from: Seq, 
/**
 * Last sequence number covered.
 */
to: Seq, 
/**
 * Items of the range left out by public-view thinning.
 */
thinned: number, 
/**
 * The items, in sequence order.
 */
items: Array<Item>, } | { "t": "reset", 
/**
 * The topic.
 */
topic: ActivityId, 
/**
 * The topic's current epoch.
 */
epoch: Epoch, 
/**
 * The last sequence number covered by the snapshot (the live edge).
 */
offset: Seq, 
/**
 * Why the resume failed.
 */
reason: ResetReason, 
/**
 * The latest items visible to this client, at most [`crate::limits::SNAPSHOT_ITEMS`].
 */
snapshot: Array<Item>, } | { "t": "ack", 
/**
 * The request id of the `post`.
 */
id: number, 
/**
 * Its sequence number in the topic.
 */
seq: Seq, 
/**
 * Whether it is held for review (only moderators see it until approved).
 */
held: boolean, } | { "t": "error", 
/**
 * The request id the error answers, if the frame carried one.
 */
id?: number | null, 
/**
 * Stable, machine-readable code.
 */
code: ErrorCode, 
/**
 * Human-readable detail (English); may change between versions.
 */
message: string, } | { "t": "reply", 
/**
 * The request id of the `cmd`.
 */
id: number, 
/**
 * The answer, tagged by `r`.
 */
reply: Reply, } | { "t": "event", 
/**
 * The activity.
 */
topic: ActivityId, 
/**
 * What happened, tagged by `t` (floor events also by `k`).
 */
event: ConsultEvent, } | { "t": "state", 
/**
 * The activity.
 */
topic: ActivityId, 
/**
 * The state.
 */
state: Snapshot, } | { "t": "pong", 
/**
 * The ping's id.
 */
id: number, } | { "t": "media", 
/**
 * The request id this answers, if any.
 */
id?: number | null, 
/**
 * The answer or event.
 */
ev: MediaEvent, } | { "t": "consensus_reply", 
/**
 * The request id of the `consensus` request.
 */
id: number, 
/**
 * The answer, tagged by `r`.
 */
reply: { r: string; [field: string]: unknown }, } | { "t": "consensus", 
/**
 * The activity.
 */
topic: ActivityId, 
/**
 * What happened, tagged by `k`.
 */
event: { k: string; [field: string]: unknown }, };

/**
 * The state of an activity as one client may see it; see [`Consultation::snapshot`].
 */
export type Snapshot = { 
/**
 * The floor.
 */
floor: FloorSnapshot, 
/**
 * Questions visible to this client, in order of submission.
 */
questions: Array<QuestionView>, 
/**
 * The question on stage.
 */
on_stage: QuestionId | null, 
/**
 * Pinned questions in pin order.
 */
pinned: Array<QuestionId>, 
/**
 * Comment modes.
 */
comment_modes: CommentModes, 
/**
 * Members, guests and moderators present.
 */
present: Array<PresentRow>, 
/**
 * Viewers present.
 */
viewers: number, 
/**
 * Comments held for review, oldest first: all of them for moderators, one's own for
 * everyone else (shown to the author as 审核中).
 */
held: Array<HeldComment>, 
/**
 * A livestream's stage: granted 上台, in order of the grant (empty in a room).
 */
stage: Array<ParticipantId>, 
/**
 * Who is on air now (the stage, the floor holder, a pinned camera; empty in a room).
 */
on_air: Array<ParticipantId>, 
/**
 * The activity is a livestream (it has a stage; `set_stage` works).
 */
livestream: boolean, };

/**
 * Audio or video.
 */
export type TrackKind = "audio" | "video";

/**
 * How a turn ended.
 */
export type TurnEnd = "expired" | "revoked" | "yielded" | "left";
