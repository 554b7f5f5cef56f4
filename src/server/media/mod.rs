//! Media on the wire: the WHIP/WHEP endpoints ([`whip`]), websocket media signalling for room
//! members ([`room`]), and the floor hook — all thin shells over `shangliang_sfu::Sfu`. This is
//! the SFU's edge: the hub's typed ids ([`RoomId`], `ParticipantId`) become the SFU's `&str`
//! here and nowhere else.
//!
//! ```text
//! POST   /whep/{activity}            SDP offer → 201 answer, Location /whep/{activity}/{resource}
//! DELETE /whep/{activity}/{resource} closes it
//! POST   /whip/{activity}            Bearer token (member/guest/moderator) + offer → 201 answer
//! DELETE /whip/{activity}/{resource}
//! floor: moderation driver → FloorHook::set_forwarding → SfuFloor → Sfu::set_forwarding
//! ws  {"t":"media","id","req"}       → MediaConn::handle → {"t":"media","id","ev"}
//!     SfuEvent stream                → pump task → the session's inbox → {"t":"media","ev"}
//! ```
//!
//! Resource ids are `{session}-{mac}`: the mac (keyed SHA-256 with a per-process key) makes them
//! unguessable without keeping a table that would have to be pruned when the SFU closes a
//! session on its own (a vanished viewer).

pub mod room;
pub mod whip;

use std::sync::Arc;

use axum::Router;
use sha2::{Digest, Sha256};
use shangliang_sfu::{SessionId, Sfu};
use shangliang_signaling::{ActivityId, ParticipantId, RoomId};

use super::auth::TokenKeys;
use super::moderation::FloorHook;
use crate::bus::Cluster;
use crate::record::Record;

pub use room::MediaConn;

/// What the media handlers need: the media plane, the record (does the activity exist, is it
/// a room), the token keys (WHIP, room WHEP) and, in a cluster, who is home.
#[derive(Clone)]
pub struct MediaState {
    /// The SFU node and its resource key.
    pub media: Arc<Media>,
    /// Activities and their kind.
    pub record: Arc<dyn Record>,
    /// Bearer tokens of WHIP and of a room's WHEP.
    pub keys: Arc<TokenKeys>,
    /// Cluster mode: the activity's media lives on its home node.
    pub cluster: Option<Arc<Cluster>>,
}

/// The WHIP/WHEP routes.
pub fn routes(state: MediaState) -> Router {
    whip::routes().with_state(state)
}

/// The hub's media plane: the SFU node and the key of its resource ids.
pub struct Media {
    /// The SFU node.
    pub sfu: Sfu,
    resource_key: [u8; 32],
}

impl Media {
    /// A media plane over `sfu`.
    pub fn new(sfu: Sfu) -> Self {
        Self {
            sfu,
            resource_key: rand::random(),
        }
    }

    fn mac(&self, kind: &str, activity: &ActivityId, session: SessionId) -> String {
        let mut h = Sha256::new();
        h.update(self.resource_key);
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(activity.as_str().as_bytes());
        h.update([0]);
        h.update(session.0.to_be_bytes());
        hex::encode(&h.finalize()[..12])
    }

    fn resource(&self, kind: &str, activity: &ActivityId, session: SessionId) -> String {
        format!("{}-{}", session.0, self.mac(kind, activity, session))
    }

    fn parse_resource(
        &self,
        kind: &str,
        activity: &ActivityId,
        resource: &str,
    ) -> Option<SessionId> {
        let (n, mac) = resource.split_once('-')?;
        let session = SessionId(n.parse().ok()?);
        (self.mac(kind, activity, session) == mac).then_some(session)
    }

    /// The floor hook the moderation driver calls (installed when the hub starts).
    pub fn floor_hook(&self) -> Arc<dyn FloorHook> {
        Arc::new(SfuFloor(self.sfu.clone()))
    }
}

/// The floor enforced by the SFU: the moderation driver's [`FloorHook`] gates a participant's
/// forwarded audio/video. Participants are named by their token subject in both places.
pub struct SfuFloor(pub Sfu);

impl FloorHook for SfuFloor {
    fn set_forwarding(
        &self,
        activity: &ActivityId,
        participant: &ParticipantId,
        audio: bool,
        video: bool,
    ) {
        self.0
            .set_forwarding(RoomId::of(activity).as_str(), participant.as_str(), audio, video);
    }
}

