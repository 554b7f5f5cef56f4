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
//! stage: moderation driver → FloorHook::set_public     → SfuFloor → Sfu::set_public (livestreams)
//! ws  {"t":"media","id","req"}       → MediaConn::handle → {"t":"media","id","ev"}
//!     SfuEvent stream                → pump task → the session's inbox → {"t":"media","ev"}
//! ```
//!
//! Resource ids are `{session}-{mac}`: the mac (keyed SHA-256 with a per-process key) makes them
//! unguessable without keeping a table that would have to be pruned when the SFU closes a
//! session on its own (a vanished viewer).

pub mod room;
pub mod turn;
pub mod whip;

use std::sync::Arc;

use axum::Router;
use sha2::{Digest, Sha256};
use shangliang_sfu::{SessionId, Sfu};
use shangliang_signaling::{ActivityId, ParticipantId, RoomId};

use super::auth::TokenKeys;
use super::moderation::{DriverMsg, FloorHook, Registry};
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
    /// Where bans are looked up (installed when the hub starts; unset, nobody is banned).
    moderation: std::sync::OnceLock<Registry>,
    /// TURN servers handed to clients (installed when the hub starts; unset, none).
    turn: std::sync::OnceLock<turn::TurnConfig>,
}

/// Why the moderation state refuses someone media.
pub(crate) enum Standing {
    /// A moderator banned them from the activity.
    Banned,
    /// The activity's moderation did not answer (fail closed: a ban cannot be checked).
    Unavailable(String),
}

impl Media {
    /// A media plane over `sfu`.
    pub fn new(sfu: Sfu) -> Self {
        Self {
            sfu,
            resource_key: rand::random(),
            moderation: std::sync::OnceLock::new(),
            turn: std::sync::OnceLock::new(),
        }
    }

    /// Installs the TURN servers handed to clients with time-limited credentials.
    pub fn set_turn(&self, turn: turn::TurnConfig) {
        let _ = self.turn.set(turn);
    }

    /// The ICE servers for `subject`'s peer connections now (empty without TURN).
    pub fn ice_servers(&self, subject: &str) -> Vec<shangliang_signaling::media::IceServer> {
        self.turn.get().map(|t| vec![t.ice_server(subject, crate::server::auth::now_secs())]).unwrap_or_default()
    }

    /// The `Link: …; rel="ice-server"` values of a WHIP/WHEP answer for `subject`.
    pub(crate) fn ice_links(&self, subject: &str) -> Vec<String> {
        self.turn.get().map(|t| t.link_headers(subject, crate::server::auth::now_secs())).unwrap_or_default()
    }

    /// Installs where bans are checked before a `join`, a publish offer or a WHIP ingest.
    pub fn set_moderation(&self, registry: Registry) {
        let _ = self.moderation.set(registry);
    }

    /// Whether `who` may take part in `activity`'s media: not banned (asked of the activity's
    /// moderation driver, on its home node in a cluster).
    pub(crate) async fn standing(&self, activity: &ActivityId, who: &ParticipantId) -> Result<(), Standing> {
        let Some(registry) = self.moderation.get() else { return Ok(()) };
        let unavailable = |why: &str| Standing::Unavailable(format!("the activity's moderation is not available ({why}); retry"));
        let tx = registry.sender(activity).ok_or_else(|| unavailable("no driver"))?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        tx.send(DriverMsg::Banned { who: who.clone(), reply }).await.map_err(|_| unavailable("stopped"))?;
        match tokio::time::timeout(std::time::Duration::from_secs(5), rx).await {
            Ok(Ok(Ok(false))) => Ok(()),
            Ok(Ok(Ok(true))) => {
                metrics::counter!("shangliang_media_refused_total", "reason" => "banned").increment(1);
                Err(Standing::Banned)
            }
            Ok(Ok(Err((_, m)))) => Err(Standing::Unavailable(m)),
            Ok(Err(_)) => Err(unavailable("no answer")),
            Err(_) => Err(unavailable("timed out")),
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

    fn set_public(&self, activity: &ActivityId, participant: &ParticipantId, public: bool) {
        self.0.set_public(RoomId::of(activity).as_str(), participant.as_str(), public);
    }

    fn banned(&self, activity: &ActivityId, participant: &ParticipantId) {
        self.0.evict(RoomId::of(activity).as_str(), participant.as_str());
    }
}

