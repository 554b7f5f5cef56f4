//! A room member's signaling handle. The member's two connections — a publisher connection
//! (the client offers) and a subscriber connection (the server offers, renegotiating as tracks
//! come and go) — live in the driver; every call here is a message to it.

use std::sync::Arc;

use crate::driver::{Cmd, MemberCmd};
use crate::{IceCandidate, Inner, SessionId, SfuError, TrackId};

/// Which of a member's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pc {
    /// The connection the member sends on (client offers).
    Publisher,
    /// The connection the member receives on (server offers).
    Subscriber,
}

/// Signaling handle of one member. Dropping it (or [`leave`](Self::leave)) ends the participation.
pub struct ParticipantHandle {
    id: SessionId,
    participant: String,
    inner: Arc<Inner>,
    left: bool,
}

impl std::fmt::Debug for ParticipantHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParticipantHandle({}, {})", self.id, self.participant)
    }
}

impl ParticipantHandle {
    pub(crate) fn new(id: SessionId, participant: String, inner: Arc<Inner>) -> Self {
        Self { id, participant, inner, left: false }
    }

    /// The session id (also accepted by [`crate::Sfu::close_session`]).
    pub fn id(&self) -> SessionId {
        self.id
    }

    async fn call<T>(&self, make: impl FnOnce(crate::driver::Reply<T>) -> MemberCmd) -> Result<T, SfuError> {
        let id = self.id;
        self.inner.call(|reply| Cmd::Member { id, cmd: make(reply) }).await
    }

    /// An offer for the publisher connection (first publish or renegotiation); returns the answer.
    pub async fn publish_offer(&self, sdp: &str) -> Result<String, SfuError> {
        crate::check_offer(sdp)?;
        self.call(|r| MemberCmd::PublishOffer(sdp.to_owned(), r)).await
    }

    /// The member's answer to the last [`crate::SfuEvent::SubscriberOffer`].
    pub async fn subscriber_answer(&self, sdp: &str) -> Result<(), SfuError> {
        self.call(|r| MemberCmd::SubscriberAnswer(sdp.to_owned(), r)).await
    }

    /// A remote (trickled) ICE candidate for one of the connections. The node is an ICE-lite
    /// agent, so it learns the member's address from the member's checks; candidates are
    /// accepted (and mDNS `.local` ones ignored) for the record.
    pub async fn add_ice_candidate(&self, which: Pc, candidate: IceCandidate) -> Result<(), SfuError> {
        self.call(|r| MemberCmd::AddIce(which, candidate, r)).await
    }

    /// Restart ICE on the subscriber connection (a new offer follows as an event). The publisher
    /// connection is restarted by the client offering with new credentials.
    pub async fn ice_restart(&self) -> Result<(), SfuError> {
        self.call(MemberCmd::IceRestart).await
    }

    /// Receive `track` at simulcast layer `rid`.
    pub async fn set_layer(&self, track: TrackId, rid: &str) -> Result<(), SfuError> {
        self.call(|r| MemberCmd::SetLayer(track, rid.to_owned(), r)).await
    }

    /// Leave the room; returns once the connections are closed.
    pub async fn leave(mut self) {
        self.left = true;
        let sfu = crate::Sfu { inner: Arc::clone(&self.inner) };
        sfu.close_session(self.id).await;
    }
}

impl Drop for ParticipantHandle {
    fn drop(&mut self) {
        if !self.left {
            // Not awaited: the driver closes the connections on its next turn.
            let (reply, _) = tokio::sync::oneshot::channel();
            self.inner.send(Cmd::Close { id: self.id, reply });
        }
    }
}
