//! The one error enum of the consensus domain. Codes are stable snake_case strings; the wire
//! protocol (a later task) maps them to its error codes at the edge.

use super::ids::{PollId, StatementId};
use crate::consult::text::TextError;

/// Why an input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// The role may not do this (only moderators prepare polls and statements).
    #[error("your role may not do this")]
    Forbidden,
    /// The grants are for another activity.
    #[error("the token is for another activity")]
    WrongActivity,
    /// No such poll, or one the caller may not see yet (prepared polls are the moderators').
    #[error("no such poll {0}")]
    NoSuchPoll(PollId),
    /// The poll is not in a state that allows this.
    #[error("poll {id} is {state}; cannot {op}")]
    BadPollState {
        /// The poll.
        id: PollId,
        /// Its state.
        state: &'static str,
        /// What was asked.
        op: &'static str,
    },
    /// The poll does not let an answer be changed, and this identity answered already.
    #[error("you already answered this poll")]
    AlreadyAnswered,
    /// The answer does not fit the poll (wrong kind, unknown option, too many choices, rating
    /// out of range, no word ...); the text says which.
    #[error("invalid answer: {0}")]
    InvalidAnswer(&'static str),
    /// The poll being prepared is malformed; the text says how.
    #[error("invalid poll: {0}")]
    InvalidPoll(&'static str),
    /// A countdown outside the allowed range.
    #[error("a countdown must be between {min_ms} and {max_ms} ms")]
    BadDuration {
        /// Shortest countdown.
        min_ms: u64,
        /// Longest countdown.
        max_ms: u64,
    },
    /// No such statement.
    #[error("no such statement {0}")]
    NoSuchStatement(StatementId),
    /// The statement was withdrawn: it takes no votes and counts for nothing.
    #[error("statement {0} was withdrawn")]
    StatementWithdrawn(StatementId),
    /// This comment or question is already a statement.
    #[error("the source is already statement {0}")]
    AlreadyPromoted(StatementId),
    /// The activity holds the most polls it may.
    #[error("an activity holds at most {0} polls")]
    TooManyPolls(usize),
    /// The activity holds the most statements it may.
    #[error("an activity holds at most {0} statements")]
    TooManyStatements(usize),
    /// The activity has seen the most identities it may count.
    #[error("an activity counts at most {0} identities")]
    TooManyParticipants(usize),
    /// A text was refused by normalisation.
    #[error("{0}")]
    Text(TextError),
}

impl From<TextError> for ConsensusError {
    fn from(e: TextError) -> Self {
        ConsensusError::Text(e)
    }
}

impl ConsensusError {
    /// The wire protocol's code for this refusal.
    pub fn wire_code(&self) -> shangliang_signaling::ErrorCode {
        use shangliang_signaling::ErrorCode as E;
        match self {
            ConsensusError::Forbidden | ConsensusError::WrongActivity => E::Forbidden,
            ConsensusError::NoSuchPoll(_) => E::NoSuchPoll,
            ConsensusError::BadPollState { .. } => E::BadPollState,
            ConsensusError::AlreadyAnswered => E::AlreadyAnswered,
            ConsensusError::InvalidAnswer(_) | ConsensusError::InvalidPoll(_) => E::InvalidAnswer,
            ConsensusError::BadDuration { .. } => E::BadTimeLimit,
            ConsensusError::NoSuchStatement(_) | ConsensusError::StatementWithdrawn(_) => E::NoSuchStatement,
            ConsensusError::AlreadyPromoted(_) => E::AlreadyPromoted,
            ConsensusError::TooManyPolls(_) | ConsensusError::TooManyStatements(_) | ConsensusError::TooManyParticipants(_) => E::LimitReached,
            ConsensusError::Text(TextError::Empty) => E::TextEmpty,
            ConsensusError::Text(TextError::TooLong(_)) => E::TextTooLong,
            ConsensusError::Text(TextError::Control) => E::TextInvalid,
        }
    }

    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ConsensusError::Forbidden => "forbidden",
            ConsensusError::WrongActivity => "wrong_activity",
            ConsensusError::NoSuchPoll(_) => "no_such_poll",
            ConsensusError::BadPollState { .. } => "bad_poll_state",
            ConsensusError::AlreadyAnswered => "already_answered",
            ConsensusError::InvalidAnswer(_) => "invalid_answer",
            ConsensusError::InvalidPoll(_) => "invalid_poll",
            ConsensusError::BadDuration { .. } => "bad_duration",
            ConsensusError::NoSuchStatement(_) => "no_such_statement",
            ConsensusError::StatementWithdrawn(_) => "statement_withdrawn",
            ConsensusError::AlreadyPromoted(_) => "already_promoted",
            ConsensusError::TooManyPolls(_) => "too_many_polls",
            ConsensusError::TooManyStatements(_) => "too_many_statements",
            ConsensusError::TooManyParticipants(_) => "too_many_participants",
            ConsensusError::Text(TextError::Empty) => "text_empty",
            ConsensusError::Text(TextError::TooLong(_)) => "text_too_long",
            ConsensusError::Text(TextError::Control) => "text_invalid",
        }
    }
}
