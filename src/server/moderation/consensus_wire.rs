//! The consensus requests, answers and per-connection state as they travel between a session and
//! the activity's driver (`msg.rs` carries them; `consensus.rs` answers them). Apart from both so
//! that neither imports the other.

use serde::{Deserialize, Serialize};
use shangliang_signaling::Seq;

use crate::consensus::{
    AnswerOutcome, GroupMap, GroupSummary, PollAnswer, PollId, PollSpec,
    PollTally, PollView, StatementId, StatementView, TierSet, Vote, VoteOutcome, YouAreHere,
};
use crate::consult::QuestionId;

/// A `consensus` request (`req` of the client's `consensus` frame), tagged by `c`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum ConsensusRequest {
    /// Prepare a poll (moderators). Answered `poll_created`.
    PollCreate {
        /// The poll: `question`, `kind` and its fields, `changeable`, `results`.
        spec: PollSpec,
        /// The countdown its launch starts, in seconds (none: open until closed).
        #[serde(default)]
        countdown_s: Option<u32>,
    },
    /// Open a prepared poll (moderators).
    PollLaunch {
        /// The poll.
        poll: PollId,
        /// Overrides the countdown given at `poll_create`.
        #[serde(default)]
        countdown_s: Option<u32>,
    },
    /// Close an open poll; its tally is frozen (moderators).
    PollClose {
        /// The poll.
        poll: PollId,
    },
    /// Hide a word from an open-word poll's published list (moderators).
    PollHideWord {
        /// The poll.
        poll: PollId,
        /// The word.
        word: String,
    },
    /// Answer an open poll. One standing answer per identity: a poll made `changeable` takes
    /// the new answer in place of the old one; otherwise a second answer is refused with
    /// `already_answered`.
    PollAnswer {
        /// The poll.
        poll: PollId,
        /// The answer, tagged by `a`.
        answer: PollAnswer,
    },
    /// Make a statement of a live comment (`seq`) or a question (`question`) (moderators);
    /// `text` (the shortened statement) defaults to the source's text.
    StatementPromote {
        /// The comment's sequence number.
        #[serde(default)]
        seq: Option<Seq>,
        /// The question.
        #[serde(default)]
        question: Option<QuestionId>,
        /// The statement's text.
        #[serde(default)]
        text: Option<String>,
    },
    /// Write a statement (moderators).
    StatementCreate {
        /// Its text.
        text: String,
    },
    /// Withdraw a statement (moderators).
    StatementWithdraw {
        /// The statement.
        statement: StatementId,
    },
    /// Bring a statement to the floor, routed first to whoever has not voted on it; none stops
    /// featuring (moderators).
    StatementFeature {
        /// The statement.
        #[serde(default)]
        statement: Option<StatementId>,
    },
    /// Agree, disagree or pass on a statement: one vote per identity and statement, a new vote
    /// replaces the standing one.
    StatementVote {
        /// The statement.
        statement: StatementId,
        /// The vote.
        vote: Vote,
    },
    /// The statements this identity should vote on next, most informative first.
    StatementNext {
        /// How many (1 to 10; 3 if omitted).
        #[serde(default)]
        n: Option<u8>,
    },
    /// Choose which tiers count toward the opinion groups (moderators).
    CountedTiers {
        /// The tiers.
        tiers: TierSet,
    },
    /// Recompute the groups now (moderators).
    Recompute,
    /// The polls, tallies, statements and groups as this connection may see them (after
    /// `subscribed`, the base the `consensus` events apply to).
    State,
}

impl ConsensusRequest {
    /// Whether the request only reads (the state, the next statements to vote on): reads are
    /// served whatever the activity's lifecycle; everything else only while it is live (the
    /// organisers' gate, `crate::organise::gate`).
    pub fn is_read(&self) -> bool {
        matches!(self, ConsensusRequest::State | ConsensusRequest::StatementNext { .. })
    }
}

/// The answer to a [`ConsensusRequest`] (`reply` of `consensus_reply`), tagged by `r`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum ConsensusAnswer {
    /// Done.
    Done,
    /// The poll prepared.
    PollCreated {
        /// Its id.
        poll: PollId,
    },
    /// The statement made.
    StatementCreated {
        /// Its id.
        statement: StatementId,
    },
    /// Whether anyone had given the hidden word.
    WordHidden {
        /// Someone had.
        known: bool,
    },
    /// The poll answer counted.
    Answered {
        /// New, changed or unchanged.
        outcome: AnswerOutcome,
    },
    /// The statement vote counted.
    Voted {
        /// New, changed or unchanged.
        outcome: VoteOutcome,
    },
    /// What to vote on next.
    Next {
        /// The statements, most informative first.
        statements: Vec<StatementView>,
        /// Where the caller stands on the latest map.
        you: Option<YouAreHere>,
    },
    /// The state.
    State(Box<ConsensusState>),
}

/// The consensus state for one connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsensusState {
    /// Polls it may see (moderators also see prepared ones), in order of creation.
    pub polls: Vec<PollView>,
    /// The current tallies of those polls whose results it may see.
    pub tallies: Vec<PollTally>,
    /// Active statements.
    pub statements: Vec<StatementView>,
    /// The featured statement.
    pub featured: Option<StatementId>,
    /// The latest map.
    pub map: Option<GroupMap>,
    /// The latest full summary (moderators).
    pub console: Option<Box<GroupSummary>>,
}

