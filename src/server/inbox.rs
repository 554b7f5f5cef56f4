//! Direct messages to one participant's connections (as opposed to the fan-out's topic
//! frames): media signalling events, replies and events meant for one identity.
//!
//! Each session registers a bounded sender under (activity, participant) and drains the
//! receiver in its select loop. A full inbox drops the message for that connection (and counts
//! it): a client that does not read its socket must not hold the server's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use shangliang_signaling::{ActivityId, ParticipantId, ServerMsg};
use tokio::sync::mpsc;

/// Messages one connection's inbox holds before it drops.
pub const INBOX_CAPACITY: usize = 256;

/// What an inbox carries. Boxed: tokio's channel allocates its first block of 32 slots when
/// created, and a slot of a bare `ServerMsg` would cost every connection kilobytes up front.
pub type Direct = Box<Envelope>;

/// A message for one connection, and for a post's answer where its path was timed.
#[derive(Debug)]
pub struct Envelope {
    /// The message.
    pub msg: ServerMsg,
    /// An `ack` or a post's `error`: the comment's trace, for the last hop's histogram and span.
    pub trace: Option<AnswerTrace>,
    /// Already written into the connection's wire (by the record's writer, see
    /// `moderation::PostReply`), but not wholly taken by the socket: the session only flushes.
    pub written: bool,
}

/// How far a post's answer has come: when the session read the post, when the answer was known
/// (the commit, or the refusal), and the comment's span (`tracing`, a no-op unless enabled).
#[derive(Debug)]
pub struct AnswerTrace {
    /// The session read the post.
    pub read_at: std::time::Instant,
    /// The answer was known (durable, or refused).
    pub answered_at: std::time::Instant,
    /// The comment's span.
    pub span: tracing::Span,
}

impl AnswerTrace {
    /// The answer is in the poster's socket: the last hop's and the whole path's histograms.
    pub fn written(&self) {
        let now = std::time::Instant::now();
        comment_hop("to_socket", now.saturating_duration_since(self.answered_at));
        comment_hop("total", now.saturating_duration_since(self.read_at));
        self.span.in_scope(|| tracing::debug!("answer written to the poster's socket"));
    }
}

/// Records one hop of a comment's path in `shangliang_comment_hop_seconds{hop}`: `to_driver`
/// (session read → the driver takes it), `decide` (the driver's decision and the append queued),
/// `durable` (append queued → committed), `to_socket` (committed → the ack in the poster's
/// socket), `total` (read → the ack in the socket).
pub fn comment_hop(hop: &'static str, d: std::time::Duration) {
    metrics::histogram!("shangliang_comment_hop_seconds", "hop" => hop).record(d.as_secs_f64());
}

impl From<ServerMsg> for Envelope {
    fn from(msg: ServerMsg) -> Envelope {
        Envelope { msg, trace: None, written: false }
    }
}

impl std::ops::Deref for Envelope {
    type Target = ServerMsg;
    fn deref(&self) -> &ServerMsg {
        &self.msg
    }
}

type Key = (ActivityId, ParticipantId);

/// The registry of inboxes.
#[derive(Default)]
pub struct Inboxes {
    map: DashMap<Key, HashMap<u64, mpsc::Sender<Direct>>>,
    next_id: AtomicU64,
}

/// Unregisters its inbox when dropped.
pub struct InboxGuard<'a> {
    inboxes: &'a Inboxes,
    key: Key,
    id: u64,
}

impl Inboxes {
    /// Registers a connection's inbox; returns the guard and the receiving end.
    pub fn register(
        &self,
        activity: ActivityId,
        participant: ParticipantId,
    ) -> (InboxGuard<'_>, mpsc::Sender<Direct>, mpsc::Receiver<Direct>) {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = (activity, participant);
        self.map.entry(key.clone()).or_default().insert(id, tx.clone());
        (InboxGuard { inboxes: self, key, id }, tx, rx)
    }

    /// Sends `msg` to every connection of `participant` in `activity`; returns how many took it.
    pub fn send_to(&self, activity: &ActivityId, participant: &ParticipantId, msg: &ServerMsg) -> usize {
        let key = (activity.clone(), participant.clone());
        let Some(list) = self.map.get(&key) else { return 0 };
        let mut sent = 0;
        for tx in list.values() {
            match tx.try_send(Box::new(msg.clone().into())) {
                Ok(()) => sent += 1,
                Err(_) => metrics::counter!("shangliang_inbox_dropped_total").increment(1),
            }
        }
        sent
    }
}

impl Drop for InboxGuard<'_> {
    fn drop(&mut self) {
        if let dashmap::Entry::Occupied(mut e) = self.inboxes.map.entry(self.key.clone()) {
            e.get_mut().remove(&self.id);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }
}
