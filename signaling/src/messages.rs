//! Message types. Each enum is tagged by the field `t` (snake_case variant names); items of a
//! topic are tagged by the field `k`. Optional fields may be omitted by either side.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::consult::{Command, ConsultEvent, Reply, Snapshot};
use crate::identity::Author;
use crate::ids::{ActivityId, Epoch, Seq};

/// Where a subscriber stands in a topic: the epoch it saw and the last sequence number it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Position {
    /// The topic's epoch the client saw.
    pub epoch: Epoch,
    /// The last sequence number the client holds (0 if none).
    pub offset: Seq,
}

/// One item of a topic. Encoded once when it is accepted, then shared by every delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Item {
    /// Its position in the topic.
    pub seq: Seq,
    /// When the hub accepted it, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// What it is.
    pub body: ItemBody,
}

/// The kinds of item a topic carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum ItemBody {
    /// A live comment.
    Comment {
        /// Who wrote it.
        author: Author,
        /// The text: 1 to 500 characters, NFC-normalised, no control characters.
        text: String,
        /// For the public copy of a comment that was held for review: the held original's seq
        /// (clients may ignore it; moderators use it to drop the held copy from their queue).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approves: Option<Seq>,
    },
    /// A comment was hidden by a moderator: clients remove it from their screen.
    Hide {
        /// The sequence number of the hidden comment.
        target: Seq,
    },
}

/// Messages a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First message of every connection: proves who the client is.
    Auth {
        /// Protocol version, [`crate::PROTOCOL_VERSION`].
        v: u16,
        /// A signed token (JWT).
        token: String,
    },
    /// Start receiving a topic (an activity's comment stream).
    Sub {
        /// The topic (activity id).
        topic: ActivityId,
        /// Resume after this position instead of starting at the live edge.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Position>,
        /// Without `resume`: start this many items before the live edge (at most
        /// [`crate::limits::MAX_SUB_LAST`]), so a newcomer sees the recent comments, from
        /// memory or from the durable record (after a restart too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<u32>,
    },
    /// Stop receiving a topic.
    Unsub {
        /// The topic.
        topic: ActivityId,
    },
    /// Post a comment. Answered by `ack` (durable) or `error`, both carrying `id`.
    Post {
        /// Client-chosen request id, echoed in the answer.
        id: u32,
        /// The topic.
        topic: ActivityId,
        /// The text.
        text: String,
    },
    /// A moderation request (floor, questions, comment moderation). Answered by `reply` or
    /// `error`, both carrying `id`; its effects arrive as `event`s.
    Cmd {
        /// Client-chosen request id, echoed in the answer.
        id: u32,
        /// The activity.
        topic: ActivityId,
        /// The request, tagged by `c`.
        cmd: Command,
    },
    /// Keepalive; answered by `pong` with the same id.
    Ping {
        /// Echoed.
        id: u32,
    },
    /// Media signalling (rooms): answered by `media` with the same id.
    Media {
        /// Client-chosen request id, echoed in the answer.
        id: u32,
        /// The request.
        req: crate::media::MediaRequest,
    },
    /// A request of the consensus part (polls, statements; `docs/protocol.md` §10): answered
    /// by `consensus_reply` or `error`, both carrying `id`. `req` is an object tagged by `c`
    /// (`poll_create`, `poll_answer`, `statement_vote`, ...); its shapes are the hub's
    /// (`shangliang::server::moderation::ConsensusRequest`), so this crate carries it as JSON.
    Consensus {
        /// Client-chosen request id, echoed in the answer.
        id: u32,
        /// The activity.
        topic: ActivityId,
        /// The request, tagged by `c`.
        #[ts(type = "{ c: string; [field: string]: unknown }")]
        req: serde_json::Value,
    },
}

/// Limits the server announces in `welcome`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AnnouncedLimits {
    /// Largest frame the client may send, in bytes.
    pub max_frame_bytes: u32,
    /// Longest comment text, in characters.
    pub max_text_chars: u32,
    /// Comments one identity may post per minute.
    pub comments_per_minute: u32,
    /// The server closes a connection that sent nothing (not even `ping`) for this long.
    pub idle_timeout_ms: u32,
    /// Frames the client may send per second, sustained (bursts of twice that); frames over it
    /// are not processed (`rate_limited`) and 3 seconds over it close with 4429. Absent (0)
    /// from servers older than this field.
    #[serde(default)]
    pub frames_per_second: u32,
}

/// Messages the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to a valid `auth`.
    Welcome {
        /// Protocol version the server speaks.
        v: u16,
        /// The identity the token names.
        you: Author,
        /// The activity the token is for.
        activity: ActivityId,
        /// Limits this connection is held to.
        limits: AnnouncedLimits,
    },
    /// Answer to `sub`: from here on `batch` frames for the topic follow.
    Subscribed {
        /// The topic.
        topic: ActivityId,
        /// The topic's current epoch.
        epoch: Epoch,
        /// The last sequence number the client holds now: the resume offset if it was honoured,
        /// else the live edge. The next `batch` starts right after it.
        offset: Seq,
        /// Whether this connection sees the moderators' full view (held comments included).
        full_view: bool,
    },
    /// New items of a topic covering the contiguous range `from..=to`. Items the client may
    /// not see (held, or thinned for the public view) are left out, so `items` may be shorter
    /// than the range; `thinned` counts those left out by thinning. If `from` is not one more
    /// than the previous batch's `to`, frames were lost: resume with `sub`.
    Batch {
        /// The topic.
        topic: ActivityId,
        /// The topic's epoch.
        epoch: Epoch,
        /// First sequence number covered.
        from: Seq,
        /// Last sequence number covered.
        to: Seq,
        /// Items of the range left out by public-view thinning.
        thinned: u32,
        /// The items, in sequence order.
        items: Vec<Item>,
    },
    /// A resume could not be honoured (other epoch, or history no longer kept). The client
    /// must drop what it shows for the topic and show `snapshot` (the latest items) instead;
    /// `batch` frames continue after `offset`.
    Reset {
        /// The topic.
        topic: ActivityId,
        /// The topic's current epoch.
        epoch: Epoch,
        /// The last sequence number covered by the snapshot (the live edge).
        offset: Seq,
        /// Why the resume failed.
        reason: ResetReason,
        /// The latest items visible to this client, at most [`crate::limits::SNAPSHOT_ITEMS`].
        snapshot: Vec<Item>,
    },
    /// A posted comment is durable and has this sequence number.
    Ack {
        /// The request id of the `post`.
        id: u32,
        /// Its sequence number in the topic.
        seq: Seq,
        /// Whether it is held for review (only moderators see it until approved).
        #[serde(default)]
        held: bool,
    },
    /// A request failed or a frame was refused.
    Error {
        /// The request id the error answers, if the frame carried one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
        /// Stable, machine-readable code.
        code: ErrorCode,
        /// Human-readable detail (English); may change between versions.
        message: String,
    },
    /// Answer to a successful `cmd`.
    Reply {
        /// The request id of the `cmd`.
        id: u32,
        /// The answer, tagged by `r`.
        reply: Reply,
    },
    /// Something happened in an activity (floor, questions, presence, comment modes, audit).
    /// Not sequenced: the `state` after `subscribed` is the base the events apply to.
    Event {
        /// The activity.
        topic: ActivityId,
        /// What happened, tagged by `t` (floor events also by `k`).
        event: ConsultEvent,
    },
    /// The state of an activity as this connection may see it: sent right after `subscribed`
    /// (and after `reset`), so late joiners see the floor, the hands, the questions, the pinned
    /// question and the comment modes.
    State {
        /// The activity.
        topic: ActivityId,
        /// The state.
        state: Snapshot,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's id.
        id: u32,
    },
    /// Media signalling: the answer to a `media` request (with its `id`) or an event the
    /// server initiates (without).
    Media {
        /// The request id this answers, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
        /// The answer or event.
        ev: crate::media::MediaEvent,
    },
    /// Answer to a successful `consensus` request: an object tagged by `r`.
    ConsensusReply {
        /// The request id of the `consensus` request.
        id: u32,
        /// The answer, tagged by `r`.
        #[ts(type = "{ r: string; [field: string]: unknown }")]
        reply: serde_json::Value,
    },
    /// Something happened in an activity's polls or statements: a poll changed, its coalesced
    /// tally (at most one per poll per interval), a statement, the opinion groups. An object
    /// tagged by `k`. Not sequenced; `consensus` `{c: "state"}` gives the base.
    Consensus {
        /// The activity.
        topic: ActivityId,
        /// What happened, tagged by `k`.
        #[ts(type = "{ k: string; [field: string]: unknown }")]
        event: serde_json::Value,
    },
}

/// Why a resume became a `reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The client's epoch is not the topic's current epoch.
    EpochChanged,
    /// The items after the client's offset are no longer kept.
    HistoryGone,
    /// The client's offset is ahead of the topic (it cannot have seen that).
    OffsetAhead,
}

/// Stable error codes. Clients switch on these; the message text is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid MessagePack/JSON of a known message shape.
    BadFrame,
    /// The frame's `t` names no message this server knows.
    UnknownType,
    /// A message other than `auth` came before `auth`, or `auth` came twice.
    Unauthenticated,
    /// The token is malformed or its signature does not verify.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// The token is for another activity, or the role may not do this.
    Forbidden,
    /// The protocol version is not supported.
    VersionUnsupported,
    /// The topic (activity) does not exist.
    NoSuchTopic,
    /// Too many subscriptions on this connection.
    TooManySubscriptions,
    /// The text is empty after trimming.
    TextEmpty,
    /// The text is longer than the limit.
    TextTooLong,
    /// The text holds control characters or is otherwise unacceptable.
    TextInvalid,
    /// Too many requests from this identity; try again later.
    RateLimited,
    /// The identity may not post here now (ban, timeout, lockdown, verified-only).
    NotAllowed,
    /// The server could not make the comment durable; it was not accepted.
    Unavailable,
    /// A bug or an unexpected failure on the server.
    Internal,
    /// Only the floor holder may do this (yield).
    NotYourTurn,
    /// Nobody holds the floor.
    NoFloorHolder,
    /// The floor was to go to the next hand, but no hand is raised.
    NoHands,
    /// The named participant is not present or may not hold the floor.
    NotEligible,
    /// A time limit or extension must be positive.
    BadTimeLimit,
    /// No such question (or not one the caller may see).
    NoSuchQuestion,
    /// The question is not in a state that allows this.
    BadQuestionState,
    /// Too many of the caller's questions wait for review.
    TooManyQuestions,
    /// The identity already upvoted this question.
    AlreadyVoted,
    /// Un-vote without a vote.
    NotVoted,
    /// The identity is banned from this activity.
    Banned,
    /// The identity is timed out for a while.
    TimedOut,
    /// Slow mode: the identity posted too recently.
    SlowMode,
    /// Lockdown: only members, guests and moderators may post.
    Lockdown,
    /// Only verified identities may post now.
    VerifiedOnly,
    /// The text contains a blocked word.
    Blocked,
    /// No comment with this sequence number is known.
    NoSuchComment,
    /// The comment is not held for review.
    NotHeld,
    /// The comment is already hidden.
    AlreadyHidden,
    /// Moderators cannot be timed out or banned.
    CannotDisciplineModerator,
    /// No such poll (or one the caller may not see yet).
    NoSuchPoll,
    /// The poll is not in a state that allows this (answer a closed poll, launch one twice).
    BadPollState,
    /// The poll does not let an answer be changed and this identity answered already.
    AlreadyAnswered,
    /// The answer does not fit the poll, or the poll or statement being made is malformed.
    InvalidAnswer,
    /// No such statement, or it was withdrawn.
    NoSuchStatement,
    /// This comment or question is already a statement.
    AlreadyPromoted,
    /// The activity holds the most polls, statements or voters it may.
    LimitReached,
    /// The organisers paused the session: nobody but the moderators may comment, ask, vote
    /// or raise a hand until it resumes.
    Paused,
    /// The organisers closed comments (or questions) for now.
    InteractionClosed,
    /// This question holds as many anonymous votes from the caller's address block (IPv4 /24,
    /// IPv6 /64) as it may take; a verified or member identity's vote still counts.
    VoteCapped,
}
