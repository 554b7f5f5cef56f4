//! [`Consensus`]: polls, statements and opinion groups of one activity, the one object the
//! server drives. It authorises every input, keeps the counts and decides when tallies go out
//! and when the groups are recomputed; the recompute itself runs elsewhere
//! ([`RecomputeJob::run`]) on a snapshot.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Seq};

use super::error::ConsensusError;
use super::groups::{GroupConfig, GroupMap, GroupReport, GroupSummary, RecomputeJob, YouAreHere};
use super::ids::{GroupId, PollId, StatementId};
use super::matrix::{self, VoteMatrix};
use super::polls::{
    AnswerOutcome, Poll, PollAnswer, PollKind, PollSpec, PollState, PollTally, Polls,
    ResultsVisibility,
};
use super::routing::{RouteTable, mix};
use super::statements::{
    Statement, StatementSource, StatementView, Statements, Vote, VoteCounts,
};
use super::summary::{CitedStatement, ConsensusSummary, GroupsRecord, PollRecord};
use super::voter::{Participants, TierSet};
use crate::consult::{Audience, Grants, ParticipantId, QuestionId};

/// Timing and method of one activity's consensus core.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsensusConfig {
    /// Least time between two tallies of one poll.
    pub tally_interval_ms: u64,
    /// Least time between two batches of statement counts to the moderators.
    pub counts_interval_ms: u64,
    /// Least time between two recomputes of the groups (a recompute also waits for votes).
    pub recompute_interval_ms: u64,
    /// Least time between two rebuilds of the routing weights while votes come in.
    pub route_refresh_ms: u64,
    /// Seed of every random choice (k-means, start vectors, routing). The server derives it
    /// from the activity id, so a replay of the same votes gives the same groups.
    pub seed: u64,
    /// How groups are computed.
    pub groups: GroupConfig,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            tally_interval_ms: 500,
            counts_interval_ms: 1_000,
            recompute_interval_ms: 5_000,
            route_refresh_ms: 1_000,
            seed: 0,
            groups: GroupConfig::default(),
        }
    }
}

/// What a moderator asks of the core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum ModeratorCommand {
    /// Prepare a poll.
    CreatePoll {
        /// The poll.
        spec: PollSpec,
    },
    /// Launch a prepared poll.
    LaunchPoll {
        /// The poll.
        poll: PollId,
        /// Countdown until it closes by itself.
        countdown_ms: Option<u64>,
    },
    /// Close an open poll.
    ClosePoll {
        /// The poll.
        poll: PollId,
    },
    /// Hide a word of an open-word poll from its published list.
    HideWord {
        /// The poll.
        poll: PollId,
        /// The word.
        word: String,
    },
    /// Make a statement of a live comment. The server checks that the comment exists (the core
    /// knows no comments) and passes its seq and acceptance time.
    PromoteComment {
        /// The comment's sequence number in the topic.
        seq: Seq,
        /// When it was accepted.
        at_ms: u64,
        /// The statement (the comment, usually shortened).
        text: String,
    },
    /// Make a statement of a question.
    PromoteQuestion {
        /// The question.
        id: QuestionId,
        /// When it was submitted.
        at_ms: u64,
        /// The statement.
        text: String,
    },
    /// Write a statement.
    WriteStatement {
        /// The statement.
        text: String,
    },
    /// Withdraw a statement.
    WithdrawStatement {
        /// The statement.
        statement: StatementId,
    },
    /// Bring a statement to the floor: routed first to everyone who has not voted on it.
    FeatureStatement {
        /// The statement, or none to stop featuring.
        statement: Option<StatementId>,
    },
    /// Choose which tiers count toward the groups (e.g. leave anonymous identities out when
    /// a flood of fresh tokens is suspected).
    SetCountedTiers {
        /// The tiers.
        tiers: TierSet,
    },
    /// Recompute the groups as soon as possible.
    Recompute,
}

/// The answer to a moderator command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum CommandReply {
    /// Done.
    Done,
    /// The poll prepared.
    PollCreated {
        /// Its id.
        poll: PollId,
    },
    /// The statement created.
    StatementCreated {
        /// Its id.
        statement: StatementId,
    },
    /// Whether anyone had given the hidden word.
    WordHidden {
        /// Someone had.
        known: bool,
    },
}

/// A poll as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollView {
    /// Its id.
    pub id: PollId,
    /// The question.
    pub question: String,
    /// How it is answered.
    pub kind: PollKind,
    /// Where it stands.
    pub state: PollState,
    /// When it opened.
    pub opened_at_ms: Option<u64>,
    /// When its countdown ends.
    pub closes_at_ms: Option<u64>,
    /// When it closed.
    pub closed_at_ms: Option<u64>,
    /// Whether an answer may be changed.
    pub changeable: bool,
    /// When viewers see results.
    pub results: ResultsVisibility,
}

impl PollView {
    /// The view of a poll.
    pub fn of(p: &Poll) -> PollView {
        PollView {
            id: p.id,
            question: p.spec.question.clone(),
            kind: p.spec.kind.clone(),
            state: p.state,
            opened_at_ms: p.opened_at_ms,
            closes_at_ms: p.closes_at_ms,
            closed_at_ms: p.closed_at_ms,
            changeable: p.spec.changeable,
            results: p.spec.results,
        }
    }
}

/// One statement's standing votes, for the console.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementCount {
    /// The statement.
    pub statement: StatementId,
    /// All votes.
    pub counts: VoteCounts,
    /// By tier, in [`Tier::ALL`] order: a tier that votes unlike the others is worth a look.
    pub by_tier: [VoteCounts; 3],
}

/// What the core tells clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum ConsensusEvent {
    /// A poll was prepared (moderators), launched or closed (everyone).
    PollChanged {
        /// The poll.
        poll: PollView,
    },
    /// A poll's coalesced tally.
    PollTally {
        /// The tally.
        tally: PollTally,
    },
    /// A statement was created or withdrawn.
    StatementChanged {
        /// The statement.
        statement: StatementView,
    },
    /// Counts of the statements that changed since the last batch (moderators).
    StatementCounts {
        /// When.
        at_ms: u64,
        /// The statements.
        counts: Vec<StatementCount>,
    },
    /// The featured statement changed.
    Featured {
        /// The statement, if any.
        statement: Option<StatementId>,
    },
    /// The live map (everyone).
    GroupMap {
        /// The map.
        map: GroupMap,
    },
    /// The full result of a recompute (moderators): groups and what they stand for, consensus,
    /// divisive statements.
    GroupConsole {
        /// The summary.
        summary: Box<GroupSummary>,
    },
}

/// An event and who gets it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    /// Who.
    pub audience: Audience,
    /// What.
    pub event: ConsensusEvent,
}

/// What a vote on a statement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteOutcome {
    /// The identity's first vote on it.
    New,
    /// It replaced the identity's previous vote.
    Changed {
        /// The vote it replaced.
        from: Vote,
    },
    /// Same as the standing vote.
    Unchanged,
}

#[derive(Clone, Copy, Debug, Default)]
struct Schedule {
    in_flight: bool,
    changed: bool,
    forced: bool,
    last_started_ms: Option<u64>,
    revision: u64,
}

/// The consensus core of one activity.
#[derive(Clone, Debug)]
pub struct Consensus {
    activity: ActivityId,
    config: ConsensusConfig,
    participants: Participants,
    polls: Polls,
    statements: Statements,
    matrix: VoteMatrix,
    report: Option<Arc<GroupReport>>,
    schedule: Schedule,
    featured: Option<StatementId>,
    routes: RouteTable,
    routes_dirty: bool,
    routes_built_ms: Option<u64>,
    counts_dirty: Vec<bool>,
    counts_any: bool,
    counts_last_ms: Option<u64>,
    outbox: VecDeque<Outbound>,
}

impl Consensus {
    /// An empty core for `activity`.
    pub fn new(activity: ActivityId, config: ConsensusConfig) -> Self {
        Consensus {
            activity,
            polls: Polls::new(config.tally_interval_ms),
            config,
            participants: Participants::default(),
            statements: Statements::default(),
            matrix: VoteMatrix::new(),
            report: None,
            schedule: Schedule::default(),
            featured: None,
            routes: RouteTable::default(),
            routes_dirty: false,
            routes_built_ms: None,
            counts_dirty: Vec::new(),
            counts_any: false,
            counts_last_ms: None,
            outbox: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ConsensusConfig {
        &self.config
    }

    /// The polls.
    pub fn polls(&self) -> &Polls {
        &self.polls
    }

    /// The statements.
    pub fn statements(&self) -> &Statements {
        &self.statements
    }

    /// The vote matrix.
    pub fn matrix(&self) -> &VoteMatrix {
        &self.matrix
    }

    /// The latest installed groups.
    pub fn report(&self) -> Option<&Arc<GroupReport>> {
        self.report.as_ref()
    }

    /// The featured statement.
    pub fn featured(&self) -> Option<StatementId> {
        self.featured
    }

    fn check(&self, g: &Grants) -> Result<(), ConsensusError> {
        if g.activity != self.activity {
            return Err(ConsensusError::WrongActivity);
        }
        Ok(())
    }

    fn moderator(&self, g: &Grants) -> Result<(), ConsensusError> {
        self.check(g)?;
        if !g.role.is_moderator() {
            return Err(ConsensusError::Forbidden);
        }
        Ok(())
    }

    /// Runs a moderator command.
    pub fn handle_command(
        &mut self,
        g: &Grants,
        cmd: ModeratorCommand,
        now_ms: u64,
    ) -> Result<CommandReply, ConsensusError> {
        self.moderator(g)?;
        use ModeratorCommand::*;
        Ok(match cmd {
            CreatePoll { spec } => CommandReply::PollCreated { poll: self.polls.handle_create(spec, &g.subject, now_ms)? },
            LaunchPoll { poll, countdown_ms } => {
                self.polls.handle_launch(poll, countdown_ms, now_ms)?;
                CommandReply::Done
            }
            ClosePoll { poll } => {
                self.polls.handle_close(poll, now_ms)?;
                CommandReply::Done
            }
            HideWord { poll, word } => CommandReply::WordHidden { known: self.polls.handle_hide_word(poll, &word)? },
            PromoteComment { seq, at_ms, text } => {
                self.create_statement(g, &text, StatementSource::Comment { seq, at_ms }, now_ms)?
            }
            PromoteQuestion { id, at_ms, text } => {
                self.create_statement(g, &text, StatementSource::Question { id, at_ms }, now_ms)?
            }
            WriteStatement { text } => self.create_statement(g, &text, StatementSource::Written, now_ms)?,
            WithdrawStatement { statement } => {
                self.statements.handle_withdraw(statement, now_ms)?;
                if self.featured == Some(statement) {
                    self.set_featured(None);
                }
                self.statement_changed(statement);
                CommandReply::Done
            }
            FeatureStatement { statement } => {
                if let Some(s) = statement {
                    self.statements.active_mut(s)?;
                }
                self.set_featured(statement);
                CommandReply::Done
            }
            SetCountedTiers { tiers } => {
                self.config.groups.tiers = tiers;
                self.schedule.changed = true;
                self.schedule.forced = true;
                CommandReply::Done
            }
            Recompute => {
                self.schedule.changed = true;
                self.schedule.forced = true;
                CommandReply::Done
            }
        })
    }

    fn set_featured(&mut self, s: Option<StatementId>) {
        if self.featured != s {
            self.featured = s;
            self.outbox.push_back(Outbound { audience: Audience::Everyone, event: ConsensusEvent::Featured { statement: s } });
        }
    }

    fn create_statement(
        &mut self,
        g: &Grants,
        text: &str,
        source: StatementSource,
        now_ms: u64,
    ) -> Result<CommandReply, ConsensusError> {
        let id = self.statements.handle_create(text, source, &g.subject, now_ms)?;
        self.counts_dirty.push(false);
        self.statement_changed(id);
        Ok(CommandReply::StatementCreated { statement: id })
    }

    fn statement_changed(&mut self, id: StatementId) {
        let view = self.statements.get(id).expect("exists").view();
        self.outbox.push_back(Outbound { audience: Audience::Everyone, event: ConsensusEvent::StatementChanged { statement: view } });
        self.schedule.changed = true;
        self.routes_dirty = true;
        // New or withdrawn statements change what viewers should see next at once.
        self.routes = RouteTable::build(&self.statements, self.report.as_deref());
    }

    /// A viewer's answer to an open poll (one standing answer per identity).
    pub fn handle_poll_answer(
        &mut self,
        g: &Grants,
        poll: PollId,
        answer: PollAnswer,
        now_ms: u64,
    ) -> Result<AnswerOutcome, ConsensusError> {
        self.check(g)?;
        let voter = self.participants.voter(g)?;
        self.polls.handle_answer(voter, poll, answer, now_ms)
    }

    /// A vote on an active statement. One vote per identity and statement: a different vote
    /// replaces the standing one.
    pub fn handle_statement_vote(
        &mut self,
        g: &Grants,
        statement: StatementId,
        vote: Vote,
        _now_ms: u64,
    ) -> Result<VoteOutcome, ConsensusError> {
        self.check(g)?;
        self.statements.active_mut(statement)?;
        let voter = self.participants.voter(g)?;
        // An identity whose tier changed (verified during the session) moves all its votes.
        if let Some(row) = self.matrix.row(voter.row)
            && row.tier != voter.tier
            && !row.votes.is_empty()
        {
            let (old, votes) = (row.tier, row.votes.clone());
            for e in votes {
                let v = matrix::vote(e);
                self.statements.count(StatementId::from_index(matrix::col(e)), Some((old, v)), voter.tier, v);
            }
        }
        let col = statement.index();
        let old = self.matrix.set(voter.row, voter.tier, col, vote);
        if old == Some(vote) {
            return Ok(VoteOutcome::Unchanged);
        }
        self.statements.count(statement, old.map(|o| (voter.tier, o)), voter.tier, vote);
        self.counts_dirty[col] = true;
        self.counts_any = true;
        self.schedule.changed = true;
        self.routes_dirty = true;
        Ok(match old {
            None => VoteOutcome::New,
            Some(from) => VoteOutcome::Changed { from },
        })
    }

    /// Closes polls whose countdown ended and refreshes the routing weights. Call at
    /// [`Consensus::poll_timeout`] at the latest.
    pub fn handle_tick(&mut self, now_ms: u64) {
        self.polls.handle_tick(now_ms);
        if self.routes_dirty && self.routes_built_ms.is_none_or(|t| now_ms >= t + self.config.route_refresh_ms) {
            self.routes = RouteTable::build(&self.statements, self.report.as_deref());
            self.routes_dirty = false;
            self.routes_built_ms = Some(now_ms);
        }
    }

    /// The next event to send. Tallies and counts come out coalesced: at most one per poll per
    /// `tally_interval_ms`, one batch of statement counts per `counts_interval_ms`.
    pub fn poll_event(&mut self, now_ms: u64) -> Option<Outbound> {
        if let Some(o) = self.outbox.pop_front() {
            return Some(o);
        }
        if let Some(id) = self.polls.poll_changed() {
            let p = self.polls.get(id).expect("exists");
            let audience = if p.state == PollState::Prepared { Audience::Moderators } else { Audience::Everyone };
            return Some(Outbound { audience, event: ConsensusEvent::PollChanged { poll: PollView::of(p) } });
        }
        if let Some(tally) = self.polls.poll_tally(now_ms) {
            let p = self.polls.get(tally.poll).expect("exists");
            let audience = match (p.spec.results, p.state) {
                (ResultsVisibility::AfterClose, PollState::Open) => Audience::Moderators,
                _ => Audience::Everyone,
            };
            return Some(Outbound { audience, event: ConsensusEvent::PollTally { tally } });
        }
        if self.counts_any && self.counts_last_ms.is_none_or(|t| now_ms >= t + self.config.counts_interval_ms) {
            let mut counts = Vec::new();
            for (i, d) in self.counts_dirty.iter_mut().enumerate() {
                if std::mem::take(d) {
                    let s = &self.statements.all()[i];
                    counts.push(StatementCount { statement: s.id, counts: s.counts(), by_tier: s.by_tier });
                }
            }
            self.counts_any = false;
            self.counts_last_ms = Some(now_ms);
            return Some(Outbound { audience: Audience::Moderators, event: ConsensusEvent::StatementCounts { at_ms: now_ms, counts } });
        }
        None
    }

    /// When to call [`Consensus::handle_tick`], [`Consensus::poll_event`] and
    /// [`Consensus::poll_recompute`] next (ms since the Unix epoch), if anything is pending.
    pub fn poll_timeout(&self) -> Option<u64> {
        let s = &self.schedule;
        let recompute = (s.changed && !s.in_flight).then(|| {
            if s.forced { 0 } else { s.last_started_ms.map_or(0, |t| t + self.config.recompute_interval_ms) }
        });
        let counts = self.counts_any.then(|| self.counts_last_ms.map_or(0, |t| t + self.config.counts_interval_ms));
        let routes = self.routes_dirty.then(|| self.routes_built_ms.map_or(0, |t| t + self.config.route_refresh_ms));
        let outbox = (!self.outbox.is_empty()).then_some(0);
        [self.polls.poll_timeout(), recompute, counts, routes, outbox].into_iter().flatten().min()
    }

    /// A recompute to run now, if one is due: something changed since the last one, none is
    /// running, and `recompute_interval_ms` passed (or a moderator asked). The job holds a
    /// snapshot of the matrix (cheap: see [`super::matrix`]); run it off the driver
    /// (`spawn_blocking`) and hand the result to [`Consensus::handle_groups`].
    pub fn poll_recompute(&mut self, now_ms: u64) -> Option<RecomputeJob> {
        let s = &mut self.schedule;
        if s.in_flight || !s.changed {
            return None;
        }
        if !s.forced && s.last_started_ms.is_some_and(|t| now_ms < t + self.config.recompute_interval_ms) {
            return None;
        }
        s.in_flight = true;
        s.changed = false;
        s.forced = false;
        s.last_started_ms = Some(now_ms);
        s.revision += 1;
        Some(RecomputeJob {
            snapshot: self.matrix.snapshot(),
            active: self.statements.active_columns(),
            config: self.config.groups,
            seed: self.config.seed,
            revision: s.revision,
            now_ms,
            previous: self.report.clone(),
        })
    }

    /// Installs a finished recompute and announces it: the map to everyone, the full summary
    /// to moderators.
    pub fn handle_groups(&mut self, report: GroupReport, now_ms: u64) {
        if report.summary.revision == self.schedule.revision {
            self.schedule.in_flight = false;
        }
        if self.report.as_ref().is_some_and(|r| r.summary.revision >= report.summary.revision) {
            return;
        }
        let map = report.summary.map();
        let summary = Box::new(report.summary.clone());
        let report = Arc::new(report);
        self.routes = RouteTable::build(&self.statements, Some(&report));
        self.routes_built_ms = Some(now_ms);
        self.routes_dirty = false;
        self.report = Some(report);
        self.outbox.push_back(Outbound { audience: Audience::Everyone, event: ConsensusEvent::GroupMap { map } });
        self.outbox.push_back(Outbound { audience: Audience::Moderators, event: ConsensusEvent::GroupConsole { summary } });
    }

    /// A recompute did not come back (its task failed): allow the next one.
    pub fn handle_recompute_failed(&mut self) {
        self.schedule.in_flight = false;
        self.schedule.changed = true;
    }

    /// Up to `n` (at most 10) active statements for the identity of `g` to vote on next, most
    /// informative first (see [`super::routing`]); the featured statement first when the
    /// identity has not voted on it.
    pub fn next_statements(&self, g: &Grants, n: usize) -> Vec<StatementId> {
        let row = self.participants.row(&g.subject);
        let votes: &[u16] = row.and_then(|r| self.matrix.row(r)).map_or(&[], |r| r.votes.as_slice());
        let group = row.and_then(|r| self.report.as_ref()?.group_index(r));
        let who = match row {
            Some(r) => r as u64,
            // Not seen yet: a stable hash of the subject (FNV-1a).
            None => g.subject.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) | 1 << 63,
        };
        let seed = mix(self.config.seed ^ mix(who ^ mix(votes.len() as u64)));
        self.routes
            .pick(votes, group, self.featured.map(|s| s.index()), n, seed)
            .into_iter()
            .map(StatementId::from_index)
            .collect()
    }

    /// Where `who` stands on the latest map.
    pub fn you_are_here(&self, who: &ParticipantId) -> Option<YouAreHere> {
        self.report.as_ref()?.you_are_here(self.participants.row(who)?)
    }

    /// The identity's standing vote on a statement.
    pub fn vote_of(&self, who: &ParticipantId, statement: StatementId) -> Option<Vote> {
        self.matrix.get(self.participants.row(who)?, statement.index())
    }

    /// Every counted identity and its group on the latest map.
    pub fn memberships(&self) -> Vec<(ParticipantId, GroupId)> {
        self.report.as_ref().map_or_else(Vec::new, |r| {
            r.memberships().map(|(row, g)| (self.participants.id(row).clone(), g)).collect()
        })
    }

    /// Identities seen (voted or answered).
    pub fn participants(&self) -> usize {
        self.participants.len()
    }

    /// What the minutes print: every launched poll with its final (or current) tally, and the
    /// latest groups with the consensus and divisive statements, each citing its source.
    pub fn summary(&self, now_ms: u64) -> ConsensusSummary {
        let polls = self
            .polls
            .all()
            .iter()
            .filter(|p| p.state != PollState::Prepared)
            .map(|p| PollRecord {
                poll: p.id,
                question: p.spec.question.clone(),
                kind: p.spec.kind.clone(),
                opened_at_ms: p.opened_at_ms.unwrap_or(p.created_at_ms),
                closed_at_ms: p.closed_at_ms,
                close_reason: p.close_reason,
                tally: p.tally(p.closed_at_ms.unwrap_or(now_ms)),
            })
            .collect();
        let cite = |s: &Statement, score: f64, r: &GroupReport| CitedStatement {
            statement: s.id,
            text: s.text.clone(),
            source: s.source,
            created_at_ms: s.created_at_ms,
            score,
            counts: s.counts(),
            groups: r.shares(s.id),
        };
        let groups = self.report.as_ref().map(|r| {
            let st = |id: StatementId| self.statements.get(id).expect("statements are never removed");
            GroupsRecord {
                computed_at_ms: r.summary.computed_at_ms,
                counted: r.summary.counted,
                groups: r.summary.groups.iter().map(|g| (g.id, g.size)).collect(),
                consensus: r.summary.consensus.iter().map(|b| cite(st(b.statement), b.score, r)).collect(),
                consensus_against: r.summary.consensus_against.iter().map(|b| cite(st(b.statement), b.score, r)).collect(),
                divisive: r.summary.divisive.iter().map(|d| cite(st(d.statement), d.spread, r)).collect(),
            }
        });
        ConsensusSummary {
            polls,
            statements: self.statements.all().len() as u32,
            votes: self.matrix.votes(),
            participants: self.participants.len() as u32,
            groups,
        }
    }
}
