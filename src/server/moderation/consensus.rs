//! The consensus part of a driver: the activity's [`Consensus`] core (polls, statements,
//! opinion groups) lives beside its [`Consultation`], owned by the same driver task, so a
//! moderator's poll and a hidden comment are decided in one order and logged in one audit chain.
//!
//! ```text
//! session ─ consensus {id, topic, req} ─▶ DriverMsg::Consensus ─▶ ConsensusSide::handle
//!     moderators: poll_create / poll_launch / poll_close / statement_promote / ... → audit entry
//!     everyone:   poll_answer / statement_vote / statement_next / state
//! driver step:  ConsensusSide::step
//!     core.handle_tick (countdowns), core.poll_recompute → spawn_blocking(job.run) → results
//!     core.poll_event → fanout.broadcast(topic, views, `consensus` event)
//! ```
//!
//! # Coalescing
//! Votes never cause frames by themselves: the core emits a poll's tally at most once per
//! `tally_interval_ms` (500 ms by default; a close is sent at once), statement counts to the
//! moderators once per `counts_interval_ms`, groups once per `recompute_interval_ms`. Each such
//! event is one [`Fanout::broadcast`](crate::fanout::Fanout::broadcast): encoded once per form
//! and shared by every subscriber's queue, like a batch.
//!
//! # Durability
//! Every input that changed something (a moderator command as executed, a poll answer, a
//! statement vote) is kept in a [`Journal`] with the caller's grants and its time. The journal
//! goes into the driver's checkpoint (key `consensus` of the checkpoint JSON, beside the
//! `Consultation`'s fields, which ignore it) and the [`ConsensusSummary`](crate::consensus::ConsensusSummary) into the session
//! summary (key `consensus`), both written by the driver's persist task on the summary
//! debounce (200 ms). After a restart the driver replays the journal into a fresh core at the
//! inputs' own times, which gives the same polls, tallies, statements, votes and — the
//! recompute being deterministic for a matrix and seed — the same groups. An answer is
//! acknowledged before its checkpoint is written: a crash loses at most the last debounce's
//! votes (the comment stream's items are durable before their ack; votes are not). The
//! journal grows with the votes (about 60 bytes a vote), and the whole checkpoint is rewritten
//! on each debounce: fine for thousands of voters, not for 100k (a table of its own, appended
//! per vote, is the way there; see `docs/architecture.md`).
//!
//! # Cluster
//! In a cluster the driver runs on the activity's home node: other nodes' routers relay the
//! requests to it over NATS like commands (`relay.rs`, one request/reply), and its events are
//! published to the other nodes, which deliver them to their own connections.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, ErrorCode, Seq, ServerMsg};
use tokio::sync::{mpsc, oneshot};

use super::deliver::Outlets;
use super::relay::EventRelay;
pub use super::consensus_wire::{ConsensusAnswer, ConsensusRequest, ConsensusState};
use super::msg::{DriverMsg, WireError, wire};
use crate::consensus::{
    AnswerOutcome, CommandReply, Consensus, ConsensusConfig, ConsensusError, ConsensusEvent, GroupReport, ModeratorCommand, PollAnswer, PollId, PollSpec, PollState, PollView, ResultsVisibility, StatementId, StatementState, Vote, VoteOutcome,
};
use crate::consensus::polls::{MAX_COUNTDOWN_MS, MIN_COUNTDOWN_MS};
use crate::consult::{Audience, Consultation, Grants};

/// Comments kept (seq → text, accept time) so a moderator can promote one into a statement.
const RECENT_COMMENTS: usize = 10_000;
/// Most statements one `statement_next` returns.
const MAX_NEXT: u8 = 10;

/// One input that changed the core, as the journal keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "i", rename_all = "snake_case")]
enum Input {
    Command { at: u64, who: u32, cmd: ModeratorCommand },
    Answer { at: u64, who: u32, poll: PollId, answer: PollAnswer },
    Vote { at: u64, who: u32, statement: StatementId, vote: Vote },
}

/// Every input that changed the core, in order, to replay after a restart (module docs).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Journal {
    /// The grants of the callers (each distinct grants once).
    who: Vec<Grants>,
    inputs: Vec<Input>,
    /// Countdowns given at `poll_create`.
    #[serde(default)]
    countdowns: Vec<(PollId, u64)>,
    #[serde(skip)]
    index: HashMap<crate::consult::ParticipantId, Vec<u32>>,
}

impl Journal {
    fn who(&mut self, g: &Grants) -> u32 {
        let known = self.index.entry(g.subject.clone()).or_default();
        if let Some(i) = known.iter().find(|i| self.who[**i as usize] == *g) {
            return *i;
        }
        self.who.push(g.clone());
        let i = (self.who.len() - 1) as u32;
        known.push(i);
        i
    }
}

/// A finished (or failed) recompute coming back to the driver.
pub(super) type RecomputeResult = Option<GroupReport>;

/// The consensus core of one driver and what it needs around it.
pub(super) struct ConsensusSide {
    core: Consensus,
    /// Countdown given at `poll_create`, used by its launch.
    countdowns: HashMap<PollId, u64>,
    /// Recent committed comments: seq → (text, accept time).
    recent: BTreeMap<Seq, (String, u64)>,
    results_tx: mpsc::UnboundedSender<RecomputeResult>,
    /// Finished recomputes; the driver waits on it beside its messages.
    pub results: mpsc::UnboundedReceiver<RecomputeResult>,
    journal: Journal,
    /// The journal grew since the last checkpoint.
    changed: bool,
}

/// The seed of an activity's random choices: the configured seed mixed with the activity id
/// (FNV-1a), so that a replay of the same votes gives the same groups.
fn seed_of(activity: &ActivityId, seed: u64) -> u64 {
    activity.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn refuse(e: &ConsensusError) -> WireError {
    (e.wire_code(), e.to_string())
}

impl ConsensusSide {
    pub(super) fn new(activity: &ActivityId, mut config: ConsensusConfig) -> ConsensusSide {
        config.seed = seed_of(activity, config.seed);
        let (results_tx, results) = mpsc::unbounded_channel();
        ConsensusSide {
            core: Consensus::new(activity.clone(), config),
            countdowns: HashMap::new(),
            recent: BTreeMap::new(),
            results_tx,
            results,
            journal: Journal::default(),
            changed: false,
        }
    }

    /// Whether something changed since the last call (the driver then schedules a checkpoint).
    pub(super) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn journal(&mut self, g: &Grants, input: impl FnOnce(u32) -> Input) {
        let who = self.journal.who(g);
        self.journal.inputs.push(input(who));
        self.changed = true;
    }

    /// The session summary JSON with the consensus summary added (key `consensus`), and the
    /// checkpoint JSON with the journal added (key `consensus`).
    pub(super) fn annotate(&mut self, summary: String, checkpoint: String, now: u64) -> (String, String) {
        self.journal.countdowns = self.countdowns.iter().map(|(p, ms)| (*p, *ms)).collect();
        let add = |json: String, part: serde_json::Value| match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(serde_json::Value::Object(mut o)) => {
                o.insert("consensus".into(), part);
                serde_json::Value::Object(o).to_string()
            }
            _ => json,
        };
        let summary_part = serde_json::to_value(self.core.summary(now)).unwrap_or_default();
        let journal_part = serde_json::to_value(&self.journal).unwrap_or_default();
        (add(summary, summary_part), add(checkpoint, journal_part))
    }

    /// Continues from a checkpoint: replays its journal (if any) into a fresh core, each input
    /// at its own time. Events the replay makes are dropped (clients ask for `state`).
    pub(super) fn restore(&mut self, checkpoint: &str, now: u64) {
        let journal = match serde_json::from_str::<serde_json::Value>(checkpoint).map(|mut v| v["consensus"].take()) {
            Ok(serde_json::Value::Null) => return,
            Ok(v) => match serde_json::from_value::<Journal>(v) {
                Ok(j) => j,
                Err(e) => return tracing::error!("stored consensus journal unreadable ({e}); starting without it"),
            },
            Err(_) => return,
        };
        let mut failed = 0;
        for input in &journal.inputs {
            let (at, who) = match input {
                Input::Command { at, who, .. } | Input::Answer { at, who, .. } | Input::Vote { at, who, .. } => (*at, *who),
            };
            let Some(g) = journal.who.get(who as usize) else {
                failed += 1;
                continue;
            };
            self.core.handle_tick(at);
            let ok = match input.clone() {
                Input::Command { cmd, .. } => self.core.handle_command(g, cmd, at).is_ok(),
                Input::Answer { poll, answer, .. } => self.core.handle_poll_answer(g, poll, answer, at).is_ok(),
                Input::Vote { statement, vote, .. } => self.core.handle_statement_vote(g, statement, vote, at).is_ok(),
            };
            failed += usize::from(!ok);
        }
        self.core.handle_tick(now);
        while self.core.poll_event(now).is_some() {}
        if failed > 0 {
            tracing::error!(failed, "consensus journal: some inputs no longer apply");
        }
        self.countdowns = journal.countdowns.iter().copied().collect();
        let mut journal = journal;
        for (i, g) in journal.who.iter().enumerate() {
            journal.index.entry(g.subject.clone()).or_default().push(i as u32);
        }
        tracing::info!(inputs = journal.inputs.len(), "polls and statements continued from the checkpoint");
        self.journal = journal;
    }

    /// When the driver must step next for the consensus part.
    pub(super) fn wake(&self) -> Option<u64> {
        self.core.poll_timeout()
    }

    /// A comment is durable: it may be promoted.
    pub(super) fn note_comment(&mut self, seq: Seq, text: &str, at_ms: u64) {
        self.recent.insert(seq, (text.to_owned(), at_ms));
        while self.recent.len() > RECENT_COMMENTS {
            self.recent.pop_first();
        }
    }

    /// Runs one request. Moderator actions that change something are logged in `c`'s audit
    /// chain; votes and answers of sanctioned identities (banned, timed out) are refused.
    pub(super) fn handle(
        &mut self,
        c: &mut Consultation,
        g: &Grants,
        req: ConsensusRequest,
        now: u64,
    ) -> Result<ConsensusAnswer, WireError> {
        use ConsensusRequest as R;
        let command = |side: &mut Self, c: &mut Consultation, cmd: ModeratorCommand, audit: (&str, String, String)| {
            let reply = side.core.handle_command(g, cmd.clone(), now).map_err(|e| refuse(&e))?;
            side.journal(g, |who| Input::Command { at: now, who, cmd });
            let target = match &reply {
                CommandReply::PollCreated { poll } => poll.to_string(),
                CommandReply::StatementCreated { statement } => statement.to_string(),
                _ => audit.1,
            };
            c.handle_log_action(g, now, audit.0, &target, &audit.2);
            Ok::<_, WireError>(reply)
        };
        let countdown = |s: Option<u32>| s.map(|s| u64::from(s) * 1000);
        let answer = match req {
            R::PollCreate { spec, countdown_s } => {
                // Checked here too, so that a bad countdown is refused before the poll exists.
                if let Some(ms) = countdown(countdown_s)
                    && !(MIN_COUNTDOWN_MS..=MAX_COUNTDOWN_MS).contains(&ms)
                {
                    return Err(refuse(&ConsensusError::BadDuration { min_ms: MIN_COUNTDOWN_MS, max_ms: MAX_COUNTDOWN_MS }));
                }
                let detail = format!("{} {}", kind_name(&spec), spec.question);
                let reply = command(self, c, ModeratorCommand::CreatePoll { spec }, ("poll_created", String::new(), detail))?;
                let CommandReply::PollCreated { poll } = reply else { unreachable!("create answers poll_created") };
                if let Some(ms) = countdown(countdown_s) {
                    self.countdowns.insert(poll, ms);
                }
                self.changed = true;
                ConsensusAnswer::PollCreated { poll }
            }
            R::PollLaunch { poll, countdown_s } => {
                let countdown_ms = countdown(countdown_s).or_else(|| self.countdowns.get(&poll).copied());
                let detail = countdown_ms.map_or_else(String::new, |ms| format!("countdown={ms}ms"));
                command(self, c, ModeratorCommand::LaunchPoll { poll, countdown_ms }, ("poll_launched", poll.to_string(), detail))?;
                ConsensusAnswer::Done
            }
            R::PollClose { poll } => {
                command(self, c, ModeratorCommand::ClosePoll { poll }, ("poll_closed", poll.to_string(), String::new()))?;
                ConsensusAnswer::Done
            }
            R::PollHideWord { poll, word } => {
                let detail = format!("word={word}");
                match command(self, c, ModeratorCommand::HideWord { poll, word }, ("poll_word_hidden", poll.to_string(), detail))? {
                    CommandReply::WordHidden { known } => ConsensusAnswer::WordHidden { known },
                    _ => ConsensusAnswer::Done,
                }
            }
            R::PollAnswer { poll, answer } => {
                c.comments().check_standing(&g.subject, g.role, now).map_err(|e| wire(&e))?;
                let outcome = self.core.handle_poll_answer(g, poll, answer.clone(), now).map_err(|e| refuse(&e))?;
                if outcome != AnswerOutcome::Unchanged {
                    self.journal(g, |who| Input::Answer { at: now, who, poll, answer });
                }
                ConsensusAnswer::Answered { outcome }
            }
            R::StatementPromote { seq, question, text } => {
                if !g.role.is_moderator() {
                    return Err(refuse(&ConsensusError::Forbidden));
                }
                let cmd = match (seq, question) {
                    (Some(seq), None) => {
                        let Some((source, at_ms)) = self.recent.get(&seq).filter(|_| !c.comments().is_hidden(seq)) else {
                            return Err((ErrorCode::NoSuchComment, format!("no recent visible comment #{}", seq.0)));
                        };
                        ModeratorCommand::PromoteComment { seq, at_ms: *at_ms, text: text.unwrap_or_else(|| source.clone()) }
                    }
                    (None, Some(id)) => {
                        let Some(q) = c.questions().get(id) else {
                            return Err((ErrorCode::NoSuchQuestion, format!("no question {}", id.0)));
                        };
                        ModeratorCommand::PromoteQuestion { id, at_ms: q.submitted_at_ms, text: text.unwrap_or_else(|| q.text.clone()) }
                    }
                    _ => return Err((ErrorCode::BadFrame, "statement_promote names exactly one of seq and question".into())),
                };
                let from = match &cmd {
                    ModeratorCommand::PromoteComment { seq, .. } => format!("from=#{}", seq.0),
                    ModeratorCommand::PromoteQuestion { id, .. } => format!("from=Q{}", id.0),
                    _ => String::new(),
                };
                created(command(self, c, cmd, ("statement_promoted", String::new(), from))?)
            }
            R::StatementCreate { text } => {
                created(command(self, c, ModeratorCommand::WriteStatement { text }, ("statement_written", String::new(), String::new()))?)
            }
            R::StatementWithdraw { statement } => {
                command(self, c, ModeratorCommand::WithdrawStatement { statement }, ("statement_withdrawn", statement.to_string(), String::new()))?;
                ConsensusAnswer::Done
            }
            R::StatementFeature { statement } => {
                let target = statement.map_or_else(String::new, |s| s.to_string());
                command(self, c, ModeratorCommand::FeatureStatement { statement }, ("statement_featured", target, String::new()))?;
                ConsensusAnswer::Done
            }
            R::StatementVote { statement, vote } => {
                c.comments().check_standing(&g.subject, g.role, now).map_err(|e| wire(&e))?;
                let outcome = self.core.handle_statement_vote(g, statement, vote, now).map_err(|e| refuse(&e))?;
                if outcome != VoteOutcome::Unchanged {
                    self.journal(g, |who| Input::Vote { at: now, who, statement, vote });
                }
                ConsensusAnswer::Voted { outcome }
            }
            R::StatementNext { n } => {
                if g.activity != *c.activity() {
                    return Err(refuse(&ConsensusError::WrongActivity));
                }
                let n = n.unwrap_or(3).clamp(1, MAX_NEXT) as usize;
                let statements = self
                    .core
                    .next_statements(g, n)
                    .into_iter()
                    .filter_map(|id| self.core.statements().get(id).map(|s| s.view()))
                    .collect();
                ConsensusAnswer::Next { statements, you: self.core.you_are_here(&g.subject) }
            }
            R::CountedTiers { tiers } => {
                let detail = format!("member={} verified={} anonymous={}", tiers.member, tiers.verified, tiers.anonymous);
                command(self, c, ModeratorCommand::SetCountedTiers { tiers }, ("counted_tiers_set", String::new(), detail))?;
                ConsensusAnswer::Done
            }
            R::Recompute => {
                // Not audited: it changes nothing but when the next recompute runs.
                self.core.handle_command(g, ModeratorCommand::Recompute, now).map_err(|e| refuse(&e))?;
                ConsensusAnswer::Done
            }
            R::State => {
                if g.activity != *c.activity() {
                    return Err(refuse(&ConsensusError::WrongActivity));
                }
                ConsensusAnswer::State(Box::new(self.state(g, now)))
            }
        };
        Ok(answer)
    }

    fn state(&self, g: &Grants, now: u64) -> ConsensusState {
        let moderator = g.role.is_moderator();
        let polls: Vec<_> = self.core.polls().all().iter().filter(|p| moderator || p.state != PollState::Prepared).collect();
        let tallies = polls
            .iter()
            .filter(|p| {
                p.state != PollState::Prepared
                    && (moderator || p.state == PollState::Closed || p.spec.results != ResultsVisibility::AfterClose)
            })
            .map(|p| p.tally(p.closed_at_ms.unwrap_or(now)))
            .collect();
        let report = self.core.report();
        ConsensusState {
            polls: polls.iter().map(|p| PollView::of(p)).collect(),
            tallies,
            statements: self.core.statements().all().iter().filter(|s| s.state == StatementState::Active).map(|s| s.view()).collect(),
            featured: self.core.featured(),
            map: report.map(|r| r.summary.map()),
            console: report.filter(|_| moderator).map(|r| Box::new(r.summary.clone())),
        }
    }

    /// A recompute came back.
    pub(super) fn handle_result(&mut self, result: RecomputeResult, now: u64) {
        match result {
            Some(report) => {
                self.core.handle_groups(report, now);
                // The summary's groups changed.
                self.changed = true;
            }
            None => self.core.handle_recompute_failed(),
        }
    }

    /// Countdowns, a due recompute (started off the driver), and the events due now.
    pub(super) fn step(&mut self, now: u64, activity: &ActivityId, outlets: &Outlets, events: Option<&EventRelay>) {
        self.core.handle_tick(now);
        if let Some(job) = self.core.poll_recompute(now) {
            let tx = self.results_tx.clone();
            let started = std::time::Instant::now();
            tokio::spawn(async move {
                let report = tokio::task::spawn_blocking(move || job.run()).await;
                metrics::histogram!("shangliang_consensus_recompute_seconds").record(started.elapsed().as_secs_f64());
                if let Err(e) = &report {
                    tracing::error!("consensus recompute failed: {e}");
                }
                let _ = tx.send(report.ok());
            });
        }
        while let Some(out) = self.core.poll_event(now) {
            deliver(outlets, events, activity, out.audience, &out.event);
        }
    }
}

fn created(reply: CommandReply) -> ConsensusAnswer {
    match reply {
        CommandReply::StatementCreated { statement } => ConsensusAnswer::StatementCreated { statement },
        _ => ConsensusAnswer::Done,
    }
}

fn kind_name(spec: &PollSpec) -> &'static str {
    use crate::consensus::PollKind as K;
    match spec.kind {
        K::SingleChoice { .. } => "single_choice",
        K::MultipleChoice { .. } => "multiple_choice",
        K::Rating { .. } => "rating",
        K::OpenWord { .. } => "open_word",
    }
}

/// One `consensus` event to this node's connections of `activity` that `to` names and, in a
/// cluster, to the other nodes' (the relay publishes it on NATS; they deliver it the same way).
fn deliver(outlets: &Outlets, events: Option<&EventRelay>, activity: &ActivityId, to: Audience, event: &ConsensusEvent) {
    let event = match serde_json::to_value(event) {
        Ok(v) => v,
        Err(e) => return tracing::error!(%activity, "consensus event not encodable: {e}"),
    };
    if let Some(events) = events {
        events.send_consensus(activity, to.clone(), event.clone());
    }
    outlets.deliver_consensus(activity, to, event);
}

/// A session's `consensus` request: decoded, handed to the activity's driver, answered with
/// `consensus_reply` or `error`.
pub async fn request(driver: Option<mpsc::Sender<DriverMsg>>, grants: Grants, id: u32, req: serde_json::Value) -> ServerMsg {
    let error = |code, message: String| ServerMsg::Error { id: Some(id), code, message };
    let req: ConsensusRequest = match serde_json::from_value(req) {
        Ok(r) => r,
        Err(e) => return error(ErrorCode::BadFrame, format!("malformed consensus request: {e}")),
    };
    let Some(tx) = driver else {
        return error(ErrorCode::NoSuchTopic, "no such activity".into());
    };
    let (reply, rx) = oneshot::channel();
    if tx.send(DriverMsg::Consensus { grants, req: Box::new(req), reply }).await.is_err() {
        return error(ErrorCode::Unavailable, "the activity is not available".into());
    }
    match rx.await {
        Ok(Ok(answer)) => match serde_json::to_value(&answer) {
            Ok(reply) => ServerMsg::ConsensusReply { id, reply },
            Err(e) => error(ErrorCode::Internal, e.to_string()),
        },
        Ok(Err((code, message))) => {
            metrics::counter!("shangliang_consensus_refused_total", "code" => format!("{code:?}")).increment(1);
            error(code, message)
        }
        Err(_) => error(ErrorCode::Unavailable, "the activity is not available".into()),
    }
}
