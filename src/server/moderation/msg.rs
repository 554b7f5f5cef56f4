//! What a moderation driver takes (the same messages whether a session on this node or the
//! relay from another node sends them) and what answers look like.

use shangliang_signaling::{ActivityId, ErrorCode, ParticipantId, Seq};
use tokio::sync::{mpsc, oneshot};

use crate::consult::{Command, CommentDecision, ConsultError, Grants, Reply, Snapshot};

/// A refusal as the wire sends it.
pub type WireError = (ErrorCode, String);

/// A domain refusal in its wire form.
pub(super) fn wire(e: &ConsultError) -> WireError {
    (e.wire_code(), e.to_string())
}

/// The driver's decision on a posted comment (the comment policy's [`CommentDecision`], in
/// the form that also crosses nodes).
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
