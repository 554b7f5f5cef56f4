//! Gathering consensus live (聚共识): polls, agree/disagree statements and opinion groups, as
//! sans-I/O state machines. No tokio, no I/O; time comes in as an argument (`now_ms`,
//! milliseconds since the Unix epoch), as in [`crate::consult`].
//!
//! - [`Consensus`] ([`engine`]): one per activity, the only object the server drives. It
//!   authorises every input by [`Grants`](crate::consult::Grants), keeps polls, statements and
//!   the vote matrix, and decides when tallies go out and when groups are recomputed.
//! - [`polls`]: single choice, multiple choice, rating, open word ([`words`]); countdown; one
//!   standing answer per identity; coalesced tallies by tier and organisation level.
//! - [`statements`]: statements promoted from comments or questions (their seq / id kept) or
//!   written; agree / disagree / pass votes, one per identity and statement.
//! - [`matrix`]: the sparse vote matrix, 2 bytes a vote, with copy-on-write snapshots.
//! - [`groups`]: the recompute — [`pca`] (opinion space), [`cluster`] (groups), repness,
//!   consensus by bridging score, divisive statements — as a [`RecomputeJob`] that runs off the
//!   driver on a snapshot.
//! - [`routing`]: which statements a viewer should see next.
//! - [`summary`]: what the minutes print, citing sources.
//!
//! The driver's loop:
//!
//! ```text
//! let mut c = Consensus::new(activity, ConsensusConfig { seed, ..Default::default() });
//! c.handle_command(&moderator, ModeratorCommand::CreatePoll { spec }, now_ms)?;
//! c.handle_poll_answer(&viewer, poll, PollAnswer::Choice { option: 1 }, now_ms)?;
//! c.handle_statement_vote(&viewer, statement, Vote::Agree, now_ms)?;
//! let next = c.next_statements(&viewer, 3);          // what to show this viewer
//! c.handle_tick(now_ms);                              // at c.poll_timeout() at the latest
//! if let Some(job) = c.poll_recompute(now_ms) {       // every few seconds, if votes came in
//!     spawn_blocking(move || job.run())  →  c.handle_groups(report, now_ms)
//! }
//! while let Some(out) = c.poll_event(now_ms) { deliver(out.audience, out.event) }
//! ```

pub mod cluster;
pub mod engine;
pub mod error;
pub mod groups;
pub mod ids;
pub mod matrix;
pub mod minutes;
pub mod pca;
pub mod polls;
pub mod routing;
pub mod statements;
pub mod stats;
pub mod summary;
pub mod voter;
pub mod words;

#[cfg(test)]
mod tests;

pub use engine::{
    CommandReply, Consensus, ConsensusConfig, ConsensusEvent, ModeratorCommand, Outbound, PollView,
    StatementCount, VoteOutcome,
};
pub use error::ConsensusError;
pub use groups::{
    Bridging, Divisive, Group, GroupConfig, GroupMap, GroupMarker, GroupReport, GroupShare, GroupSummary,
    KScore, RecomputeJob, Repness, Side, StatementScore, YouAreHere, bridging_score, consensus_side, spread,
};
pub use ids::{GroupId, PollId, StatementId};
pub use matrix::{MatrixSnapshot, VoteMatrix};
pub use polls::{AnswerOutcome, CloseReason, PartTally, PollAnswer, PollKind, PollSpec, PollState, PollTally, ResultsVisibility};
pub use statements::{Statement, StatementSource, StatementState, StatementView, Vote, VoteCounts};
pub use summary::{CitedStatement, ConsensusSummary, GroupsRecord, PollRecord};
pub use voter::{Tier, TierSet};
pub use words::WordCount;
