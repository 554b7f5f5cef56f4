//! What a moderation driver takes (the same messages whether a session on this node or the
//! relay from another node sends them) and what answers look like.

use std::sync::Arc;
use std::time::Instant;

use shangliang_signaling::{ActivityId, ErrorCode, Form, ParticipantId, Seq, ServerMsg, encode_server};
use tokio::sync::{mpsc, oneshot};

use crate::consult::votes::NetBlock;
use crate::consult::{Command, ConsultError, Grants, Reply, Snapshot};
use crate::fanout::{Opcode, Wire};
use crate::server::inbox::{AnswerTrace, Direct, Envelope, comment_hop};

/// A refusal as the wire sends it.
pub type WireError = (ErrorCode, String);

/// A domain refusal in its wire form.
pub(super) fn wire(e: &ConsultError) -> WireError {
    (e.wire_code(), e.to_string())
}

/// A comment the record has made durable: its seq, and whether it is held for review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acked {
    /// Its sequence number in the topic.
    pub seq: Seq,
    /// Held for review: only moderators see it until one approves it.
    pub held: bool,
}

/// The answer to a post: durable (`ack`), or refused with a reason (`error`).
pub type PostAnswer = Result<Acked, WireError>;

/// Where the answer to a post goes; answered exactly once, from wherever the answer is known
/// (a refusal in the driver, an ack on the record's writer right after the commit). One that
/// is dropped unanswered — its driver stopped, the activity moved, the message never arrived —
/// answers `unavailable` (retry) as it goes, so no post is left without an answer.
///
/// It also carries the comment's trace: when the session read the post and the comment's
/// `tracing` span (`comment`, at debug level: entered by each hop, a no-op unless enabled), so
/// that each hop can record its time in `shangliang_comment_hop_seconds{hop}`.
#[derive(Debug)]
pub struct PostReply(Option<ReplyTo>, Trace);

#[derive(Debug)]
struct Trace {
    read_at: Instant,
    span: tracing::Span,
}

impl Trace {
    fn now(id: Option<u32>) -> Trace {
        Trace { read_at: Instant::now(), span: tracing::debug_span!("comment", id, seq = tracing::field::Empty) }
    }
}

#[derive(Debug)]
enum ReplyTo {
    /// A session of this node: the `ack` or `error`, with the post's `id`, straight into its
    /// inbox. A full inbox (a burst of pipelined posts answered by one group commit) is waited
    /// for in a task on the session's runtime, never on the record's writer: an ack is never
    /// dropped while the connection lives.
    Inbox {
        id: u32,
        inbox: mpsc::Sender<Direct>,
        runtime: Option<tokio::runtime::Handle>,
        /// The connection's wire, if its socket is one: the answer is written straight into it.
        wire: Option<(Arc<Wire>, Form)>,
    },
    /// A post relayed from another node: the relay answers it over NATS.
    Relay(oneshot::Sender<PostAnswer>),
}

impl PostReply {
    /// The answer goes to a session of this node, as `ack`/`error` with the post's `id`. Made
    /// on the session's runtime (where a full inbox is waited for).
    pub fn inbox(id: u32, inbox: mpsc::Sender<Direct>) -> PostReply {
        let runtime = tokio::runtime::Handle::try_current().ok();
        PostReply(Some(ReplyTo::Inbox { id, inbox, runtime, wire: None }), Trace::now(Some(id)))
    }

    /// Like [`PostReply::inbox`], for a connection whose socket is written through `wire`: the
    /// answer is written into the socket by whoever knows it (the record's writer thread, right
    /// after the commit), without waiting for the session task to be scheduled. The inbox is
    /// used only if the socket did not take the whole frame at once (the session then flushes
    /// it) — never for the answer itself, so it is written once.
    pub fn inbox_wire(id: u32, inbox: mpsc::Sender<Direct>, wire: Arc<Wire>, form: Form) -> PostReply {
        let runtime = tokio::runtime::Handle::try_current().ok();
        PostReply(Some(ReplyTo::Inbox { id, inbox, runtime, wire: Some((wire, form)) }), Trace::now(Some(id)))
    }

    /// The answer goes back over the relay.
    pub fn relay(tx: oneshot::Sender<PostAnswer>) -> PostReply {
        PostReply(Some(ReplyTo::Relay(tx)), Trace::now(None))
    }

    /// The comment's span (see the type's docs).
    pub fn span(&self) -> &tracing::Span {
        &self.1.span
    }

    /// When the session read the post (or the relay received it).
    pub fn read_at(&self) -> Instant {
        self.1.read_at
    }

    /// Sends the answer (never waits).
    pub fn send(mut self, answer: PostAnswer) {
        if let Some(to) = self.0.take() {
            let trace = Trace { read_at: self.1.read_at, span: std::mem::replace(&mut self.1.span, tracing::Span::none()) };
            to.send(answer, trace);
        }
    }
}

impl Drop for PostReply {
    fn drop(&mut self) {
        if let Some(to) = self.0.take() {
            let trace = Trace { read_at: self.1.read_at, span: std::mem::replace(&mut self.1.span, tracing::Span::none()) };
            to.send(
                Err((ErrorCode::Unavailable, "the activity's moderation is not available; retry".into())),
                trace,
            );
        }
    }
}

impl ReplyTo {
    fn send(self, answer: PostAnswer, trace: Trace) {
        if let Ok(a) = &answer {
            trace.span.record("seq", a.seq.0);
        }
        let trace = AnswerTrace { read_at: trace.read_at, answered_at: Instant::now(), span: trace.span };
        match self {
            ReplyTo::Inbox { id, inbox, runtime, wire } => {
                let msg = match answer {
                    Ok(Acked { seq, held }) => {
                        metrics::counter!("shangliang_comments_accepted_total").increment(1);
                        ServerMsg::Ack { id, seq, held }
                    }
                    Err((code, message)) => {
                        metrics::counter!("shangliang_comments_refused_total", "code" => format!("{code:?}")).increment(1);
                        ServerMsg::Error { id: Some(id), code, message }
                    }
                };
                let mut written = false;
                if let Some((wire, form)) = wire {
                    let op = if form == Form::Json { Opcode::Text } else { Opcode::Binary };
                    match wire.write_own(op, &encode_server(form, &msg)) {
                        Ok(true) => return trace.written(),
                        // The rest waits in the wire: the session flushes it.
                        Ok(false) => written = true,
                        // The connection is closing or gone: nobody to tell.
                        Err(_) => return,
                    }
                }
                match inbox.try_send(Box::new(Envelope { msg, trace: Some(trace), written })) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(msg)) => match runtime {
                        Some(rt) => {
                            rt.spawn(async move {
                                let _ = inbox.send(msg).await;
                            });
                        }
                        None => metrics::counter!("shangliang_inbox_dropped_total").increment(1),
                    },
                    // The session is gone; the comment's fate is settled either way.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            ReplyTo::Relay(tx) => {
                // The relay's reply is the last hop this node sees.
                comment_hop("total", trace.answered_at.saturating_duration_since(trace.read_at));
                let _ = tx.send(answer);
            }
        }
    }
}

/// Inputs of a driver.
#[derive(Debug)]
pub enum DriverMsg {
    /// A connection of this identity authenticated (attendance).
    Join(Grants),
    /// A connection of this identity closed.
    Leave(ParticipantId),
    /// A moderation command.
    Command {
        /// The caller's grants (from the verified token).
        grants: Grants,
        /// The address block the command came from (the edge's client address, trusted-proxy
        /// aware): anonymous question votes are capped per block (`consult::votes`). `None`:
        /// not known (such votes share one allowance).
        from: Option<NetBlock>,
        /// The command.
        cmd: Command,
        /// The answer, once its effects are durable.
        reply: oneshot::Sender<Result<Reply, WireError>>,
    },
    /// The state for a connection that just subscribed.
    State {
        /// Whose view.
        grants: Grants,
        /// The answer.
        reply: oneshot::Sender<Result<Snapshot, WireError>>,
    },
    /// Whether `who` is banned from the activity (the media plane asks before a `join`, a
    /// publish offer or a WHIP ingest; a timeout only mutes comments).
    Banned {
        /// Whom.
        who: ParticipantId,
        /// The answer.
        reply: oneshot::Sender<Result<bool, WireError>>,
    },
    /// A posted comment: the driver decides on it (topic, text, rate, the moderators' rules)
    /// and appends it; `reply` is answered once it is durable, or at once if it is refused.
    Post {
        /// The poster.
        grants: Grants,
        /// The topic the post names.
        topic: ActivityId,
        /// The text as posted.
        text: String,
        /// Where the answer goes.
        reply: PostReply,
    },
    /// The organisers changed the activity's settings or paused/resumed/opened/closed it: the
    /// whole desired session state (the driver reconciles the state machine with it, bypassing
    /// the lifecycle gate) and their notes for the hash chain, logged under `grants`' subject.
    Organise {
        /// The organiser's grants (a moderator of the activity, subject `staff:<user>`).
        grants: Grants,
        /// The desired state.
        settings: Box<crate::consult::SessionSettings>,
        /// The notes to append to the audit chain.
        notes: Vec<OrganiserNote>,
        /// What changed.
        reply: OrganiseReply,
    },
    /// The hub stops gracefully (SIGTERM): close every open attendance span and the turn at
    /// the floor, write the final summary, and answer `done` once it is durable. Never relayed:
    /// each node shuts down its own drivers.
    Shutdown {
        /// Answered once the final summary is written.
        done: oneshot::Sender<()>,
    },
    /// A request of the consensus part (polls, statements): see `consensus.rs`.
    Consensus {
        /// The caller's grants.
        grants: Grants,
        /// The request.
        req: Box<super::consensus_wire::ConsensusRequest>,
        /// The answer.
        reply: ConsensusReply,
    },
}

/// One of the organisers' audit notes, for the activity's hash-chained log (the driver appends
/// it as an entry by the organiser: `activity_paused`, `settings_changed` …).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrganiserNote {
    /// What, snake_case.
    pub action: String,
    /// To what (a setting's name), or empty.
    pub target: String,
    /// Parameters (a new value), or empty.
    pub detail: String,
    /// Why, when given.
    pub reason: Option<String>,
}

/// The answer to an organisers' update: the fields of the session that changed.
pub type OrganiseReply = oneshot::Sender<Result<Vec<String>, WireError>>;

/// Where a moderation driver that starts reads what the organisers set for its activity
/// (implemented by [`crate::organise::Organisers`]); `None` for an activity they do not
/// manage (the demo activities), which keeps the state machine's defaults.
pub trait SessionSource: Send + Sync + 'static {
    /// The desired session state of `activity`, if the organisers manage it.
    fn session_settings(&self, activity: &ActivityId) -> Option<crate::consult::SessionSettings>;
}

/// The answer to a consensus request.
pub type ConsensusReply = oneshot::Sender<Result<super::consensus_wire::ConsensusAnswer, WireError>>;

/// The drivers running on this node, as the cluster relay reaches them (implemented by the
/// registry; a trait so that the relay does not depend on the registry that starts it).
pub trait LocalDrivers: Send + Sync + 'static {
    /// The driver of `activity` on this node, started if needed; `None` if the activity does
    /// not exist or another node holds its fence.
    fn local(&self, activity: &ActivityId) -> Option<mpsc::Sender<DriverMsg>>;

    /// Stops the local drivers of activities for which `keep` is false (their home moved to
    /// another node). A driver ends once the messages already queued are done.
    fn retain(&self, keep: &dyn Fn(&ActivityId) -> bool);
}
