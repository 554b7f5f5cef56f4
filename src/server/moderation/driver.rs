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
//! Durable side effects of moderation (the public copy of an approved comment, the `hide`
//! item) are appended to the record by a spawned task, and the command's reply is sent only
//! once they are durable, so a moderator's `reply` means viewers will see the effect.
//!
//! A driver holds what it needs ([`DriverDeps`]) and nothing that points back at whoever
//! started it; it ends when every sender of its channel is gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shangliang_signaling::{ActivityId, ErrorCode, ItemBody, ParticipantId, Role, Seq};
use tokio::sync::{mpsc, oneshot};

use super::deliver::Outlets;
use super::floor::FloorHook;
use super::msg::{DriverMsg, WireError, wire};
use super::relay::EventRelay;
use crate::bus::Cluster;
use crate::consult::{
    Addressed, Audience, AuditEntry, Command, ConsultEvent, Consultation, ConsultationConfig,
    Grants, QuestionId, Reply,
};
use crate::record::{Fence, Record};

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
}

/// How a driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Another node holds the activity's fence: it did not start.
    FenceRefused,
    /// It ran and stopped (its senders are gone, or its fence was lost).
    Stopped,
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
    c.handle_topic_seq(head);
    let driver = ModerationDriver {
        persist: spawn_persist(control, deps.record.clone(), activity.clone()),
        activity,
        c,
        deps,
        me: tx.downgrade(),
        pending_questions: BTreeMap::new(),
        coalesce_due: None,
        summary_due: None,
        audited: 0,
        present: HashMap::new(),
        speaking: HashMap::new(),
        fence: None,
    };
    control.spawn(async move { on_end(driver.run(rx).await) });
    tx
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
struct ModerationDriver {
    activity: ActivityId,
    c: Consultation,
    deps: DriverDeps,
    /// To tell itself the seq of items it appended; weak, so that the driver still ends when
    /// its senders are gone.
    me: mpsc::WeakSender<DriverMsg>,
    persist: mpsc::UnboundedSender<Persist>,
    /// Question events to many connections waiting to be merged: (audience, id) → latest.
    pending_questions: BTreeMap<(u8, QuestionId), Addressed>,
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

impl ModerationDriver {
    async fn run(mut self, mut rx: mpsc::Receiver<DriverMsg>) -> Ended {
        match self.deps.record.fence(&self.activity).await {
            Ok(Some(f)) => self.fence = Some(f),
            refused => {
                match refused {
                    Ok(_) => tracing::warn!(activity = %self.activity, "another node still runs this activity's moderation; not starting"),
                    Err(e) => tracing::warn!(activity = %self.activity, "cannot take the moderation fence: {e}"),
                }
                metrics::counter!("shangliang_consult_fence_refused_total").increment(1);
                // Dropping `rx` answers everything queued with "unavailable".
                return Ended::FenceRefused;
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
                        if self.fence.is_some_and(|f| !self.deps.record.fence_held(f)) {
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
        let still_home = self.deps.cluster.as_ref().is_none_or(|c| c.home_elsewhere(&self.activity).is_none());
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
        Ended::Stopped
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
        let (record, activity, me) = (self.deps.record.clone(), self.activity.clone(), self.me.clone());
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
        let hook = self.deps.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
        let open = self.c.floor().mode() == shangliang_signaling::consult::FloorMode::Open;
        hook.set_turn(&self.activity, self.c.floor().holder(), open);
        for who in self.present.keys() {
            let may = self.c.may_speak(who);
            if self.speaking.insert(who.clone(), may) != Some(may) {
                hook.set_forwarding(&self.activity, who, may, true);
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

