//! What the minutes' "共识与分歧" (consensus and divisions) section prints. Every statement
//! cites its source — the comment's sequence number or the question's id, and the moment of
//! the replay — so a reader can go from the minutes to what was said.

use serde::{Deserialize, Serialize};

use super::groups::GroupShare;
use super::ids::{GroupId, PollId, StatementId};
use super::polls::{CloseReason, PollKind, PollTally};
use super::statements::{StatementSource, VoteCounts};

/// The consensus part of a session record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsensusSummary {
    /// Every launched poll, in order.
    pub polls: Vec<PollRecord>,
    /// Statements created.
    pub statements: u32,
    /// Standing votes on statements.
    pub votes: u64,
    /// Identities that voted or answered.
    pub participants: u32,
    /// The latest groups, if any were computed.
    pub groups: Option<GroupsRecord>,
}

/// A poll and its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PollRecord {
    /// The poll.
    pub poll: PollId,
    /// Its question.
    pub question: String,
    /// Its options or scale.
    pub kind: PollKind,
    /// When it opened.
    pub opened_at_ms: u64,
    /// When it closed (None: still open when the summary was taken).
    pub closed_at_ms: Option<u64>,
    /// Why it closed.
    pub close_reason: Option<CloseReason>,
    /// The final tally (or the current one).
    pub tally: PollTally,
}

/// The groups and the statements they agree on or split over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupsRecord {
    /// When the votes were taken.
    pub computed_at_ms: u64,
    /// Identities counted.
    pub counted: u32,
    /// Each group and its size.
    pub groups: Vec<(GroupId, u32)>,
    /// Consensus toward agreement (score: bridging).
    pub consensus: Vec<CitedStatement>,
    /// Consensus toward disagreement (score: bridging toward disagreement).
    pub consensus_against: Vec<CitedStatement>,
    /// Divisive statements (score: spread).
    pub divisive: Vec<CitedStatement>,
}

/// A statement with its source, for the minutes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CitedStatement {
    /// The statement.
    pub statement: StatementId,
    /// Its text.
    pub text: String,
    /// The comment (seq, accepted at) or question (id, submitted at) it came from.
    pub source: StatementSource,
    /// When it became a statement.
    pub created_at_ms: u64,
    /// Its score in the list it is in.
    pub score: f64,
    /// All standing votes.
    pub counts: VoteCounts,
    /// Each group's votes.
    pub groups: Vec<GroupShare>,
}
