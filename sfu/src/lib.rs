//! The shangliang media relay (SFU): every peer connection of the node is a sans-I/O `rtc` 0.21
//! state machine, driven by one driver thread that owns the node's one UDP socket.
//!
//! No HTTP here: the hub's server wires these calls to WHIP/WHEP endpoints and websocket
//! messages.
//!
//! ```text
//! Sfu::whep(room, offer)              → (SessionId, answer)   receive-only viewer of the stage
//! Sfu::whip(room, participant, offer) → (SessionId, answer)   ingest onto the stage
//! Sfu::join(room, participant)        → (ParticipantHandle, events)  member: publisher + subscriber legs
//! Sfu::close_session(id)                                      DELETE of a WHIP/WHEP resource
//! Sfu::set_forwarding(room, participant, audio, video)        the floor, enforced in the media plane
//! Sfu::set_public(room, participant, public)                  the stage: who reaches WHEP viewers and taps
//! Sfu::stage_tap(room)                → StageTap              the stage as events (the hub's programme)
//! Sfu::request_keyframe(room, participant)                    PLI to a publisher's cameras
//! ```
//!
//! Every call is a message to the driver ([`driver`]), which owns all state: rooms, sessions,
//! peer connections, the socket. Layout: [`forward`], [`rewrite`] and [`speaker`] are the pure
//! state machines (unit- and property-tested); `io` is the socket layer (demultiplexing, batched
//! sends); `peer` builds connections; `driver` runs the loop and the sessions; `participant`
//! is a member's signaling handle.

pub mod admission;
pub mod forward;
pub mod rewrite;
pub mod speaker;
pub mod tap;

mod driver;
mod io;
mod participant;
mod peer;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use participant::{ParticipantHandle, Pc};
pub use tap::{StageEvent, StageTap, TapCodec, TapPacket};

use driver::Cmd;

/// Configuration of one SFU node.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Address the node's UDP socket binds to. A wildcard (`0.0.0.0`) needs `announced_ip`.
    pub bind_ip: IpAddr,
    /// Address announced in the ICE candidate instead of `bind_ip` (1:1 NAT, or a wildcard bind).
    pub announced_ip: Option<IpAddr>,
    /// The one UDP port every peer connection of the node shares. `0` lets the OS choose
    /// (read it back with [`Sfu::local_addr`]); the hub's default is 50000.
    pub udp_port: u16,
    /// If `udp_port` is taken, bind any free port instead (with a warning) rather than fail. The
    /// hub sets it for its default port only, so a second hub on a development machine starts;
    /// a port given explicitly is required.
    pub any_port_if_taken: bool,
    /// The ICE-TCP port (RFC 6544 passive candidate, on `bind_ip`, announced like the UDP one):
    /// clients whose network blocks UDP connect over TCP to it. `None`: no TCP candidate; `0`:
    /// any free port (read it back with [`Sfu::tcp_addr`]).
    pub tcp_port: Option<u16>,
    /// ICE-TCP connections open at once, at most (each belongs to one peer connection).
    pub max_tcp_connections: usize,
    /// Distinct publishing/joined participants per room.
    pub max_participants_per_room: usize,
    /// Receive-only (WHEP) viewers on this node.
    pub max_viewers_per_node: usize,
    /// A negotiated connection whose ICE has not completed by then is released. The SFU is an
    /// ICE-lite agent and never fails a connection that no check ever reached by itself.
    pub ice_timeout: Duration,
    /// WHEP viewers whose ICE and DTLS have not completed yet (*pending*), at most; they are
    /// capped apart from the connected ones, so unfinished offers cannot take a viewer's place.
    pub max_pending_viewers: usize,
    /// A pending viewer is released if it has not connected by then (the lesser of this and
    /// `ice_timeout`): an offer that never connects holds nothing for long.
    pub pending_timeout: Duration,
    /// WHEP offers per minute from one client address ([`Sfu::whep_from`]; an IPv6 /64 is one
    /// address); 0: no limit.
    pub whep_per_address_per_minute: u32,
    /// Offers one address may make at once before the per-minute rate applies.
    pub whep_burst: u32,
    /// Unauthenticated WHEP offers per minute to one activity (room) from all addresses
    /// together ([`SfuError::ActivityRateLimited`]): a flood spread over many addresses cannot
    /// take one livestream's capacity; 0: no limit.
    pub whep_per_activity_per_minute: u32,
    /// Offers one activity may take at once before its per-minute rate applies (the start of a
    /// livestream, when its audience arrives together).
    pub whep_activity_burst: u32,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announced_ip: None,
            udp_port: 0,
            any_port_if_taken: false,
            tcp_port: None,
            max_tcp_connections: 10_000,
            max_participants_per_room: 50,
            max_viewers_per_node: 5_000,
            ice_timeout: Duration::from_secs(30),
            max_pending_viewers: 256,
            pending_timeout: Duration::from_secs(5),
            whep_per_address_per_minute: 60,
            whep_burst: 10,
            whep_per_activity_per_minute: 6_000,
            whep_activity_burst: 1_000,
        }
    }
}

/// Identifies a WHIP/WHEP session or a member's participation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// Identifies a published track within this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// An ICE candidate as exchanged over signaling (trickle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    /// The `candidate:...` attribute.
    pub candidate: String,
    /// The media section's mid.
    pub sdp_mid: Option<String>,
    /// The media section's index.
    pub sdp_mline_index: Option<u16>,
}

/// What a member's session reports to its signaling connection.
#[derive(Debug, Clone)]
pub enum SfuEvent {
    /// A new offer for the subscriber connection; reply with [`ParticipantHandle::subscriber_answer`].
    SubscriberOffer {
        /// The SDP offer.
        sdp: String,
    },
    /// A local ICE candidate of one of the member's connections. The single-port core never
    /// sends one: its only candidate (the node's socket) is in every offer and answer already.
    IceCandidate {
        /// Which connection.
        which: Pc,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Another participant published a track.
    TrackPublished {
        /// Who.
        participant: String,
        /// The track.
        track: TrackId,
        /// Audio or video.
        kind: MediaKind,
    },
    /// A track went away.
    TrackUnpublished {
        /// Who.
        participant: String,
        /// The track.
        track: TrackId,
        /// Audio or video.
        kind: MediaKind,
    },
    /// The dominant speaker changed.
    ActiveSpeaker {
        /// Who speaks.
        participant: String,
    },
    /// One of the member's connections changed state.
    ConnectionState {
        /// Which connection.
        which: Pc,
        /// The new state (`connected`, `failed`, ...).
        state: String,
    },
}

/// A snapshot of the node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// Rooms with anyone or anything in them.
    pub rooms: usize,
    /// Open WHIP/WHEP sessions and member participations.
    pub sessions: usize,
    /// Open peer connections.
    pub peer_connections: usize,
    /// Tasks the SFU runs per session. Always 0 since the sans-I/O core: a session is state in
    /// the driver, not a task (the driver thread itself belongs to the node).
    pub tasks_alive: usize,
    /// RTP packets received from publishers (media SSRCs).
    pub ingested_packets: u64,
    /// RTP packets handed to subscriber connections.
    pub forwarded_packets: u64,
    /// Datagrams the kernel refused to send (a full socket buffer); the old per-viewer channel
    /// lag is gone with the channels.
    pub lagged_packets: u64,
    /// PLI/FIR received from subscribers.
    pub keyframe_requests_in: u64,
    /// WHEP viewers admitted whose connection is not up yet (capped by `max_pending_viewers`).
    pub pending_viewers: usize,
    /// WHEP offers refused: too many from one address ([`SfuError::RateLimited`]).
    pub refused_rate_limited: u64,
    /// WHEP offers refused: too many to one activity ([`SfuError::ActivityRateLimited`]).
    pub refused_activity_rate_limited: u64,
    /// WHEP offers refused: too many pending ([`SfuError::TooManyPending`]).
    pub refused_pending: u64,
    /// WHEP offers refused: the node's connected viewers are at their limit ([`SfuError::NodeFull`]).
    pub refused_node_full: u64,
    /// Pending viewers released because they did not connect within `pending_timeout`.
    pub expired_pending: u64,
}

/// What the node's socket did: how well sends and receives are batched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// `sendmsg` calls (each one GSO transmit: several datagrams to one destination).
    pub sends: u64,
    /// Datagrams those calls carried.
    pub datagrams_sent: u64,
    /// `recvmmsg` calls that returned data.
    pub receives: u64,
    /// Datagrams received (GRO trains counted per datagram).
    pub datagrams_received: u64,
    /// Datagrams no connection claimed (unknown address and ufrag).
    pub unrouted: u64,
    /// Datagrams per GSO send this socket allows (1: the kernel has no `UDP_SEGMENT`).
    pub max_gso_segments: u64,
    /// ICE-TCP connections open now.
    pub tcp_connections: usize,
    /// ICE-TCP connections closed at accept because `max_tcp_connections` were open.
    pub tcp_refused: u64,
}

/// Everything that can go wrong, one enum (map to HTTP/websocket codes at the edge).
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    /// The SDP could not be parsed or applied.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// The room already has its maximum number of participants.
    #[error("room {room} is full ({max} participants)")]
    RoomFull {
        /// The room.
        room: String,
        /// Its limit.
        max: usize,
    },
    /// The node already serves its maximum number of viewers.
    #[error("node is full ({max} viewers)")]
    NodeFull {
        /// The limit.
        max: usize,
    },
    /// The node's UDP port (or its ICE-TCP port) could not be bound (see [`Sfu::bind`]). Peer connections no longer
    /// take a port each, so sessions never fail with it.
    #[error("the SFU's UDP port is not available")]
    NoPorts,
    /// Too many WHEP offers from this client address; retry later.
    #[error("too many offers from this address; retry in a minute")]
    RateLimited,
    /// Too many unauthenticated WHEP offers to this activity from all addresses together; retry
    /// in a few seconds.
    #[error("too many viewers are arriving at this activity; retry in a few seconds")]
    ActivityRateLimited,
    /// Too many viewers are connecting at once (admitted, not connected yet); retry shortly.
    #[error("too many viewers are connecting ({max}); retry in a few seconds")]
    TooManyPending {
        /// The limit.
        max: usize,
    },
    /// Unknown or already closed session.
    #[error("no such session: {0}")]
    NoSuchSession(SessionId),
    /// The request is not allowed for this kind of session.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// A step did not complete in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The session is closed.
    #[error("session closed")]
    Closed,
    /// An error from the WebRTC stack.
    #[error("webrtc: {0}")]
    WebRtc(String),
}

impl SfuError {
    pub(crate) fn webrtc(e: impl std::fmt::Display) -> Self {
        SfuError::WebRtc(e.to_string())
    }
}

/// Counters the driver keeps and [`Sfu::stats`] reads (gauges are set by the driver after each
/// change, before it replies, so a caller sees its own change).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub forwarded: AtomicU64,
    pub ingested: AtomicU64,
    pub refused: AtomicU64,
    pub keyframe_requests_in: AtomicU64,
    pub sends: AtomicU64,
    pub datagrams_sent: AtomicU64,
    pub receives: AtomicU64,
    pub datagrams_received: AtomicU64,
    pub unrouted: AtomicU64,
    pub max_gso_segments: AtomicU64,
    pub tcp_connections: AtomicUsize,
    pub tcp_refused: AtomicU64,
    pub rooms: AtomicUsize,
    pub sessions: AtomicUsize,
    pub pcs: AtomicUsize,
    pub pending_viewers: AtomicUsize,
    pub refused_rate_limited: AtomicU64,
    pub refused_activity_rate_limited: AtomicU64,
    pub refused_pending: AtomicU64,
    pub refused_node_full: AtomicU64,
    pub expired_pending: AtomicU64,
}

pub(crate) struct Inner {
    cfg: SfuConfig,
    cmds: mpsc::UnboundedSender<Cmd>,
    counters: Arc<Counters>,
    local_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
}

impl Inner {
    /// Send `make(reply)` to the driver and wait for the reply.
    pub(crate) async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> Cmd) -> Result<T, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(make(tx)).map_err(|_| SfuError::Closed)?;
        match tokio::time::timeout(Duration::from_secs(15), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(SfuError::Closed),
            Err(_) => Err(SfuError::Timeout("the SFU driver did not answer")),
        }
    }

    pub(crate) fn send(&self, cmd: Cmd) {
        let _ = self.cmds.send(cmd);
    }
}

/// The SFU node. Cheap to clone; all clones share the node. The node's driver thread ends when
/// the last clone (and the last [`ParticipantHandle`]) is dropped.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sfu({})", self.inner.local_addr)
    }
}

impl Sfu {
    /// A node with `cfg`: binds its UDP socket and starts its driver thread.
    ///
    /// # Panics
    /// If the UDP port cannot be bound; use [`Sfu::bind`] to handle that.
    pub fn new(cfg: SfuConfig) -> Sfu {
        match Self::bind(cfg) {
            Ok(s) => s,
            Err(e) => panic!("SFU: {e}"),
        }
    }

    /// A node with `cfg`, or why its UDP socket could not be bound.
    pub fn bind(cfg: SfuConfig) -> Result<Sfu, SfuError> {
        let bind = SocketAddr::new(cfg.bind_ip, cfg.udp_port);
        let announced = cfg.announced_ip.unwrap_or(cfg.bind_ip);
        if announced.is_unspecified() {
            return Err(SfuError::NotAllowed(format!("bind address {} is a wildcard: set an announced address", cfg.bind_ip)));
        }
        let socket = match io::udp::bind(bind) {
            Ok(s) => s,
            Err(e) if cfg.any_port_if_taken && e.kind() == std::io::ErrorKind::AddrInUse => {
                let any = SocketAddr::new(cfg.bind_ip, 0);
                let s = io::udp::bind(any).map_err(|e| {
                    tracing::error!("SFU: cannot bind UDP {any}: {e}");
                    SfuError::NoPorts
                })?;
                tracing::warn!("SFU: UDP {bind} is taken; media uses {} instead (give --rtc-udp-port to require a port)", s.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()));
                s
            }
            Err(e) => {
                tracing::error!("SFU: cannot bind UDP {bind}: {e}");
                return Err(SfuError::NoPorts);
            }
        };
        let local_addr = socket.local_addr().map_err(|_| SfuError::NoPorts)?;
        let candidate = SocketAddr::new(announced, local_addr.port());
        let tcp = match cfg.tcp_port {
            None => None,
            Some(port) => {
                let at = SocketAddr::new(cfg.bind_ip, port);
                let listener = io::tcp::bind(at).map_err(|e| {
                    tracing::error!("SFU: cannot listen on TCP {at} for ICE-TCP: {e}");
                    SfuError::NoPorts
                })?;
                let bound = listener.local_addr().map_err(|_| SfuError::NoPorts)?;
                Some(driver::TcpListen { listener, candidate: SocketAddr::new(announced, bound.port()) })
            }
        };
        let tcp_addr = tcp.as_ref().and_then(|t| t.listener.local_addr().ok());
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::unbounded_channel();
        driver::spawn(cfg.clone(), socket, candidate, tcp, rx, Arc::clone(&counters))?;
        Ok(Sfu { inner: Arc::new(Inner { cfg, cmds: tx, counters, local_addr, tcp_addr }) })
    }

    /// The node's configuration.
    pub fn config(&self) -> &SfuConfig {
        &self.inner.cfg
    }

    /// The node's UDP socket address (its one port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The node's ICE-TCP listener address, if it has one ([`SfuConfig::tcp_port`]).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.inner.tcp_addr
    }

    /// A receive-only viewer of the room's stage (WHEP). The offer must be receive-only; each of
    /// its audio/video sections is fed from one published track of that kind (the active
    /// speaker's first), switching sources as the stage changes without breaking the stream.
    pub async fn whep(&self, room: &str, offer_sdp: &str) -> Result<(SessionId, String), SfuError> {
        self.whep_from(room, offer_sdp, None).await
    }

    /// [`Sfu::whep`] for an offer that arrived from `from` without credentials (a public
    /// livestream): admitted at most `whep_burst` at once and `whep_per_address_per_minute`
    /// per client address ([`SfuError::RateLimited`]). `None`: not rate-limited (the caller
    /// authenticated it). Either way a viewer is *pending* until its connection is up, capped by
    /// `max_pending_viewers` ([`SfuError::TooManyPending`]) and released after
    /// `pending_timeout`; only connected viewers count against `max_viewers_per_node`.
    pub async fn whep_from(&self, room: &str, offer_sdp: &str, from: Option<IpAddr>) -> Result<(SessionId, String), SfuError> {
        check_offer(offer_sdp)?;
        let kinds = media_sections(offer_sdp)?;
        if let Some((k, d)) = peer::media_directions(offer_sdp)
            .into_iter()
            .find(|(k, d)| matches!(*k, "audio" | "video") && matches!(*d, "sendrecv" | "sendonly"))
        {
            return Err(SfuError::NotAllowed(format!("a viewer offer must be receive-only ({k} is {d})")));
        }
        let (room, offer) = (room.to_owned(), offer_sdp.to_owned());
        self.inner.call(|reply| Cmd::Whep { room, offer, kinds, from, reply }).await
    }

    /// Ingest (WHIP): `participant` puts audio/video on the room's stage. Publish rights are
    /// checked by the caller; an anonymous publisher is refused.
    pub async fn whip(&self, room: &str, participant: &str, offer_sdp: &str) -> Result<(SessionId, String), SfuError> {
        if participant.trim().is_empty() {
            return Err(SfuError::NotAllowed("publishing requires a participant".into()));
        }
        check_offer(offer_sdp)?;
        media_sections(offer_sdp)?;
        if !peer::media_directions(offer_sdp).iter().any(|(k, d)| matches!(*k, "audio" | "video") && matches!(*d, "sendrecv" | "sendonly")) {
            return Err(SfuError::InvalidSdp("the offer sends no media".into()));
        }
        let (room, participant, offer) = (room.to_owned(), participant.to_owned(), offer_sdp.to_owned());
        self.inner.call(|reply| Cmd::Whip { room, participant, offer, reply }).await
    }

    /// Close a WHIP/WHEP session or a member's participation; returns once its connections are
    /// closed and forgotten. False if no such session.
    pub async fn close_session(&self, id: SessionId) -> bool {
        self.inner.call(|reply| Cmd::Close { id, reply }).await.unwrap_or(false)
    }

    /// Choose the simulcast layer (by rid) a viewer session receives.
    pub async fn set_viewer_layer(&self, id: SessionId, rid: &str) -> Result<(), SfuError> {
        let layer = layer_index(rid);
        self.inner.call(|reply| Cmd::ViewerLayer { id, layer, reply }).await
    }

    /// A member joins the room: returns the handle for signaling and the event stream.
    pub async fn join(&self, room: &str, participant: &str) -> Result<(ParticipantHandle, mpsc::Receiver<SfuEvent>), SfuError> {
        if participant.trim().is_empty() {
            return Err(SfuError::NotAllowed("joining requires a participant".into()));
        }
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let (room, who) = (room.to_owned(), participant.to_owned());
        let id = self.inner.call(|reply| Cmd::Join { room, participant: who, events: ev_tx, reply }).await?;
        Ok((ParticipantHandle::new(id, participant.to_owned(), Arc::clone(&self.inner)), ev_rx))
    }

    /// The floor: allow or stop forwarding `participant`'s audio and video to everyone else.
    /// Takes effect on the next packet; re-opening video waits for a keyframe.
    pub fn set_forwarding(&self, room: &str, participant: &str, audio: bool, video: bool) {
        self.inner.send(Cmd::Floor { room: room.to_owned(), participant: participant.to_owned(), audio, video });
    }

    /// The public gate of a livestream: whether `participant`'s tracks reach the *public* —
    /// WHEP viewers' slots and the stage taps (the programme) — while members in the room keep
    /// receiving them (under the floor gates above). Unknown participants are public, as with
    /// the floor gates. Closing it takes their tracks off every viewer slot and removes them from
    /// the taps (`TrackRemoved`) at once; opening it offers them again (`TrackAdded`, and a
    /// keyframe request when a slot switches to them).
    pub fn set_public(&self, room: &str, participant: &str, public: bool) {
        self.inner.send(Cmd::Public { room: room.to_owned(), participant: participant.to_owned(), public });
    }

    /// End every session `participant` has in `room` (a member's participation, WHIP
    /// ingests): a moderator banned them. Their tracks are unpublished at once; a member's
    /// event stream ends, so its signaling learns it has left.
    pub fn evict(&self, room: &str, participant: &str) {
        self.inner.send(Cmd::Evict { room: room.to_owned(), participant: participant.to_owned() });
    }

    /// The room's stage as a stream of events (see [`tap`]). While a tap is open the room is a
    /// stage: kept when idle, and its members' publisher connections prefer H.264.
    pub fn stage_tap(&self, room: &str) -> StageTap {
        tap::open(&self.inner, room)
    }

    /// Asks `participant`'s cameras in `room` for a keyframe (PLI, throttled per track); false
    /// if they publish no video there.
    pub async fn request_keyframe(&self, room: &str, participant: &str) -> bool {
        let (room, participant) = (room.to_owned(), participant.to_owned());
        self.inner.call(|reply| Cmd::KeyframeFor { room, participant, reply }).await.unwrap_or(false)
    }

    /// Counters of this node.
    pub fn stats(&self) -> SfuStats {
        let c = &self.inner.counters;
        SfuStats {
            rooms: c.rooms.load(Ordering::SeqCst),
            sessions: c.sessions.load(Ordering::SeqCst),
            peer_connections: c.pcs.load(Ordering::SeqCst),
            tasks_alive: 0,
            ingested_packets: c.ingested.load(Ordering::Relaxed),
            forwarded_packets: c.forwarded.load(Ordering::Relaxed),
            lagged_packets: c.refused.load(Ordering::Relaxed),
            keyframe_requests_in: c.keyframe_requests_in.load(Ordering::Relaxed),
            pending_viewers: c.pending_viewers.load(Ordering::SeqCst),
            refused_rate_limited: c.refused_rate_limited.load(Ordering::Relaxed),
            refused_activity_rate_limited: c.refused_activity_rate_limited.load(Ordering::Relaxed),
            refused_pending: c.refused_pending.load(Ordering::Relaxed),
            refused_node_full: c.refused_node_full.load(Ordering::Relaxed),
            expired_pending: c.expired_pending.load(Ordering::Relaxed),
        }
    }
}

impl Sfu {
    /// Counters of the node's socket (batching of sends and receives).
    pub fn io_stats(&self) -> IoStats {
        let c = &self.inner.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IoStats {
            sends: r(&c.sends),
            datagrams_sent: r(&c.datagrams_sent),
            receives: r(&c.receives),
            datagrams_received: r(&c.datagrams_received),
            unrouted: r(&c.unrouted),
            max_gso_segments: r(&c.max_gso_segments),
            tcp_connections: c.tcp_connections.load(Ordering::Relaxed),
            tcp_refused: r(&c.tcp_refused),
        }
    }
}

/// Layer index for a rid when the publisher's naming is unknown to the caller.
pub(crate) fn layer_index(rid: &str) -> usize {
    match rid {
        "q" | "l" | "low" => 0,
        "h" | "m" | "mid" => 1,
        "f" | "high" => 2,
        other => other.parse().unwrap_or(2),
    }
}

fn check_offer(sdp: &str) -> Result<(), SfuError> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(SfuError::InvalidSdp("not an SDP (must start with v=0)".into()));
    }
    rtc::peer_connection::sdp::RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
    Ok(())
}

fn media_sections(sdp: &str) -> Result<Vec<MediaKind>, SfuError> {
    let kinds: Vec<MediaKind> = peer::media_directions(sdp)
        .into_iter()
        .filter_map(|(k, _)| match k {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        })
        .collect();
    if kinds.is_empty() {
        return Err(SfuError::InvalidSdp("no audio or video section".into()));
    }
    Ok(kinds)
}
