//! Statements: short sentences the audience agrees with, disagrees with or passes on.
//!
//! A moderator promotes a live comment (cited by its topic sequence number) or a question (by
//! its id) into a statement, usually shortened, or writes one. The source is kept so the
//! minutes can cite the comment or question and the moment of the replay it came from; one
//! source gives at most one statement. A withdrawn statement takes no more votes and counts
//! for nothing (the opinion groups ignore its column), but its votes stay for the record.
//!
//! This module keeps the statements and their per-tier vote counts; the votes themselves live
//! in the [`super::matrix::VoteMatrix`], which the session updates in the same step.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shangliang_signaling::Seq;

use super::error::ConsensusError;
use super::ids::StatementId;
use super::voter::Tier;
use crate::consult::text::normalize_line;
use crate::consult::{ParticipantId, QuestionId};

/// Longest statement, in characters: a statement is read and voted on in a few seconds.
pub const MAX_STATEMENT_CHARS: usize = 140;

/// Most statements per activity. Pol.is conversations rarely pass a few hundred; the packing
/// of the matrix would allow 16,384.
pub const MAX_STATEMENTS: usize = 1_000;

/// A viewer's answer to a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// Agrees.
    Agree,
    /// Disagrees.
    Disagree,
    /// Saw it and passes (unsure, or no opinion). Counts as seen: it weighs against a majority.
    Pass,
}

/// Where a statement came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum StatementSource {
    /// A live comment of the activity's topic.
    Comment {
        /// Its sequence number in the topic.
        seq: Seq,
        /// When it was accepted (ms since the Unix epoch): its moment in the replay.
        at_ms: u64,
    },
    /// A question of the activity.
    Question {
        /// Its id.
        id: QuestionId,
        /// When it was submitted.
        at_ms: u64,
    },
    /// Written by the moderator.
    Written,
}

/// Whether a statement takes votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementState {
    /// Shown to viewers and counted.
    Active,
    /// Taken back by a moderator: no votes, not counted.
    Withdrawn,
}

/// Votes on one statement (or one group's votes on it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteCounts {
    /// Agree votes.
    pub agree: u32,
    /// Disagree votes.
    pub disagree: u32,
    /// Passes.
    pub pass: u32,
}

impl VoteCounts {
    /// Everyone who voted, passes included.
    pub fn seen(&self) -> u32 {
        self.agree + self.disagree + self.pass
    }

    pub(crate) fn add(&mut self, v: Vote) {
        *self.slot(v) += 1;
    }

    pub(crate) fn remove(&mut self, v: Vote) {
        *self.slot(v) -= 1;
    }

    fn slot(&mut self, v: Vote) -> &mut u32 {
        match v {
            Vote::Agree => &mut self.agree,
            Vote::Disagree => &mut self.disagree,
            Vote::Pass => &mut self.pass,
        }
    }

    fn plus(self, o: VoteCounts) -> VoteCounts {
        VoteCounts {
            agree: self.agree + o.agree,
            disagree: self.disagree + o.disagree,
            pass: self.pass + o.pass,
        }
    }
}

/// A statement with everything the record keeps about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Its id.
    pub id: StatementId,
    /// The normalised text.
    pub text: String,
    /// Where it came from.
    pub source: StatementSource,
    /// The moderator who created it.
    pub created_by: ParticipantId,
    /// When.
    pub created_at_ms: u64,
    /// Whether it takes votes.
    pub state: StatementState,
    /// When it was withdrawn.
    pub withdrawn_at_ms: Option<u64>,
    /// Standing votes by tier ([`Tier::ALL`] order).
    pub by_tier: [VoteCounts; 3],
}

impl Statement {
    /// Standing votes of every tier.
    pub fn counts(&self) -> VoteCounts {
        self.by_tier.iter().fold(VoteCounts::default(), |a, c| a.plus(*c))
    }

    /// What a viewer sees: the text and where it came from, not the counts (viewers vote
    /// before they see how others voted, as on Pol.is, so the first voters do not steer the
    /// rest).
    pub fn view(&self) -> StatementView {
        StatementView { id: self.id, text: self.text.clone(), source: self.source, state: self.state }
    }
}

/// A statement as viewers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementView {
    /// Its id.
    pub id: StatementId,
    /// Its text.
    pub text: String,
    /// Where it came from.
    pub source: StatementSource,
    /// Whether it takes votes.
    pub state: StatementState,
}

/// The statements of one activity.
#[derive(Clone, Debug, Default)]
pub struct Statements {
    items: Vec<Statement>,
    by_source: HashMap<StatementSource, StatementId>,
}

impl Statements {
    /// A statement by id.
    pub fn get(&self, id: StatementId) -> Option<&Statement> {
        self.items.get((id.0 as usize).checked_sub(1)?)
    }

    /// All statements in order of creation.
    pub fn all(&self) -> &[Statement] {
        &self.items
    }

    /// Which columns count (active statements), by column.
    pub fn active_columns(&self) -> Vec<bool> {
        self.items.iter().map(|s| s.state == StatementState::Active).collect()
    }

    /// Creates a statement.
    pub fn handle_create(
        &mut self,
        raw_text: &str,
        source: StatementSource,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<StatementId, ConsensusError> {
        let text = normalize_line(raw_text, MAX_STATEMENT_CHARS)?;
        if let Some(id) = self.by_source.get(&source) {
            return Err(ConsensusError::AlreadyPromoted(*id));
        }
        if self.items.len() >= MAX_STATEMENTS {
            return Err(ConsensusError::TooManyStatements(MAX_STATEMENTS));
        }
        let id = StatementId(self.items.len() as u32 + 1);
        if source != StatementSource::Written {
            self.by_source.insert(source, id);
        }
        self.items.push(Statement {
            id,
            text,
            source,
            created_by: by.clone(),
            created_at_ms: now_ms,
            state: StatementState::Active,
            withdrawn_at_ms: None,
            by_tier: [VoteCounts::default(); 3],
        });
        Ok(id)
    }

    /// Withdraws a statement.
    pub fn handle_withdraw(&mut self, id: StatementId, now_ms: u64) -> Result<(), ConsensusError> {
        let s = self.active_mut(id)?;
        s.state = StatementState::Withdrawn;
        s.withdrawn_at_ms = Some(now_ms);
        Ok(())
    }

    /// The statement, if it takes votes.
    pub(crate) fn active_mut(&mut self, id: StatementId) -> Result<&mut Statement, ConsensusError> {
        let s = (id.0 as usize)
            .checked_sub(1)
            .and_then(|i| self.items.get_mut(i))
            .ok_or(ConsensusError::NoSuchStatement(id))?;
        match s.state {
            StatementState::Active => Ok(s),
            StatementState::Withdrawn => Err(ConsensusError::StatementWithdrawn(id)),
        }
    }

    /// Moves one identity's vote in the counts: `old` (if any) by `old_tier`, `new` by `tier`.
    pub(crate) fn count(
        &mut self,
        id: StatementId,
        old: Option<(Tier, Vote)>,
        tier: Tier,
        new: Vote,
    ) {
        let s = &mut self.items[id.index()];
        if let Some((t, v)) = old {
            s.by_tier[t.index()].remove(v);
        }
        s.by_tier[tier.index()].add(new);
    }
}
