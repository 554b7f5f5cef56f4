//! The moderation part of the protocol: the shapes of `cmd`, `reply`, `event` and `state`.
//!
//! These are the client-visible types of the consultation domain. The state machines that
//! produce and consume them live in the hub (`src/consult`), which re-exports them; this crate
//! only says what they look like on the wire (`docs/protocol.md` §5).

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use std::fmt;

pub use crate::ids::ParticipantId;
use crate::ids::Seq;
use crate::identity::{Author, Role};

/// A question of one activity, numbered from 1 in order of submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(transparent)]
pub struct QuestionId(pub u64);

/// Who is heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FloorMode {
    /// Only the floor holder and the moderators are heard.
    Chaired,
    /// Every member, guest and moderator is heard; the floor still orders turns.
    Open,
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TurnEnd {
    /// Its time ran out (taken back by a tick).
    Expired,
    /// A moderator took it back, gave the floor to someone else, or muted all.
    Revoked,
    /// The holder gave it up.
    Yielded,
    /// The holder left the activity.
    Left,
}

/// What the server broadcasts to everyone in the activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum FloorEvent {
    /// The hand queue, in order (first is next).
    HandsChanged {
        /// Raised hands, oldest first.
        hands: Vec<ParticipantId>,
    },
    /// Someone has the floor.
    FloorGranted {
        /// The holder.
        holder: ParticipantId,
        /// When the turn began.
        granted_at_ms: u64,
        /// The time limit.
        allotted_ms: u64,
        /// When the floor is due back.
        deadline_ms: u64,
    },
    /// The current turn got more time.
    FloorExtended {
        /// The holder.
        holder: ParticipantId,
        /// The new deadline.
        deadline_ms: u64,
    },
    /// A turn ended.
    FloorEnded {
        /// Who held it.
        holder: ParticipantId,
        /// When it ended.
        ended_at_ms: u64,
        /// How.
        end: TurnEnd,
        /// How long it lasted.
        spoken_ms: u64,
        /// See [`Turn::overtime_ms`].
        overtime_ms: u64,
    },
    /// The mode changed.
    ModeChanged {
        /// The new mode.
        mode: FloorMode,
    },
    /// Everyone but the moderators was muted (the floor taken back, chaired mode).
    MutedAll {
        /// When.
        at_ms: u64,
    },
}

/// Whom the floor goes to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum GrantTarget {
    /// The oldest raised hand.
    NextHand,
    /// A named participant (whose hand, if raised, is lowered).
    Participant(ParticipantId),
}

/// Where a question stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum QuestionState {
    /// Waiting for a moderator; only moderators (and the asker) see it.
    Pending,
    /// Visible to all and open for votes.
    Published,
    /// Refused by a moderator.
    Rejected,
    /// Being answered now (at most one).
    OnStage,
    /// Answered.
    Answered,
    /// Taken off the queue without an answer.
    Dismissed,
}

impl QuestionState {
    /// The state's name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionState::Pending => "pending",
            QuestionState::Published => "published",
            QuestionState::Rejected => "rejected",
            QuestionState::OnStage => "on_stage",
            QuestionState::Answered => "answered",
            QuestionState::Dismissed => "dismissed",
        }
    }

    /// Whether every viewer sees it.
    pub fn is_public(self) -> bool {
        matches!(
            self,
            QuestionState::Published | QuestionState::OnStage | QuestionState::Answered
        )
    }
}

/// A question as sent to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct QuestionView {
    /// Its id.
    pub id: QuestionId,
    /// The text.
    pub text: String,
    /// The asker; `None` for an anonymous question in the public view.
    pub asker: Option<Author>,
    /// Whether it was asked anonymously.
    pub anonymous: bool,
    /// Where it stands.
    pub state: QuestionState,
    /// Upvotes.
    pub votes: u64,
    /// Pinned by a moderator.
    pub pinned: bool,
    /// When it was submitted.
    pub submitted_at_ms: u64,
    /// When it was answered.
    pub answered_at_ms: Option<u64>,
}

/// The modes a moderator sets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CommentModes {
    /// 先审后发: comments of viewers and guests wait for a moderator.
    pub review: bool,
    /// Minimum interval between two comments of one identity, in ms.
    pub slow_mode_ms: Option<u64>,
    /// Only verified identities may post.
    pub verified_only: bool,
    /// Only members, guests and moderators may post.
    pub lockdown: bool,
    /// The organisers paused the session: no comments, questions, votes or hands from anyone
    /// but the moderators until they resume it (refused with `paused`). Absent from older
    /// servers: `false`.
    #[serde(default)]
    pub paused: bool,
    /// The organisers closed comments for now (refused with `interaction_closed`).
    #[serde(default)]
    pub comments_closed: bool,
    /// The organisers closed questions for now (refused with `interaction_closed`).
    #[serde(default)]
    pub questions_closed: bool,
}

/// A moderator's change to the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "set", content = "value", rename_all = "snake_case")]
pub enum PolicyChange {
    /// Review mode on/off.
    Review(bool),
    /// Slow mode interval (ms), or off.
    SlowMode(Option<u64>),
    /// Verified-only on/off.
    VerifiedOnly(bool),
    /// Lockdown on/off.
    Lockdown(bool),
    /// Replace the list of blocked words.
    BlockWords(Vec<String>),
    /// Replace the list of hold words.
    HoldWords(Vec<String>),
}

/// A held comment awaiting a moderator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct HeldComment {
    /// Its sequence number.
    pub seq: Seq,
    /// Who wrote it.
    pub author: Author,
    /// The text.
    pub text: String,
    /// When it was stored.
    pub at_ms: u64,
}

/// One moderator action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub index: u64,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The moderator.
    pub actor: ParticipantId,
    /// What was done, snake_case (e.g. `floor_granted`, `comment_hidden`).
    pub action: String,
    /// What it was done to (a participant id, a question `Q3`, a comment `#12`, a setting
    /// name), or empty.
    pub target: String,
    /// The action's parameters (`limit=60000ms`, `until=...`, a setting's new value), or empty.
    pub detail: String,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this entry's canonical form.
    pub hash: String,
}

/// An event the server delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ConsultEvent {
    /// A floor event (`k` says which).
    Floor(FloorEvent),
    /// A question is new or changed; the view fits the audience. Each vote produces one, so
    /// under load the server should coalesce them per question id (the latest view wins)
    /// before broadcasting to viewers.
    Question {
        /// The question as this audience sees it.
        question: QuestionView,
    },
    /// A held comment was approved: put it into the public view.
    CommentApproved {
        /// Its sequence number.
        seq: Seq,
    },
    /// A comment was hidden: take it out of every view (`ItemBody::Hide` in the topic).
    CommentHidden {
        /// Its sequence number.
        seq: Seq,
    },
    /// A comment was stored held for review (to moderators and to its author): the server's
    /// mark, so no client has to guess which comments of its full view await a moderator.
    CommentHeld {
        /// The held comment.
        comment: HeldComment,
    },
    /// A held comment was rejected (to moderators and to its author); a `hide` item follows in
    /// the moderators' view. The public never saw it.
    CommentRejected {
        /// Its sequence number.
        seq: Seq,
    },
    /// The comment modes changed (clients show "slow mode 10 s", "review on" ...).
    CommentModes {
        /// The modes now.
        modes: CommentModes,
    },
    /// A member, guest or moderator came or went (viewers are only counted).
    Presence {
        /// Who.
        participant: ParticipantId,
        /// Display name.
        name: String,
        /// Role.
        role: Role,
        /// Whether present now.
        present: bool,
    },
    /// Who is on the livestream's stage and who is on air now (the stage, the floor holder
    /// and a pinned camera): sent to everyone whenever either list changes. Only those on air
    /// reach the public (WHEP viewers, the programme); a member shows "直播中" while on air.
    Stage {
        /// Granted 上台 by a moderator, in order of the grant.
        stage: Vec<ParticipantId>,
        /// On air now (sorted).
        on_air: Vec<ParticipantId>,
    },
    /// A moderator action was logged (for other moderators' consoles).
    Audit {
        /// The entry.
        entry: AuditEntry,
    },
    /// The live counts of the activity (docs/protocol.md §5.4.2): pushed to every subscriber at
    /// most once per [`AUDIENCE_INTERVAL_MS`], and only when they changed — never per join or
    /// leave. The `state` after `subscribed` carries the viewer count as the base.
    Audience {
        /// The counts.
        counts: AudienceCounts,
    },
}

/// How often, at most, the live counts are pushed (milliseconds).
pub const AUDIENCE_INTERVAL_MS: u64 = 2_000;

/// Who is present in an activity now, counted by identity (several connections of one token
/// count once), across every node of a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AudienceCounts {
    /// Viewers (the public) present.
    pub viewers: u64,
    /// Members, guests and moderators present.
    pub participants: u64,
    /// Present identities (any role) whose token names an organisation, by its level; those
    /// without one are only in the totals.
    pub by_level: LevelCounts,
}

/// Counts per organisation level ([`crate::OrgLevel`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct LevelCounts {
    /// 省
    pub province: u64,
    /// 市
    pub city: u64,
    /// 县
    pub county: u64,
}

impl LevelCounts {
    /// The count of `level`, to change it.
    pub fn of_mut(&mut self, level: crate::OrgLevel) -> &mut u64 {
        match level {
            crate::OrgLevel::Province => &mut self.province,
            crate::OrgLevel::City => &mut self.city,
            crate::OrgLevel::County => &mut self.county,
        }
    }
}

/// A moderator's decision on a question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QuestionOp {
    /// pending → published.
    Publish,
    /// pending → rejected.
    Reject {
        /// Why (kept in the record).
        #[ts(optional = nullable)]
        reason: Option<String>,
    },
    /// published → on stage (the previous one returns to published).
    Stage,
    /// → answered; `by` defaults to the floor holder.
    Answer {
        /// Who answered.
        #[ts(optional = nullable)]
        by: Option<ParticipantId>,
    },
    /// → dismissed.
    Dismiss {
        /// Why.
        #[ts(optional = nullable)]
        reason: Option<String>,
    },
    /// Pin.
    Pin,
    /// Unpin.
    Unpin,
}

/// The floor as a joining client needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct FloorSnapshot {
    /// Chaired or open.
    pub mode: FloorMode,
    /// Raised hands, oldest first.
    pub hands: Vec<ParticipantId>,
    /// Who holds the floor.
    pub holder: Option<ParticipantId>,
    /// When their turn began.
    pub granted_at_ms: Option<u64>,
    /// When it is due back.
    pub deadline_ms: Option<u64>,
}

/// A member, guest or moderator who is present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PresentRow {
    /// Who.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// The state of an activity as one client may see it; see [`Consultation::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Snapshot {
    /// The floor.
    pub floor: FloorSnapshot,
    /// Questions visible to this client, in order of submission.
    pub questions: Vec<QuestionView>,
    /// The question on stage.
    pub on_stage: Option<QuestionId>,
    /// Pinned questions in pin order.
    pub pinned: Vec<QuestionId>,
    /// Comment modes.
    pub comment_modes: CommentModes,
    /// Members, guests and moderators present.
    pub present: Vec<PresentRow>,
    /// Viewers present.
    pub viewers: u64,
    /// Comments held for review, oldest first: all of them for moderators, one's own for
    /// everyone else (shown to the author as 审核中).
    #[serde(default)]
    pub held: Vec<HeldComment>,
    /// A livestream's stage: granted 上台, in order of the grant (empty in a room).
    #[serde(default)]
    pub stage: Vec<ParticipantId>,
    /// Who is on air now (the stage, the floor holder, a pinned camera; empty in a room).
    #[serde(default)]
    pub on_air: Vec<ParticipantId>,
    /// The activity is a livestream (it has a stage; `set_stage` works).
    #[serde(default)]
    pub livestream: bool,
}

/// A request to an activity. Serialized tagged by `c`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum Command {
    /// Raise one's hand.
    RaiseHand,
    /// Lower one's own hand, or (moderators) someone else's.
    LowerHand {
        /// Whose; `None` for one's own.
        #[serde(default)]
        #[ts(optional = nullable)]
        target: Option<ParticipantId>,
    },
    /// Give the floor.
    GrantFloor {
        /// To whom.
        target: GrantTarget,
        /// For how long; `None` for the activity's default.
        #[serde(default)]
        #[ts(optional = nullable)]
        limit_ms: Option<u64>,
    },
    /// More time for the speaker.
    ExtendFloor {
        /// How much.
        extra_ms: u64,
    },
    /// Take the floor back.
    RevokeFloor {
        /// Why.
        #[serde(default)]
        #[ts(optional = nullable)]
        reason: Option<String>,
    },
    /// Give up one's floor.
    YieldFloor,
    /// Chaired or open.
    SetFloorMode {
        /// The mode.
        mode: FloorMode,
    },
    /// Auto-advance on (turn length) or off.
    SetAutoAdvance {
        /// Turn length, or `None` for off.
        #[serde(default)]
        #[ts(optional = nullable)]
        limit_ms: Option<u64>,
    },
    /// Mute all but the moderators.
    MuteAll,
    /// Pin whose camera the livestream programme shows (`None` unpins: the floor decides
    /// again). Moderators only; audited as `programme_pinned` / `programme_unpinned`.
    PinProgramme {
        /// The participant (subject) to show, or `None`.
        #[serde(default)]
        #[ts(optional = nullable)]
        participant: Option<ParticipantId>,
    },
    /// 上台 (`on`) or 下台 (`!on`): whether `participant`'s camera and microphone may reach the
    /// public of a livestream (WHEP viewers and the programme). Members in the livestream's
    /// room always see each other; the public sees only who is on air (on the stage, holding
    /// the floor, or pinned). Moderators only; audited as `stage_granted` / `stage_revoked`;
    /// `not_eligible` for a viewer or in an activity that is not a livestream. 下台 of the
    /// floor holder also ends their turn.
    SetStage {
        /// The participant (subject).
        participant: ParticipantId,
        /// 上台 (true) or 下台 (false).
        on: bool,
    },
    /// Ask a question.
    SubmitQuestion {
        /// The text.
        text: String,
        /// Hide the asker from other viewers.
        #[serde(default)]
        #[ts(as = "Option<bool>", optional)]
        anonymous: bool,
    },
    /// Upvote (`up`) or withdraw a vote.
    VoteQuestion {
        /// The question.
        id: QuestionId,
        /// Vote or un-vote.
        up: bool,
    },
    /// Move a question.
    ModerateQuestion {
        /// The question.
        id: QuestionId,
        /// What to do.
        #[serde(flatten)]
        op: QuestionOp,
    },
    /// Question review on or off.
    SetQuestionReview {
        /// On or off.
        review: bool,
    },
    /// Approve a held comment.
    ApproveComment {
        /// The comment.
        seq: Seq,
    },
    /// Reject a held comment (it never becomes public; a `hide` item takes it out of the
    /// moderators' view). `not_held` for a comment that is not held.
    RejectComment {
        /// The comment.
        seq: Seq,
        /// Why (kept in the audit log).
        reason: String,
    },
    /// Approve every held comment at once (bulk approval; releasing the queue when review
    /// mode is turned off).
    ApproveAllHeld,
    /// Hide a comment.
    HideComment {
        /// The comment.
        seq: Seq,
        /// Why.
        reason: String,
    },
    /// Change comment modes or keyword lists.
    SetCommentPolicy {
        /// The change.
        change: PolicyChange,
    },
    /// Time someone out.
    Timeout {
        /// Whom.
        who: ParticipantId,
        /// Until when.
        until_ms: u64,
        /// Why.
        reason: String,
    },
    /// Ban someone.
    Ban {
        /// Whom.
        who: ParticipantId,
        /// Why.
        reason: String,
    },
    /// Lift a ban or timeout.
    Unban {
        /// Whom.
        who: ParticipantId,
    },
}

/// What a successful [`Command`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Reply {
    /// Done; the effects arrive as events.
    Done,
    /// The floor went to this participant.
    FloorGranted {
        /// The holder.
        holder: ParticipantId,
    },
    /// The speaker's new deadline.
    FloorExtended {
        /// The deadline.
        deadline_ms: u64,
    },
    /// The new question's id.
    QuestionSubmitted {
        /// Its id.
        id: QuestionId,
    },
    /// The question's vote count now.
    Votes {
        /// The count.
        votes: usize,
    },
    /// The approved comment.
    Approved {
        /// It.
        comment: HeldComment,
    },
    /// How many held comments were approved by `approve_all_held`.
    ApprovedAll {
        /// The number.
        count: usize,
    },
}
impl fmt::Display for QuestionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Q{}", self.0)
    }
}
