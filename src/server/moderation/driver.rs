//! The moderation driver: one task per activity owns its [`Consultation`] (STYLE habit 3) —
//! the only place that decides on the activity's comments and moderation.
//!
//! Sessions never touch the state machine; they send a [`DriverMsg`] with the caller's
//! [`Grants`] (built from the verified token) and where the answer goes. The driver runs every
//! input, ticks at [`Consultation::poll_timeout`], and after each step:
//!
//! ```text
//! loop {
//!     select! { msg = rx.recv() => {}, _ = sleep(until the next deadline) => {} }
//!     apply what the record has made durable since the last step (`Done`s, see below)
//!     handle(msg):
//!         Post    => c.handle_post_comment → refused: answer now
//!                                          → accepted/held: record.append(item, done)  // no wait
//!         Command => c.handle_command; an approval copy or a hide item: record.append(item, done)
//!         ..
//!     c.handle_tick(now)
//!     while let Some(Addressed { audience, event }) = c.poll_event() {
//!         Everyone | Moderators | NonModerators => fanout.broadcast(topic, views, event)
//!         Participant(id)                       => inboxes.send_to(activity, id, event)
//!         (question events to many are coalesced per question for ~100 ms, latest wins)
//!     }
//!     new audit entries        -> persist task -> record.append_audit (hash chain, in order)
//!     changed (debounced)      -> persist task -> record.put_summary(summary JSON, audit head)
//!     may_speak changed for a present participant -> FloorHook::set_forwarding
//! }
//! ```
//!
//! # Appends are pipelined, and ordered with what they cause
//! The driver never waits for the record. An append's `done` runs on the record's writer right
//! after the commit and does two things, in this order: it pushes a [`Done`] onto the driver's
//! completion queue (the comment's seq, for the review queue and hides), then it answers the
//! poster (`ack`) or the moderator (`reply`). The driver applies the queue at the start of
//! every step, *after* taking that step's message. So anything an ack or a reply can cause — a
//! moderator who approves the comment the moment its poster was acknowledged, on any node —
//! reaches the driver after the `Done` that preceded the ack, and finds the comment known.
//! The completion queue is a second channel, so FIFO of the message channel alone would not
//! give this; applying it after each receive does (the receive happens after the message was
//! sent, which happened after the ack, which happened after the `Done` was queued).
//!
//! A driver holds what it needs ([`DriverDeps`]) and nothing that points back at whoever
//! started it; it ends when every sender of its channel is gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shangliang_signaling::consult::{AUDIENCE_INTERVAL_MS, AudienceCounts};
use shangliang_signaling::{ActivityId, ErrorCode, Item, ItemBody, ParticipantId, Role, Seq};
use tokio::sync::{mpsc, oneshot};

use super::deliver::Outlets;
use super::floor::FloorHook;
use super::msg::{Acked, DriverMsg, OrganiserNote, PostReply, SessionSource, WireError, wire};
use super::consensus::ConsensusSide;
use super::persist::{Persist, Persister};
use super::relay::EventRelay;
use crate::bus::Cluster;
use crate::consult::{
    Addressed, Audience, Command, CommentDecision, ConsultEvent, Consultation, ConsultationConfig,
    Grants, QuestionId, Reply,
};
use crate::consult::votes::NetBlock;
use crate::record::{Fence, Record, RecordError};
use crate::server::inbox::comment_hop;

/// How long vote-driven question updates to many connections are held back and merged.
const QUESTION_COALESCE: Duration = Duration::from_millis(100);
/// How long after a change the session summary is written to the record.
const SUMMARY_DEBOUNCE: Duration = Duration::from_millis(200);

/// Everything a driver needs, shared by the drivers of a node.
#[derive(Clone)]
pub(super) struct DriverDeps {
    /// Where its topic items are appended and its audit log and summary stored.
    pub record: Arc<dyn Record>,
    /// This node's connections.
    pub outlets: Outlets,
    /// Cluster mode: who is home.
    pub cluster: Option<Arc<Cluster>>,
    /// Cluster mode: events also go to the other nodes' connections.
    pub events: Option<EventRelay>,
    /// Where the floor reaches the media plane (replaceable at run time, read on floor changes).
    pub hook: Arc<RwLock<Arc<dyn FloorHook>>>,
    /// Comments one identity may post per minute (moderators are exempt).
    pub comments_per_minute: u32,
    /// Timing and method of the consensus part (read when a driver starts).
    pub consensus: Arc<RwLock<crate::consensus::ConsensusConfig>>,
    /// Where a starting driver reads the organisers' settings of its activity (issue 14).
    pub sessions: Arc<RwLock<Option<Arc<dyn SessionSource>>>>,
    /// The limits on anonymous question votes (read when a driver starts).
    pub votes: Arc<RwLock<crate::consult::votes::VoteRules>>,
}

/// What the record made durable, for the driver (see the module docs).
enum Done {
    /// A comment the driver accepted or held is stored under `seq`.
    Comment {
        seq: Seq,
        grants: Grants,
        text: String,
        held: bool,
    },
    /// An item a moderation caused (approval copy, hide) is stored under `seq`.
    Item(Seq),
    /// An append failed (nothing stored): only its answer carries news.
    Failed,
}

/// How a driver ended.
// Made once per driver's life, so the size of its variants does not matter (`Stale` carries
// the message a post's trace made larger).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Ended {
    /// It did not start: another node holds the activity's fence (`held_elsewhere`), or the
    /// fence could not be asked for (the database is unreachable).
    FenceRefused {
        /// Another node holds it (rather than: the record could not be reached).
        held_elsewhere: bool,
    },
    /// Its senders are gone (the hub stops, or the activity's home moved).
    Stopped,
    /// It may no longer run the activity (its fence was lost, or someone else wrote the stored
    /// record): its state may be stale. What it had not handled yet — the message that found
    /// out and everything queued behind it — is handed back, for a driver started afresh from
    /// the stored record.
    Stale {
        /// The message it was about to handle.
        pending: Option<DriverMsg>,
        /// Its channel, with whatever is still queued.
        rx: mpsc::Receiver<DriverMsg>,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts the driver of `activity` (its record's title, its topic's `head`) on `control`; it
/// runs until every sender of the returned channel is gone. `on_end` is told how it ended.
pub(super) fn spawn(
    deps: DriverDeps,
    control: &tokio::runtime::Handle,
    activity: ActivityId,
    title: String,
    head: Seq,
    queue: usize,
    on_end: impl FnOnce(Ended) + Send + 'static,
) -> mpsc::Sender<DriverMsg> {
    let (tx, rx) = mpsc::channel(queue);
    let config = ConsultationConfig {
        title,
        ..ConsultationConfig::default()
    };
    let mut c = Consultation::new(activity.clone(), config, now_ms());
    // A livestream's public sees only who is on air (the stage); the kind does not change.
    let livestream = deps.record.activity(&activity).ok().flatten().is_some_and(|a| a.kind == crate::record::ActivityKind::Livestream);
    c.set_livestream(livestream);
    c.handle_topic_seq(head);
    c.set_comment_rate(deps.comments_per_minute);
    c.set_vote_rules(*deps.votes.read().unwrap_or_else(|e| e.into_inner()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let consensus_config = *deps.consensus.read().unwrap_or_else(|e| e.into_inner());
    let driver = ModerationDriver {
        cons: ConsensusSide::new(&activity, consensus_config),
        persist: Persister::spawn(control, deps.record.clone(), activity.clone()),
        activity,
        c,
        deps,
        done_tx,
        done_rx,
        in_flight: 0,
        pending_questions: BTreeMap::new(),
        coalesce_due: None,
        audience_sent: AudienceCounts::default(),
        audience_due: None,
        summary_due: None,
        audited: 0,
        present: HashMap::new(),
        speaking: HashMap::new(),
        public: HashMap::new(),
        livestream,
        fence: None,
        gate: Default::default(),
    };
    control.spawn(async move { on_end(driver.run(rx).await) });
    tx
}

/// The owner of one activity's [`Consultation`].
struct ModerationDriver {
    activity: ActivityId,
    c: Consultation,
    deps: DriverDeps,
    /// The completion queue: what the record made durable (filled on its writer).
    done_tx: std::sync::mpsc::Sender<Done>,
    done_rx: std::sync::mpsc::Receiver<Done>,
    /// Appends not answered yet.
    in_flight: usize,
    persist: Persister,
    /// Question events to many connections waiting to be merged: (audience, id) → latest.
    pending_questions: BTreeMap<(u8, QuestionId), Addressed>,
    coalesce_due: Option<u64>,
    /// The live counts last pushed, and when the next may go (set by a join or leave: the
    /// counts go out at most once per `AUDIENCE_INTERVAL_MS`, only when changed).
    audience_sent: AudienceCounts,
    audience_due: Option<u64>,
    summary_due: Option<u64>,
    /// Audit entries handed to the persist task (which writes them in order, retrying).
    audited: usize,
    /// Connections per present member, guest or moderator.
    present: HashMap<ParticipantId, u32>,
    /// What the floor hook was last told.
    speaking: HashMap<ParticipantId, bool>,
    /// What the floor hook was last told of the stage (`set_public`; livestreams only).
    public: HashMap<ParticipantId, bool>,
    /// The activity is a livestream (it has a stage).
    livestream: bool,
    /// The proof that no other node runs this activity's moderation (see [`Record::fence`]).
    fence: Option<Fence>,
    /// Comments and commands only while the activity is live (issue 14).
    gate: crate::organise::gate::SessionGate,
    /// Polls, statements and opinion groups of the activity.
    cons: ConsensusSide,
}

impl ModerationDriver {
    async fn run(mut self, mut rx: mpsc::Receiver<DriverMsg>) -> Ended {
        let mut stale = None;
        match self.deps.record.fence(&self.activity).await {
            Ok(Some(f)) => self.fence = Some(f),
            refused => {
                let held_elsewhere = refused.is_ok();
                match refused {
                    Ok(_) => tracing::warn!(activity = %self.activity, "another node still runs this activity's moderation; not starting"),
                    Err(e) => tracing::warn!(activity = %self.activity, "cannot take the moderation fence: {e}"),
                }
                metrics::counter!("shangliang_consult_fence_refused_total").increment(1);
                // Dropping `rx` answers everything queued with "unavailable".
                return Ended::FenceRefused { held_elsewhere };
            }
        }
        // Continue from the last checkpoint: after a restart of this hub (its clients reconnect
        // and join again), or when this node became the activity's home (every node's router
        // announces its connections again).
        match self.deps.record.checkpoint(&self.activity).await {
            Ok(Some(state)) => {
                match Consultation::restore(&state, now_ms()) {
                    Ok(mut c) => {
                        c.handle_topic_seq(self.deps.record.head(&self.activity).unwrap_or_default());
                        c.set_comment_rate(self.deps.comments_per_minute);
                        c.set_livestream(self.livestream);
                        c.set_vote_rules(*self.deps.votes.read().unwrap_or_else(|e| e.into_inner()));
                        self.c = c;
                        tracing::info!(activity = %self.activity, "moderation state continued from its checkpoint");
                        self.cons.restore(&state, now_ms());
                        // The programme shows the pinned camera again (the pin is part of the state).
                        if let Some(pin) = self.c.programme_pin() {
                            let hook = self.deps.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
                            hook.set_pin(&self.activity, Some(pin));
                        }
                    }
                    Err(e) => tracing::error!(
                        activity = %self.activity,
                        "stored moderation checkpoint unreadable ({e}); starting from a fresh state"
                    ),
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(activity = %self.activity, "cannot read the moderation checkpoint: {e}"),
        }
        // Chain new moderator actions onto the log stored before a restart.
        match self.deps.record.audit_log(&self.activity).await {
            Ok(entries) if !entries.is_empty() => {
                match self.c.handle_restore_audit(entries) {
                    Ok(()) => self.audited = self.c.audit().entries().len(),
                    Err(b) => tracing::error!(
                        activity = %self.activity,
                        "stored audit log broken at idx {}; new entries will not be stored (run verify-record)",
                        b.index + 1
                    ),
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(activity = %self.activity, "cannot read the stored audit log: {e}")
            }
        }
        self.apply_organisers_settings();
        loop {
            let now = now_ms();
            let wake = [self.c.poll_timeout(), self.coalesce_due, self.audience_due, self.summary_due, self.cons.wake()]
                .into_iter()
                .flatten()
                .min();
            let sleep = wake.map_or(Duration::from_secs(3600), |w| {
                Duration::from_millis(w.saturating_sub(now))
            });
            let msg = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => Some(m),
                    None => break,
                },
                Some(groups) = self.cons.results.recv() => {
                    self.cons.handle_result(groups, now_ms());
                    None
                }
                _ = tokio::time::sleep(sleep) => None,
            };
            if self.fence.is_some_and(|f| !self.deps.record.fence_held(f)) {
                // The lock connection was lost: another node may take over now.
                tracing::warn!(activity = %self.activity, "moderation fence lost; driver stops");
                metrics::counter!("shangliang_consult_fence_lost_total").increment(1);
                self.fence = None;
                stale = Some(msg);
                break;
            }
            if self.persist.is_broken() {
                // The stored record was written by someone else: start again from it.
                stale = Some(msg);
                break;
            }
            // After the receive, before the message: see the module docs.
            self.apply_done(now_ms());
            if let Some(m) = msg {
                self.handle_msg(m);
            }
            let now = now_ms();
            self.c.handle_tick(now);
            self.cons.step(now, &self.activity, &self.deps.outlets, self.deps.events.as_ref());
            if self.cons.take_changed() {
                self.summary_due.get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            }
            self.drain(now);
        }
        // The hub is going away (or, in a cluster, the activity's home moved and the new home
        // writes the record from now on): write the final record.
        self.apply_done(now_ms());
        self.flush_questions();
        let still_home = self.deps.cluster.as_ref().is_none_or(|c| c.home_elsewhere(&self.activity).is_none());
        if self.fence.is_some() && still_home {
            let persist = self.summary_persist(now_ms());
            self.persist.send(persist);
        }
        if let Some(f) = self.fence.take() {
            // Released only after everything this driver persisted is written: the persist
            // task works in order.
            self.persist.send(Persist::Release(f));
        }
        match stale {
            Some(pending) => Ended::Stale { pending, rx },
            None => Ended::Stopped,
        }
    }

    fn handle_msg(&mut self, msg: DriverMsg) {
        let now = now_ms();
        match msg {
            DriverMsg::Join(g) => {
                if self.c.handle_join(&g, now).is_ok()
                    && !matches!(g.role, Role::Viewer)
                {
                    *self.present.entry(g.subject).or_default() += 1;
                }
                self.audience_due.get_or_insert(now + AUDIENCE_INTERVAL_MS);
                self.summary_due
                    .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            }
            DriverMsg::Leave(who) => {
                self.c.handle_leave(&who, now);
                self.audience_due.get_or_insert(now + AUDIENCE_INTERVAL_MS);
                if let Some(n) = self.present.get_mut(&who) {
                    *n -= 1;
                    if *n == 0 {
                        self.present.remove(&who);
                        self.speaking.remove(&who);
                        self.public.remove(&who);
                    }
                }
                self.summary_due
                    .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            }
            DriverMsg::State { grants, reply } => {
                let _ = reply.send(self.c.snapshot(&grants).map_err(|e| wire(&e)));
            }
            DriverMsg::Banned { who, reply } => {
                let banned = self.c.comments().sanctions().any(|(p, s)| *p == who && s.until_ms.is_none());
                let _ = reply.send(Ok(banned));
            }
            DriverMsg::Post {
                grants,
                topic,
                text,
                reply,
            } => {
                let taken = Instant::now();
                comment_hop("to_driver", taken.saturating_duration_since(reply.read_at()));
                let span = reply.span().clone();
                let _in = span.enter();
                match self.gate.refusal(self.deps.record.as_ref(), &self.activity, taken) {
                    Some(e) => reply.send(Err(e)),
                    None => self.handle_post(grants, &topic, &text, reply, now),
                }
                comment_hop("decide", taken.elapsed());
            }
            DriverMsg::Command { grants, from, cmd, reply } => {
                match self.gate.refusal(self.deps.record.as_ref(), &self.activity, Instant::now()) {
                    Some(e) => drop(reply.send(Err(e))),
                    None => self.handle_command(grants, from, cmd, reply, now),
                }
            }
            DriverMsg::Organise { grants, settings, notes, reply } => {
                // The lifecycle may have changed too (closed): read it again for the next post.
                self.gate.invalidate();
                let _ = reply.send(self.handle_organise(&grants, &settings, notes, now));
            }
            DriverMsg::Consensus { grants, req, reply } => {
                // Answers, votes and the chair's poll work only while live, like comments and
                // commands; reading the state is not gated.
                let refused = if req.is_read() {
                    None
                } else {
                    self.gate.refusal(self.deps.record.as_ref(), &self.activity, Instant::now())
                };
                let _ = reply.send(match refused {
                    Some(e) => Err(e),
                    None => self.cons.handle(&mut self.c, &grants, *req, now),
                });
            }
            DriverMsg::Shutdown { done } => {
                self.apply_done(now);
                self.c.handle_shutdown(now);
                self.drain(now);
                self.flush_questions();
                if self.fence.is_some() {
                    let persist = self.summary_persist(now);
                    self.persist.send(persist);
                }
                self.persist.send(Persist::Flush(done));
            }
        }
    }

    /// What the organisers set, as this driver starts (fresh or from a checkpoint): the state
    /// machine catches up in one step, and if that changed anything one audit entry
    /// (`session_configured`, by `organisers`) says which fields.
    fn apply_organisers_settings(&mut self) {
        let source = self.deps.sessions.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(settings) = source.and_then(|s| s.session_settings(&self.activity)) else { return };
        let g = Grants {
            subject: crate::consult::ParticipantId::new("organisers"),
            name: "organisers".into(),
            role: Role::Moderator,
            org: None,
            verified: true,
            activity: self.activity.clone(),
        };
        let now = now_ms();
        match self.c.handle_session_settings(&g, &settings, now) {
            Ok(changed) if !changed.is_empty() => {
                self.c.handle_log_action(&g, now, "session_configured", "", &changed.join(","));
                self.summary_due.get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(activity = %self.activity, "the organisers' settings do not apply: {e}"),
        }
    }

    /// An organisers' update: their notes go into the hash chain (under their subject), then
    /// the state machine is reconciled with the desired state; the events reach every client
    /// in this step's drain.
    fn handle_organise(
        &mut self,
        g: &Grants,
        settings: &crate::consult::SessionSettings,
        notes: Vec<OrganiserNote>,
        now: u64,
    ) -> Result<Vec<String>, WireError> {
        let changed = self.c.handle_session_settings(g, settings, now).map_err(|e| wire(&e))?;
        for n in notes {
            self.c.handle_log_note(g, now, &n.action, &n.target, &n.detail, n.reason.as_deref());
        }
        self.summary_due.get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
        Ok(changed.into_iter().map(str::to_owned).collect())
    }

    fn handle_command(
        &mut self,
        grants: Grants,
        from: Option<NetBlock>,
        cmd: Command,
        reply: oneshot::Sender<Result<Reply, WireError>>,
        now: u64,
    ) {
        if matches!(cmd, Command::ApproveAllHeld) {
            return self.handle_approve_all(grants, reply, now);
        }
        let hide = match &cmd {
            Command::HideComment { seq, .. } | Command::RejectComment { seq, .. } => Some(*seq),
            _ => None,
        };
        let pin = match &cmd {
            Command::PinProgramme { participant } => Some(participant.clone()),
            _ => None,
        };
        let ban = match &cmd {
            Command::Ban { who, .. } => Some(who.clone()),
            _ => None,
        };
        let pin_before = self.c.programme_pin().cloned();
        let result = self.c.handle_command_from(&grants, from, cmd, now);
        if result.is_ok() && pin.is_none() && self.c.programme_pin() != pin_before.as_ref() {
            // 下台 of the pinned participant unpinned them: the programme follows.
            let hook = self.deps.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
            hook.set_pin(&self.activity, None);
        }
        // The programme's pin, once authorised and audited.
        if let (Ok(_), Some(pin)) = (&result, pin) {
            let hook = self.deps.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
            hook.set_pin(&self.activity, pin.as_ref());
        }
        if let (Ok(_), Some(who)) = (&result, ban) {
            // A banned participant's media ends now (new media is refused on its own check).
            let hook = self.deps.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
            hook.banned(&self.activity, &who);
        }
        self.summary_due
            .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
        // A moderation whose effect is an item of the topic answers once that item is durable.
        let item = match (&result, hide) {
            (Ok(Reply::Approved { comment }), _) => Some(ItemBody::Comment {
                author: comment.author.clone(),
                text: comment.text.clone(),
                approves: Some(comment.seq),
            }),
            (Ok(_), Some(target)) => Some(ItemBody::Hide { target }),
            _ => None,
        };
        let Some(body) = item else {
            let _ = reply.send(result.map_err(|e| wire(&e)));
            return;
        };
        let (done, activity) = (self.done_tx.clone(), self.activity.clone());
        self.append(
            body,
            true,
            Box::new(move |r: Result<Item, RecordError>| match r {
                Ok(item) => {
                    let _ = done.send(Done::Item(item.seq));
                    let _ = reply.send(result.map_err(|e| wire(&e)));
                }
                Err(e) => {
                    let _ = done.send(Done::Failed);
                    tracing::error!(%activity, "moderation item not stored: {e}");
                    let _ = reply.send(Err((
                        ErrorCode::Unavailable,
                        "the moderation was logged but its item could not be stored; retry".into(),
                    )));
                }
            }),
        );
    }

    /// `approve_all_held`: a public copy of every held comment, answered once all are durable
    /// (or `unavailable` if one could not be stored).
    fn handle_approve_all(&mut self, grants: Grants, reply: oneshot::Sender<Result<Reply, WireError>>, now: u64) {
        let approved = match self.c.handle_approve_all_held(&grants, now) {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(Err(wire(&e)));
                return;
            }
        };
        self.summary_due.get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
        let count = approved.len();
        if count == 0 {
            let _ = reply.send(Ok(Reply::ApprovedAll { count }));
            return;
        }
        // (comments still to be stored, whether one failed, the reply)
        type Waiting = (usize, bool, Option<oneshot::Sender<Result<Reply, WireError>>>);
        let waiting: Arc<std::sync::Mutex<Waiting>> = Arc::new(std::sync::Mutex::new((count, false, Some(reply))));
        for c in approved {
            let body = ItemBody::Comment { author: c.author, text: c.text, approves: Some(c.seq) };
            let (done, activity, waiting) = (self.done_tx.clone(), self.activity.clone(), Arc::clone(&waiting));
            self.append(
                body,
                true,
                Box::new(move |r: Result<Item, RecordError>| {
                    let mut w = waiting.lock().unwrap_or_else(|e| e.into_inner());
                    match r {
                        Ok(item) => {
                            let _ = done.send(Done::Item(item.seq));
                        }
                        Err(e) => {
                            let _ = done.send(Done::Failed);
                            tracing::error!(%activity, "approved copy not stored: {e}");
                            w.1 = true;
                        }
                    }
                    w.0 -= 1;
                    if w.0 == 0 && let Some(reply) = w.2.take() {
                        let _ = reply.send(if w.1 {
                            Err((ErrorCode::Unavailable, "the approval was logged but not every copy could be stored; retry".into()))
                        } else {
                            Ok(Reply::ApprovedAll { count })
                        });
                    }
                }),
            );
        }
    }

    /// A posted comment: decided here, appended without waiting, answered once durable.
    fn handle_post(&mut self, grants: Grants, topic: &ActivityId, text: &str, reply: PostReply, now: u64) {
        let (text, held) = match self.c.handle_post_comment(&grants, topic, text, now) {
            CommentDecision::Refuse(e) => {
                tracing::debug!(code = ?e.wire_code(), "refused");
                return reply.send(Err(wire(&e)));
            }
            CommentDecision::Accept { public, text } => (text, !public),
            CommentDecision::Hold { text, .. } => (text, true),
        };
        self.summary_due
            .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
        let body = ItemBody::Comment {
            author: grants.author(),
            text: text.clone(),
            approves: None,
        };
        tracing::debug!(held, "accepted; append queued");
        let (done, activity, started) = (self.done_tx.clone(), self.activity.clone(), Instant::now());
        self.append(
            body,
            !held,
            Box::new(move |r: Result<Item, RecordError>| match r {
                Ok(item) => {
                    metrics::histogram!("shangliang_record_append_seconds").record(started.elapsed().as_secs_f64());
                    comment_hop("durable", started.elapsed());
                    reply.span().in_scope(|| tracing::debug!(seq = item.seq.0, held, "durable"));
                    // The driver's notice first, then the ack (see the module docs).
                    let _ = done.send(Done::Comment { seq: item.seq, grants, text, held });
                    reply.send(Ok(Acked { seq: item.seq, held }));
                }
                Err(e) => {
                    let _ = done.send(Done::Failed);
                    tracing::warn!(%activity, "comment not stored: {e}");
                    reply.send(Err((
                        ErrorCode::Unavailable,
                        "the comment could not be stored; it was not accepted".into(),
                    )));
                }
            }),
        );
    }

    fn append(&mut self, body: ItemBody, public: bool, done: crate::record::AppendDone) {
        self.in_flight += 1;
        self.deps.record.append(&self.activity, body, public, done);
    }

    /// Applies what the record made durable since the last step.
    fn apply_done(&mut self, now: u64) {
        while let Ok(d) = self.done_rx.try_recv() {
            self.in_flight = self.in_flight.saturating_sub(1);
            match d {
                Done::Comment { seq, grants, text, held } => {
                    if !held {
                        self.cons.note_comment(seq, &text, now);
                    }
                    self.c.handle_comment_committed(seq, &grants, text, held, now);
                    self.summary_due
                        .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
                }
                Done::Item(seq) => self.c.handle_topic_seq(seq),
                Done::Failed => {}
            }
        }
    }

    fn drain(&mut self, now: u64) {
        let mut floor_changed = false;
        while let Some(out) = self.c.poll_event() {
            floor_changed |= matches!(
                out.event,
                ConsultEvent::Floor(_) | ConsultEvent::Presence { .. } | ConsultEvent::Stage { .. }
            );
            let key = match (&out.event, &out.audience) {
                (ConsultEvent::Question { question }, Audience::Everyone) => Some((0, question.id)),
                (ConsultEvent::Question { question }, Audience::Moderators) => {
                    Some((1, question.id))
                }
                (ConsultEvent::Question { question }, Audience::NonModerators) => {
                    Some((2, question.id))
                }
                _ => None,
            };
            match key {
                Some(k) => {
                    self.pending_questions.insert(k, out);
                    self.coalesce_due
                        .get_or_insert(now + QUESTION_COALESCE.as_millis() as u64);
                }
                None => self.deliver(out),
            }
        }
        if self.coalesce_due.is_some_and(|t| t <= now) {
            self.flush_questions();
        }
        if self.audience_due.is_some_and(|t| t <= now) {
            self.audience_due = None;
            let counts = self.c.audience();
            if counts != self.audience_sent {
                self.audience_sent = counts;
                self.deliver(Addressed { audience: Audience::Everyone, event: ConsultEvent::Audience { counts } });
            }
        }
        let entries = self.c.audit().entries();
        for e in &entries[self.audited.min(entries.len())..] {
            self.persist.send(Persist::Audit(e.clone()));
        }
        self.audited = entries.len();
        if self.summary_due.is_some_and(|t| t <= now) {
            // Appends still in flight are not in this checkpoint: look again shortly (their
            // `Done`s are applied at the start of every step, and no message may come).
            self.summary_due = (self.in_flight > 0).then_some(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            let persist = self.summary_persist(now);
            self.persist.send(persist);
        }
        if floor_changed || self.speaking.len() != self.present.len() || (self.livestream && self.public.len() != self.present.len()) {
            self.update_forwarding();
        }
    }

    /// The summary and checkpoint to write: the moderation's, with the consensus part added.
    fn summary_persist(&mut self, now: u64) -> Persist {
        let (json, state) = self.cons.annotate(self.c.summary(now).to_json(), self.c.checkpoint(), now);
        Persist::Summary { json, head: self.c.audit().head(), state }
    }

    fn flush_questions(&mut self) {
        self.coalesce_due = None;
        for (_, out) in std::mem::take(&mut self.pending_questions) {
            self.deliver(out);
        }
    }

    fn update_forwarding(&mut self) {
        let hook = self.deps.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
        let open = self.c.floor().mode() == shangliang_signaling::consult::FloorMode::Open;
        hook.set_turn(&self.activity, self.c.floor().holder(), open);
        for who in self.present.keys() {
            let may = self.c.may_speak(who);
            if self.speaking.insert(who.clone(), may) != Some(may) {
                hook.set_forwarding(&self.activity, who, may, true);
            }
            if self.livestream {
                let on_air = self.c.is_on_air(who);
                if self.public.insert(who.clone(), on_air) != Some(on_air) {
                    hook.set_public(&self.activity, who, on_air);
                }
            }
        }
    }

    fn deliver(&self, out: Addressed) {
        if let Some(events) = &self.deps.events {
            events.send(&self.activity, out.audience.clone(), out.event.clone());
        }
        self.deps.outlets.deliver(&self.activity, out.audience, out.event);
    }
}

