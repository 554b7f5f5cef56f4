//! The moderation driver: one task per activity owns its [`Consultation`] (STYLE habit 3).
//!
//! Sessions never touch the state machine; they send a [`DriverMsg`] with the caller's
//! [`Grants`] (built from the verified token) and, where an answer is needed, a oneshot. The
//! driver runs every input, ticks at [`Consultation::poll_timeout`], and after each step:
//!
//! ```text
//! loop {
//!     select! { msg = rx.recv() => handle(msg), _ = sleep(until the next deadline) => {} }
//!     c.handle_tick(now)
//!     while let Some(Outbound { audience, event }) = c.poll_event() {
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
//! Durable side effects of moderation (the public copy of an approved comment, the `hide`
//! item) are appended to the record by a spawned task, and the command's reply is sent only
//! once they are durable, so a moderator's `reply` means viewers will see the effect.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use shangliang_signaling::{ActivityId, ErrorCode, ItemBody, Seq, ServerMsg};
use tokio::sync::{mpsc, oneshot};

use super::Hub;
use super::auth::Claims;
use super::consult_relay::EventRelay;
use crate::bus::Cluster;
use crate::consult::{
    Audience, AuditEntry, Command, CommentDecision, ConsultError, ConsultEvent, Consultation,
    ConsultationConfig, Grants, Outbound, ParticipantId, QuestionId, Reply, Snapshot,
};
use crate::fanout::Views;
use crate::record::postgres::PgRecord;
use crate::record::sqlite::{RecordOptions, SqliteRecord};
use crate::record::{Fence, Record};

/// How long vote-driven question updates to many connections are held back and merged.
const QUESTION_COALESCE: Duration = Duration::from_millis(100);
/// How long after a change the session summary is written to the record.
const SUMMARY_DEBOUNCE: Duration = Duration::from_millis(200);
/// Requests queued for one driver before senders wait.
const DRIVER_QUEUE: usize = 1024;
/// How long after a refused fence a node waits before it tries again.
const FENCE_RETRY: Duration = Duration::from_millis(500);

/// Where the floor reaches the media plane. The driver calls it for every present member,
/// guest or moderator whose [`Consultation::may_speak`] changed (and once when they join), after
/// floor and mode events. The SFU wiring implements it with
/// `sfu.set_forwarding(room, participant, audio, video)` and installs it with
/// [`Hub::set_floor_hook`]; until then the default does nothing.
///
/// `video` is always `true` today: the floor gates who is *heard*; being seen is not moderated.
pub trait FloorHook: Send + Sync + 'static {
    /// `participant` of `activity` may (or may no longer) be forwarded to the others.
    fn set_forwarding(
        &self,
        activity: &ActivityId,
        participant: &ParticipantId,
        audio: bool,
        video: bool,
    );

    /// The floor's holder or mode may have changed (called with `set_forwarding`'s updates).
    /// The livestream programme follows it to choose whose camera is on air; the SFU needs only
    /// the gates, hence the default that does nothing.
    fn set_turn(&self, _activity: &ActivityId, _holder: Option<&ParticipantId>, _open: bool) {}
}

/// The default hook: media is not wired.
#[derive(Debug, Default)]
pub struct NoFloorHook;

impl FloorHook for NoFloorHook {
    fn set_forwarding(&self, _: &ActivityId, _: &ParticipantId, _: bool, _: bool) {}
}

/// What a verified token grants, for the state machines.
pub fn grants_of(claims: &Claims) -> Grants {
    Grants {
        subject: claims.sub.clone(),
        name: claims.name.clone(),
        role: claims.role,
        org: claims.org.clone(),
        verified: claims.verified,
        activity: claims.act.clone(),
    }
}

/// A refusal as the wire sends it.
pub type WireError = (ErrorCode, String);

/// The driver's decision on a posted comment (the comment policy's
/// [`CommentDecision`], in the form that also crosses nodes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostDecision {
    /// Store `text` (normalised); `held`: moderators only until approved.
    Store {
        /// The text to store.
        text: String,
        /// Held for review.
        held: bool,
    },
    /// Do not store it.
    Refuse(WireError),
}

impl From<CommentDecision> for PostDecision {
    fn from(d: CommentDecision) -> Self {
        match d {
            CommentDecision::Accept { public, text } => PostDecision::Store { text, held: !public },
            CommentDecision::Hold { text, .. } => PostDecision::Store { text, held: true },
            CommentDecision::Refuse(e) => PostDecision::Refuse(wire(&e)),
        }
    }
}

fn wire(e: &ConsultError) -> WireError {
    (e.wire_code(), e.to_string())
}

/// Inputs of a driver.
#[derive(Debug)]
pub enum DriverMsg {
    /// A connection of this identity authenticated (attendance).
    Join(Grants),
    /// A connection of this identity closed.
    Leave(ParticipantId),
    /// A `cmd`.
    Command {
        /// Who asks.
        grants: Grants,
        /// What.
        cmd: Command,
        /// The answer, once durable.
        reply: oneshot::Sender<Result<Reply, WireError>>,
    },
    /// The state for a connection that just subscribed.
    State {
        /// Whose view.
        grants: Grants,
        /// The answer.
        reply: oneshot::Sender<Result<Snapshot, WireError>>,
    },
    /// Decide on a posted comment (comment policy).
    Post {
        /// The poster.
        grants: Grants,
        /// The text as posted.
        text: String,
        /// Store (public or held) or refuse.
        reply: oneshot::Sender<PostDecision>,
    },
    /// A decided comment is durable under `seq`.
    Committed {
        /// Its seq.
        seq: Seq,
        /// The poster.
        grants: Grants,
        /// The stored text.
        text: String,
        /// Stored as held.
        held: bool,
        /// Answered once the driver knows (the poster is acknowledged after this, so a
        /// moderator who reacts to the ack finds the comment in the review queue, whichever
        /// node either of them is on).
        done: oneshot::Sender<()>,
    },
    /// An item this driver caused (approval copy, hide) is durable under `seq`.
    TopicSeq(Seq),
}

/// The drivers of all activities, started on first use. In cluster mode only the activities
/// this node is home to have a driver here; sessions reach every activity through a router
/// (see [`super::consult_relay`]).
pub struct ConsultDrivers {
    /// Drivers running on this node.
    map: DashMap<ActivityId, mpsc::Sender<DriverMsg>>,
    /// Cluster mode: the router of each activity on this node.
    routers: DashMap<ActivityId, mpsc::Sender<DriverMsg>>,
    /// Cluster mode: carries home drivers' events to the other nodes.
    events: OnceLock<EventRelay>,
    /// When a driver last found its activity's fence held by another node.
    fence_refused: DashMap<ActivityId, std::time::Instant>,
    hub: OnceLock<Weak<Hub>>,
    hook: RwLock<Arc<dyn FloorHook>>,
}

impl Default for ConsultDrivers {
    fn default() -> Self {
        ConsultDrivers {
            map: DashMap::new(),
            routers: DashMap::new(),
            events: OnceLock::new(),
            fence_refused: DashMap::new(),
            hub: OnceLock::new(),
            hook: RwLock::new(Arc::new(NoFloorHook)),
        }
    }
}

impl ConsultDrivers {
    /// Ties the drivers to their hub (once, right after it is built).
    pub(crate) fn bind(&self, hub: Weak<Hub>) {
        let _ = self.hub.set(hub);
    }

    pub(crate) fn set_hook(&self, hook: Arc<dyn FloorHook>) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    fn hook(&self) -> Arc<dyn FloorHook> {
        self.hook.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Where a session sends `activity`'s driver messages: the driver (one node), or this
    /// node's router to the activity's home (cluster mode); `None` if the activity does not
    /// exist or the hub is gone.
    pub fn sender(&self, activity: &ActivityId) -> Option<mpsc::Sender<DriverMsg>> {
        let hub = self.hub.get()?.upgrade()?;
        let Some(cluster) = hub.cluster.as_ref() else {
            return self.local_sender(activity);
        };
        if let Some(tx) = self.routers.get(activity) {
            return Some(tx.clone());
        }
        hub.record.activity(activity).ok()??;
        let entry = self.routers.entry(activity.clone()).or_insert_with(|| {
            super::consult_relay::spawn_router(
                Arc::downgrade(&hub),
                cluster.clone(),
                &hub.control,
                activity.clone(),
            )
        });
        Some(entry.clone())
    }

    /// Stops the local drivers of activities for which `keep` is false (cluster mode: their
    /// home moved to another node). A driver ends once the messages already queued are done.
    pub(crate) fn retain_local(&self, mut keep: impl FnMut(&ActivityId) -> bool) {
        self.map.retain(|a, _| {
            let k = keep(a);
            if !k {
                tracing::info!(activity = %a, "moderation moved to another node; local driver stops");
            }
            k
        });
    }

    /// The driver of `activity` on this node, started if needed; `None` if the activity does
    /// not exist or the hub is gone.
    pub(crate) fn local_sender(&self, activity: &ActivityId) -> Option<mpsc::Sender<DriverMsg>> {
        if let Some(tx) = self.map.get(activity).filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        // Another node held the activity's fence a moment ago: do not ask PostgreSQL again
        // for every message.
        if self
            .fence_refused
            .get(activity)
            .is_some_and(|t| t.elapsed() < FENCE_RETRY)
        {
            return None;
        }
        let hub = self.hub.get()?.upgrade()?;
        let a = hub.record.activity(activity).ok()??;
        let events = hub.cluster.as_ref().map(|c| {
            self.events
                .get_or_init(|| EventRelay::spawn(c.clone(), &hub.control))
                .clone()
        });
        // A stopped driver's entry (its fence was refused or lost) is replaced.
        self.map.remove_if(activity, |_, tx| tx.is_closed());
        let entry = self.map.entry(activity.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(DRIVER_QUEUE);
            let head = hub.record.head(activity).unwrap_or_default();
            let config = ConsultationConfig {
                title: a.title.clone(),
                ..ConsultationConfig::default()
            };
            let mut c = Consultation::new(activity.clone(), config, now_ms());
            c.handle_topic_seq(head);
            let driver = ConsultDriver {
                activity: activity.clone(),
                c,
                hub: Arc::downgrade(&hub),
                record: hub.record.clone(),
                cluster: hub.cluster.clone(),
                events,
                me: tx.downgrade(),
                persist: spawn_persist(&hub.control, hub.record.clone(), activity.clone()),
                pending_questions: BTreeMap::new(),
                coalesce_due: None,
                summary_due: None,
                audited: 0,
                present: HashMap::new(),
                speaking: HashMap::new(),
                fence: None,
            };
            hub.control.spawn(driver.run(rx));
            tx
        });
        Some(entry.clone())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

enum Persist {
    Audit(AuditEntry),
    Summary { json: String, head: String, state: String },
    /// Give the moderation fence back (the driver stopped).
    Release(Fence),
}

/// One task per activity writes audit entries and summaries in the order they were made (the
/// record refuses an audit entry that does not continue the chain).
fn spawn_persist(
    control: &tokio::runtime::Handle,
    record: Arc<dyn Record>,
    activity: ActivityId,
) -> mpsc::UnboundedSender<Persist> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    control.spawn(async move {
        while let Some(p) = rx.recv().await {
            let res = match p {
                Persist::Audit(e) => record.append_audit(&activity, &e).await,
                Persist::Summary { json, head, state } => {
                    record.put_summary(&activity, json, head, state).await
                }
                Persist::Release(fence) => {
                    record.unfence(fence).await;
                    Ok(())
                }
            };
            if let Err(e) = res {
                metrics::counter!("shangliang_consult_persist_failed_total").increment(1);
                tracing::error!(%activity, "moderation record write failed: {e}");
            }
        }
    });
    tx
}

/// The owner of one activity's [`Consultation`].
struct ConsultDriver {
    activity: ActivityId,
    c: Consultation,
    hub: Weak<Hub>,
    /// Where its topic items are appended and its audit log and summary stored.
    record: Arc<dyn Record>,
    /// Cluster mode: who is home.
    cluster: Option<Arc<Cluster>>,
    /// Cluster mode: events also go to the other nodes' connections.
    events: Option<EventRelay>,
    /// To tell itself the seq of items it appended; weak, so the driver ends with the hub.
    me: mpsc::WeakSender<DriverMsg>,
    persist: mpsc::UnboundedSender<Persist>,
    /// Question events to many connections waiting to be merged: (audience, id) → latest.
    pending_questions: BTreeMap<(u8, QuestionId), Outbound>,
    coalesce_due: Option<u64>,
    summary_due: Option<u64>,
    audited: usize,
    /// Connections per present member, guest or moderator.
    present: HashMap<ParticipantId, u32>,
    /// What the floor hook was last told.
    speaking: HashMap<ParticipantId, bool>,
    /// The proof that no other node runs this activity's moderation (see [`Record::fence`]).
    fence: Option<Fence>,
}

impl ConsultDriver {
    async fn run(mut self, mut rx: mpsc::Receiver<DriverMsg>) {
        match self.record.fence(&self.activity).await {
            Ok(Some(f)) => self.fence = Some(f),
            refused => {
                match refused {
                    Ok(_) => tracing::warn!(activity = %self.activity, "another node still runs this activity's moderation; not starting"),
                    Err(e) => tracing::warn!(activity = %self.activity, "cannot take the moderation fence: {e}"),
                }
                metrics::counter!("shangliang_consult_fence_refused_total").increment(1);
                if let Some(hub) = self.hub.upgrade() {
                    hub.consult
                        .fence_refused
                        .insert(self.activity.clone(), std::time::Instant::now());
                }
                // Dropping `rx` answers everything queued with "unavailable".
                return;
            }
        }
        // Continue from the last checkpoint: after a restart of this hub (its clients reconnect
        // and join again), or when this node became the activity's home (every node's router
        // announces its connections again).
        match self.record.checkpoint(&self.activity).await {
            Ok(Some(state)) => {
                match Consultation::restore(&state, now_ms()) {
                    Ok(mut c) => {
                        c.handle_topic_seq(self.record.head(&self.activity).unwrap_or_default());
                        self.c = c;
                        tracing::info!(activity = %self.activity, "moderation state continued from its checkpoint");
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
        match self.record.audit_log(&self.activity).await {
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
        loop {
            let now = now_ms();
            let wake = [self.c.poll_timeout(), self.coalesce_due, self.summary_due]
                .into_iter()
                .flatten()
                .min();
            let sleep = wake.map_or(Duration::from_secs(3600), |w| {
                Duration::from_millis(w.saturating_sub(now))
            });
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => {
                        if self.fence.is_some_and(|f| !self.record.fence_held(f)) {
                            // The lock connection was lost: another node may take over now.
                            tracing::warn!(activity = %self.activity, "moderation fence lost; driver stops");
                            metrics::counter!("shangliang_consult_fence_lost_total").increment(1);
                            self.fence = None;
                            break;
                        }
                        self.handle_msg(m)
                    }
                    None => break,
                },
                _ = tokio::time::sleep(sleep) => {}
            }
            let now = now_ms();
            self.c.handle_tick(now);
            self.drain(now);
        }
        // The hub is going away (or, in a cluster, the activity's home moved and the new home
        // writes the record from now on): write the final record.
        self.flush_questions();
        let still_home = self.cluster.as_ref().is_none_or(|c| c.home_elsewhere(&self.activity).is_none());
        if self.fence.is_some() && still_home {
            let _ = self.persist.send(Persist::Summary {
                json: self.c.summary(now_ms()).to_json(),
                head: self.c.audit().head(),
                state: self.c.checkpoint(),
            });
        }
        if let Some(f) = self.fence.take() {
            // Released only after everything this driver persisted is written: the persist
            // task works in order.
            let _ = self.persist.send(Persist::Release(f));
        }
    }

    fn handle_msg(&mut self, msg: DriverMsg) {
        let now = now_ms();
        match msg {
            DriverMsg::Join(g) => {
                if self.c.handle_join(&g, now).is_ok()
                    && !matches!(g.role, shangliang_signaling::Role::Viewer)
                {
                    *self.present.entry(g.subject).or_default() += 1;
                }
                self.summary_due
                    .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            }
            DriverMsg::Leave(who) => {
                self.c.handle_leave(&who, now);
                if let Some(n) = self.present.get_mut(&who) {
                    *n -= 1;
                    if *n == 0 {
                        self.present.remove(&who);
                        self.speaking.remove(&who);
                    }
                }
                self.summary_due
                    .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            }
            DriverMsg::State { grants, reply } => {
                let _ = reply.send(self.c.snapshot(&grants).map_err(|e| wire(&e)));
            }
            DriverMsg::Post {
                grants,
                text,
                reply,
            } => {
                let _ = reply.send(self.c.handle_post_comment(&grants, &text, now).into());
            }
            DriverMsg::Committed {
                seq,
                grants,
                text,
                held,
                done,
            } => {
                self.c
                    .handle_comment_committed(seq, &grants, text, held, now);
                let _ = done.send(());
                self.summary_due
                    .get_or_insert(now + SUMMARY_DEBOUNCE.as_millis() as u64);
            }
            DriverMsg::TopicSeq(seq) => self.c.handle_topic_seq(seq),
            DriverMsg::Command { grants, cmd, reply } => {
                self.handle_command(grants, cmd, reply, now)
            }
        }
    }

    fn handle_command(
        &mut self,
        grants: Grants,
        cmd: Command,
        reply: oneshot::Sender<Result<Reply, WireError>>,
        now: u64,
    ) {
        let hide = match &cmd {
            Command::HideComment { seq, .. } => Some(*seq),
            _ => None,
        };
        let result = self.c.handle_command(&grants, cmd, now);
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
        let (record, activity, me) = (self.record.clone(), self.activity.clone(), self.me.clone());
        tokio::spawn(async move {
            let answer = match record.append_durable(&activity, body, true).await {
                Ok(item) => {
                    if let Some(me) = me.upgrade() {
                        let _ = me.send(DriverMsg::TopicSeq(item.seq)).await;
                    }
                    result.map_err(|e| wire(&e))
                }
                Err(e) => {
                    tracing::error!(%activity, "moderation item not stored: {e}");
                    Err((
                        ErrorCode::Unavailable,
                        "the moderation was logged but its item could not be stored; retry".into(),
                    ))
                }
            };
            let _ = reply.send(answer);
        });
    }

    fn drain(&mut self, now: u64) {
        let mut floor_changed = false;
        while let Some(out) = self.c.poll_event() {
            floor_changed |= matches!(
                out.event,
                ConsultEvent::Floor(_) | ConsultEvent::Presence { .. }
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
        let entries = self.c.audit().entries();
        for e in &entries[self.audited.min(entries.len())..] {
            let _ = self.persist.send(Persist::Audit(e.clone()));
        }
        self.audited = entries.len();
        if self.summary_due.is_some_and(|t| t <= now) {
            self.summary_due = None;
            let _ = self.persist.send(Persist::Summary {
                json: self.c.summary(now).to_json(),
                head: self.c.audit().head(),
                state: self.c.checkpoint(),
            });
        }
        if floor_changed || self.speaking.len() != self.present.len() {
            self.update_forwarding();
        }
    }

    fn flush_questions(&mut self) {
        self.coalesce_due = None;
        for (_, out) in std::mem::take(&mut self.pending_questions) {
            self.deliver(out);
        }
    }

    fn update_forwarding(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let hook = hub.consult.hook();
        let open = self.c.floor().mode() == shangliang_signaling::consult::FloorMode::Open;
        hook.set_turn(&self.activity, self.c.floor().holder(), open);
        for who in self.present.keys() {
            let may = self.c.may_speak(who);
            if self.speaking.insert(who.clone(), may) != Some(may) {
                hook.set_forwarding(&self.activity, who, may, true);
            }
        }
    }

    fn deliver(&self, out: Outbound) {
        if let Some(events) = &self.events {
            events.send(&self.activity, out.audience.clone(), out.event.clone());
        }
        if let Some(hub) = self.hub.upgrade() {
            deliver_local(&hub, &self.activity, out.audience, out.event);
        }
    }
}

/// Delivers a moderation event to this node's connections of `activity` that `to` names.
pub(crate) fn deliver_local(hub: &Hub, activity: &ActivityId, to: Audience, event: ConsultEvent) {
    let msg = ServerMsg::Event {
        topic: activity.clone(),
        event,
    };
    let views = match to {
        Audience::Everyone => Views::All,
        Audience::Moderators => Views::Full,
        Audience::NonModerators => Views::Public,
        Audience::Participant(id) => {
            hub.inboxes.send_to(activity, &id, &msg);
            return;
        }
    };
    if let Err(e) = hub.fanout.broadcast(activity, views, &msg) {
        tracing::warn!(%activity, "event not broadcast: {e}");
    }
}

/// Formats of `shangliang export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The whole session summary as JSON.
    Json,
    /// Tables as CSV sections.
    Csv,
    /// Markdown that reads as minutes.
    Markdown,
}

/// Where `export` and `verify-record` read a session record.
#[derive(Debug, Clone)]
pub enum RecordSource {
    /// A single hub's data directory (its SQLite file).
    Dir(std::path::PathBuf),
    /// A cluster's PostgreSQL database (connection string).
    Database(String),
}

/// A stored session record: the summary (JSON, audit head), if any, and the audit log.
type StoredRecord = (Option<(String, String)>, Vec<AuditEntry>);

/// The stored summary (JSON, audit head) and audit log of `activity`.
fn read_record(source: &RecordSource, activity: &ActivityId) -> anyhow::Result<StoredRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let nothing = || Box::new(|_: &ActivityId, _: &shangliang_signaling::Item, _: bool| {});
        let record: Arc<dyn Record> = match source {
            RecordSource::Dir(data_dir) => {
                let path = data_dir.join("shangliang.sqlite3");
                anyhow::ensure!(path.exists(), "no record at {}", path.display());
                Arc::new(SqliteRecord::open(&path, RecordOptions::default(), nothing())?)
            }
            RecordSource::Database(url) => Arc::new(PgRecord::connect(url, nothing()).await?),
        };
        Ok((record.summary(activity).await?, record.audit_log(activity).await?))
    })
}

/// The stored session record of `activity` in `format` (what `shangliang export` prints).
pub fn export_record(
    source: &RecordSource,
    activity: &ActivityId,
    format: ExportFormat,
) -> anyhow::Result<String> {
    let (summary, _) = read_record(source, activity)?;
    let (json, _head) =
        summary.ok_or_else(|| anyhow::anyhow!("no session record for activity {activity}"))?;
    let summary: crate::consult::SessionSummary = serde_json::from_str(&json)?;
    Ok(match format {
        ExportFormat::Json => summary.to_json(),
        ExportFormat::Csv => summary.to_csv(),
        ExportFormat::Markdown => summary.to_markdown(),
    })
}

/// What `verify-record` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Audit entries checked.
    pub entries: usize,
    /// The chain's last hash.
    pub head: String,
    /// Entries logged after the stored summary's head (the summary is written a moment after
    /// the entries; a crash in between leaves a few).
    pub after_stored_head: usize,
}

/// Checks the audit chain of `activity` as stored in SQLite: every link, and that the head
/// stored with the summary is on the chain (entries removed from the end are caught there).
/// `Err` names the first broken entry (its `idx` in the `audit_log` table).
pub fn verify_record(source: &RecordSource, activity: &ActivityId) -> anyhow::Result<Verified> {
    let (summary, entries) = read_record(source, activity)?;
    if let Err(b) = crate::consult::verify(&entries) {
        let e = &entries[b.index];
        anyhow::bail!(
            "audit log of {activity} is broken at entry idx {} ({} by {} at {} ms): it was altered, removed or reordered",
            b.index + 1,
            e.action,
            e.actor,
            e.at_ms
        );
    }
    let head = entries
        .last()
        .map_or_else(|| hex::encode([0u8; 32]), |e| e.hash.clone());
    let mut after_stored_head = 0;
    if let Some((_, stored)) = summary {
        let genesis = hex::encode([0u8; 32]);
        let pos = if stored == genesis {
            Some(0)
        } else {
            entries.iter().position(|e| e.hash == stored).map(|i| i + 1)
        };
        match pos {
            Some(p) => after_stored_head = entries.len() - p,
            None => anyhow::bail!(
                "audit log of {activity} does not reach the stored head {stored}: entries were removed from the end (idx {} is the last left)",
                entries.len()
            ),
        }
    }
    Ok(Verified {
        entries: entries.len(),
        head,
        after_stored_head,
    })
}
