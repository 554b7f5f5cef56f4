//! The shangliang media relay (SFU) on `webrtc` 0.21.
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
//! Sfu::stage_tap(room)                → StageTap              the stage as events (the hub's programme)
//! Sfu::request_keyframe(room, participant)                    PLI to a publisher's cameras
//! ```
//!
//! Layout: [`rewrite`] and [`speaker`] are the pure state machines (unit- and property-tested);
//! `peer` builds connections, `room` holds the stage, `forward` moves packets, `participant`
//! drives a member's two connections. See `WEBRTC-NOTES.md` for why things are done as they are.

pub mod rewrite;
pub mod speaker;
pub mod tap;

mod forward;
mod participant;
mod peer;
mod room;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

pub use participant::{ParticipantHandle, Pc};
pub use tap::{StageEvent, StageTap, TapCodec, TapPacket};

use forward::{FwdCmd, IngestCtx, Outgoing, random_u32};
use peer::{BuiltPc, PcEvent, PortPool};
use room::{PublishedTrack, Room};

/// Configuration of one SFU node.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Address the UDP sockets bind to. Must be a concrete address (not a wildcard).
    pub bind_ip: IpAddr,
    /// Address announced in candidates instead of `bind_ip` (1:1 NAT), if any.
    pub announced_ip: Option<IpAddr>,
    /// UDP ports, inclusive; one per peer connection (webrtc 0.21 has no UDP mux).
    /// `(0, 0)` lets the OS choose.
    pub udp_port_range: (u16, u16),
    /// Distinct publishing/joined participants per room.
    pub max_participants_per_room: usize,
    /// Receive-only (WHEP) viewers on this node.
    pub max_viewers_per_node: usize,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announced_ip: None,
            udp_port_range: (50_000, 59_999),
            max_participants_per_room: 50,
            max_viewers_per_node: 5_000,
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
    /// A local ICE candidate of one of the member's connections.
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
    /// SFU tasks alive (drivers, ingest, forwarders, RTCP readers).
    pub tasks_alive: usize,
    /// RTP packets received from publishers (media SSRCs).
    pub ingested_packets: u64,
    /// RTP packets handed to subscriber connections.
    pub forwarded_packets: u64,
    /// Packets skipped because a subscriber's fan-out receiver lagged.
    pub lagged_packets: u64,
    /// PLI/FIR received from subscribers.
    pub keyframe_requests_in: u64,
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
    /// No UDP port is free in the configured range.
    #[error("no free UDP port in the configured range")]
    NoPorts,
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

/// Counters shared by every task; read by [`Sfu::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub forwarded: AtomicU64,
    pub ingested: AtomicU64,
    pub lagged: AtomicU64,
    pub keyframe_requests_in: AtomicU64,
    pub tasks: AtomicUsize,
    pub pcs: AtomicUsize,
    pub viewers: AtomicUsize,
}

/// Counts a task as alive for as long as it is held.
pub(crate) struct TaskGuard(Arc<Counters>);

impl TaskGuard {
    pub fn new(c: &Arc<Counters>) -> Self {
        c.tasks.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(c))
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A session's stop switch and its "cleaned up" signal.
struct SessionEntry {
    cancel: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    /// Commands to a viewer session (layer choice).
    viewer_cmds: Option<mpsc::Sender<FwdCmd>>,
}

pub(crate) struct Inner {
    cfg: SfuConfig,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    sessions: Mutex<HashMap<SessionId, SessionEntry>>,
    ports: Mutex<PortPool>,
    next_id: AtomicU64,
    next_track_id: Arc<AtomicU64>,
    counters: Arc<Counters>,
    /// Rooms with open stage taps (and how many): kept while idle, publishers asked for H.264.
    stages: Mutex<HashMap<String, usize>>,
}

/// The SFU node. Cheap to clone; all clones share the node.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<Inner>,
}

impl Sfu {
    /// A node with `cfg`. Must be called within a tokio runtime before any session is opened.
    pub fn new(cfg: SfuConfig) -> Sfu {
        let ports = PortPool::new(cfg.udp_port_range);
        Sfu {
            inner: Arc::new(Inner {
                cfg,
                rooms: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                ports: Mutex::new(ports),
                next_id: AtomicU64::new(1),
                next_track_id: Arc::new(AtomicU64::new(1)),
                counters: Arc::new(Counters::default()),
                stages: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The node's configuration.
    pub fn config(&self) -> &SfuConfig {
        &self.inner.cfg
    }

    /// A receive-only viewer of the room's stage (WHEP). The offer must be receive-only; each of
    /// its audio/video sections is fed from one published track of that kind (the active
    /// speaker's first), switching sources as the stage changes without breaking the stream.
    pub async fn whep(&self, room: &str, offer_sdp: &str) -> Result<(SessionId, String), SfuError> {
        let offer = parse_offer(offer_sdp)?;
        let kinds: Vec<MediaKind> = media_sections(offer_sdp)?;
        if let Some((k, d)) = peer::media_directions(offer_sdp)
            .into_iter()
            .find(|(k, d)| matches!(*k, "audio" | "video") && matches!(*d, "sendrecv" | "sendonly"))
        {
            return Err(SfuError::NotAllowed(format!("a viewer offer must be receive-only ({k} is {d})")));
        }
        let c = &self.inner.counters;
        let max = self.inner.cfg.max_viewers_per_node;
        if c.viewers.fetch_add(1, Ordering::SeqCst) >= max {
            c.viewers.fetch_sub(1, Ordering::SeqCst);
            return Err(SfuError::NodeFull { max });
        }
        let room = self.inner.room(room);
        room.state.lock().expect("room").viewers += 1;
        let undo = |inner: &Arc<Inner>, room: &Arc<Room>| {
            inner.counters.viewers.fetch_sub(1, Ordering::SeqCst);
            room.state.lock().expect("room").viewers -= 1;
            inner.forget_room_if_idle(room);
        };
        let built = match peer::build_pc(self.inner.cfg.bind_ip, self.inner.cfg.announced_ip, &self.inner.ports, false).await {
            Ok(b) => b,
            Err(e) => {
                undo(&self.inner, &room);
                return Err(e);
            }
        };
        self.inner.counters.pcs.fetch_add(1, Ordering::SeqCst);
        let id = self.inner.new_session_id();
        match self.inner.clone().start_viewer(id, &room, built, offer, kinds).await {
            Ok(answer) => Ok((id, answer)),
            Err(e) => {
                undo(&self.inner, &room);
                Err(e)
            }
        }
    }

    /// Ingest (WHIP): `participant` puts audio/video on the room's stage. Publish rights are
    /// checked by the caller; an anonymous publisher is refused.
    pub async fn whip(&self, room: &str, participant: &str, offer_sdp: &str) -> Result<(SessionId, String), SfuError> {
        if participant.trim().is_empty() {
            return Err(SfuError::NotAllowed("publishing requires a participant".into()));
        }
        // WHIP is ingest onto a stage: ask for H.264, which the programme packages as is.
        let offer_sdp = &peer::prefer_h264(offer_sdp);
        let offer = parse_offer(offer_sdp)?;
        media_sections(offer_sdp)?;
        if !peer::media_directions(offer_sdp)
            .iter()
            .any(|(k, d)| matches!(*k, "audio" | "video") && matches!(*d, "sendrecv" | "sendonly"))
        {
            return Err(SfuError::InvalidSdp("the offer sends no media".into()));
        }
        let room = self.inner.room(room);
        let gates = room.enter(participant, self.inner.cfg.max_participants_per_room).inspect_err(|_| {
            self.inner.forget_room_if_idle(&room);
        })?;
        let built = match peer::build_pc(self.inner.cfg.bind_ip, self.inner.cfg.announced_ip, &self.inner.ports, true).await {
            Ok(b) => b,
            Err(e) => {
                room.leave(participant);
                self.inner.forget_room_if_idle(&room);
                return Err(e);
            }
        };
        self.inner.counters.pcs.fetch_add(1, Ordering::SeqCst);
        let id = self.inner.new_session_id();
        let ctx = IngestCtx {
            room: Arc::clone(&room),
            participant: participant.to_owned(),
            gates,
            audio_level_id: peer::extmap_id(offer_sdp, peer::AUDIO_LEVEL_URI),
            rids: peer::offered_rids(offer_sdp),
            counters: Arc::clone(&self.inner.counters),
            next_track_id: Arc::clone(&self.inner.next_track_id),
            published: Default::default(),
        };
        match self.inner.clone().start_publisher(id, built, offer, ctx).await {
            Ok(answer) => Ok((id, answer)),
            Err(e) => {
                room.leave(participant);
                self.inner.forget_room_if_idle(&room);
                Err(e)
            }
        }
    }

    /// Close a WHIP/WHEP session or a member's participation and wait (bounded) until its
    /// connection, sockets and tasks are released. False if no such session.
    pub async fn close_session(&self, id: SessionId) -> bool {
        let done = {
            let sessions = self.inner.sessions.lock().expect("sessions");
            let Some(e) = sessions.get(&id) else { return false };
            e.cancel.send_replace(true);
            e.done.clone()
        };
        wait_done(done).await;
        true
    }

    /// Choose the simulcast layer (by rid) a viewer session receives.
    pub async fn set_viewer_layer(&self, id: SessionId, rid: &str) -> Result<(), SfuError> {
        let tx = {
            let sessions = self.inner.sessions.lock().expect("sessions");
            let e = sessions.get(&id).ok_or(SfuError::NoSuchSession(id))?;
            e.viewer_cmds.clone().ok_or_else(|| SfuError::NotAllowed("not a viewer session".into()))?
        };
        tx.send(FwdCmd::Layer(layer_index(rid))).await.map_err(|_| SfuError::Closed)
    }

    /// A member joins the room: returns the handle for signaling and the event stream.
    pub async fn join(&self, room: &str, participant: &str) -> Result<(ParticipantHandle, mpsc::Receiver<SfuEvent>), SfuError> {
        if participant.trim().is_empty() {
            return Err(SfuError::NotAllowed("joining requires a participant".into()));
        }
        participant::join(Arc::clone(&self.inner), room, participant).await
    }

    /// The floor: allow or stop forwarding `participant`'s audio and video to everyone else.
    /// Takes effect on the next packet; re-opening video waits for a keyframe.
    pub fn set_forwarding(&self, room: &str, participant: &str, audio: bool, video: bool) {
        let room = self.inner.room(room);
        let g = room.gates(participant);
        g.audio.store(audio, Ordering::SeqCst);
        g.video.store(video, Ordering::SeqCst);
        self.inner.forget_room_if_idle(&room);
    }

    /// The room's stage as a stream of events (see [`tap`]). While a tap is open the room is a
    /// stage: kept when idle, and its members' publisher connections prefer H.264.
    pub fn stage_tap(&self, room: &str) -> StageTap {
        tap::open(&self.inner, room)
    }

    /// Asks `participant`'s cameras in `room` for a keyframe (PLI, throttled per track); false
    /// if they publish no video there.
    pub async fn request_keyframe(&self, room: &str, participant: &str) -> bool {
        tap::request_keyframe(&self.inner, room, participant).await
    }

    /// Counters of this node.
    pub fn stats(&self) -> SfuStats {
        let c = &self.inner.counters;
        SfuStats {
            rooms: self.inner.rooms.lock().expect("rooms").len(),
            sessions: self.inner.sessions.lock().expect("sessions").len(),
            peer_connections: c.pcs.load(Ordering::SeqCst),
            tasks_alive: c.tasks.load(Ordering::SeqCst),
            ingested_packets: c.ingested.load(Ordering::Relaxed),
            forwarded_packets: c.forwarded.load(Ordering::Relaxed),
            lagged_packets: c.lagged.load(Ordering::Relaxed),
            keyframe_requests_in: c.keyframe_requests_in.load(Ordering::Relaxed),
        }
    }
}

/// Layer index for a rid when the publisher's naming is unknown to the caller.
fn layer_index(rid: &str) -> usize {
    match rid {
        "q" | "l" | "low" => 0,
        "h" | "m" | "mid" => 1,
        "f" | "high" => 2,
        other => other.parse().unwrap_or(2),
    }
}

async fn wait_done(mut done: watch::Receiver<bool>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
}

fn parse_offer(sdp: &str) -> Result<RTCSessionDescription, SfuError> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(SfuError::InvalidSdp("not an SDP (must start with v=0)".into()));
    }
    RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| SfuError::InvalidSdp(e.to_string()))
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

pub(crate) fn default_codec(kind: MediaKind) -> RTCRtpCodec {
    match kind {
        MediaKind::Audio => RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        MediaKind::Video => RTCRtpCodec {
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    }
}

/// A send track with one fixed SSRC for a subscriber leg.
pub(crate) fn outgoing_track(kind: MediaKind, codec: RTCRtpCodec, ssrc: u32, label: &str) -> Arc<TrackLocalStaticRTP> {
    let rtp_kind = match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("sl-{label}"),
        format!("sl-{label}-{ssrc}"),
        format!("sl-{label}-{ssrc}"),
        rtp_kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    )))
}

/// An outgoing slot of a subscriber leg: the forwarder's control channel and current source.
pub(crate) struct Slot {
    pub kind: MediaKind,
    pub ctrl: mpsc::Sender<FwdCmd>,
    pub source: Option<TrackId>,
}

impl Inner {
    fn new_session_id(&self) -> SessionId {
        SessionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn room(&self, name: &str) -> Arc<Room> {
        let mut rooms = self.rooms.lock().expect("rooms");
        Arc::clone(rooms.entry(name.to_owned()).or_insert_with(|| Arc::new(Room::new(name))))
    }

    /// Whether `room` has an open stage tap.
    pub(crate) fn is_stage(&self, room: &str) -> bool {
        self.stages.lock().expect("stages").contains_key(room)
    }

    pub(crate) fn forget_room_if_idle(&self, room: &Arc<Room>) {
        if self.is_stage(&room.name) {
            return; // a tap watches it
        }
        let mut rooms = self.rooms.lock().expect("rooms");
        if room.is_idle() {
            // Floor gates set for nobody are dropped with the room.
            if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
                rooms.remove(&room.name);
            }
        }
    }

    /// Add one outgoing track to `pc` and start its forwarder and RTCP reader.
    pub(crate) async fn add_outgoing(
        self: &Arc<Self>,
        pc: &Arc<dyn PeerConnection>,
        kind: MediaKind,
        codec: RTCRtpCodec,
        connected: &Arc<AtomicBool>,
        label: &str,
    ) -> Result<(mpsc::Sender<FwdCmd>, Arc<dyn webrtc::rtp_transceiver::RtpSender>), SfuError> {
        let ssrc = random_u32();
        let track = outgoing_track(kind, codec.clone(), ssrc, label);
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.map_err(SfuError::webrtc)?;
        let (tx, rx) = mpsc::channel(32);
        let out = Outgoing { track: Arc::clone(&track), sender: Arc::clone(&sender), ssrc, codec, connected: Arc::clone(connected) };
        tokio::spawn(forward::run_forwarder(out, rx, Arc::clone(&self.counters), 2));
        tokio::spawn(forward::run_rtcp_reader(track, ssrc, tx.clone(), Arc::clone(&self.counters)));
        Ok((tx, sender))
    }

    /// Apply `offer`, answer it with gathering complete.
    pub(crate) async fn answer(pc: &Arc<dyn PeerConnection>, gathered: &mut watch::Receiver<bool>, offer: RTCSessionDescription) -> Result<String, SfuError> {
        pc.set_remote_description(offer).await.map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let answer = pc.create_answer(None).await.map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        pc.set_local_description(answer).await.map_err(SfuError::webrtc)?;
        peer::wait_gathered(gathered).await?;
        pc.local_description().await.map(|d| d.sdp).ok_or(SfuError::Closed)
    }

    fn register(&self, id: SessionId, viewer_cmds: Option<mpsc::Sender<FwdCmd>>) -> (watch::Receiver<bool>, watch::Sender<bool>) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        self.sessions.lock().expect("sessions").insert(id, SessionEntry { cancel: cancel_tx, done: done_rx, viewer_cmds });
        (cancel_rx, done_tx)
    }

    /// Release a connection: close it (frees sockets and driver), give back its port.
    pub(crate) async fn release_pc(&self, pc: &Arc<dyn PeerConnection>, port: u16) {
        let _ = pc.close().await;
        self.ports.lock().expect("ports").give_back(port);
        self.counters.pcs.fetch_sub(1, Ordering::SeqCst);
    }

    async fn start_viewer(
        self: Arc<Self>,
        id: SessionId,
        room: &Arc<Room>,
        built: BuiltPc,
        offer: RTCSessionDescription,
        kinds: Vec<MediaKind>,
    ) -> Result<String, SfuError> {
        let BuiltPc { pc, events, mut gathered, port } = built;
        let connected = Arc::new(AtomicBool::new(false));
        let result = async {
            let tracks = room.tracks();
            let mut slots = Vec::new();
            for (i, kind) in kinds.iter().enumerate() {
                let codec = tracks.iter().find(|t| t.kind == *kind).map_or_else(|| default_codec(*kind), |t| t.codec.clone());
                let (ctrl, _sender) = self.add_outgoing(&pc, *kind, codec, &connected, &format!("{id}-{i}")).await?;
                slots.push(Slot { kind: *kind, ctrl, source: None });
            }
            let answer = Self::answer(&pc, &mut gathered, offer).await?;
            Ok::<_, SfuError>((slots, answer))
        }
        .await;
        let (slots, answer) = match result {
            Ok(x) => x,
            Err(e) => {
                self.release_pc(&pc, port).await;
                return Err(e);
            }
        };
        let (layer_tx, layer_rx) = mpsc::channel(8);
        let (cancel, done) = self.register(id, Some(layer_tx));
        let inner = Arc::clone(&self);
        let room = Arc::clone(room);
        tokio::spawn(async move {
            let _g = TaskGuard::new(&inner.counters);
            viewer_loop(&room, events, slots, &connected, cancel, layer_rx).await;
            inner.release_pc(&pc, port).await;
            inner.counters.viewers.fetch_sub(1, Ordering::SeqCst);
            room.state.lock().expect("room").viewers -= 1;
            inner.sessions.lock().expect("sessions").remove(&id);
            inner.forget_room_if_idle(&room);
            done.send_replace(true);
        });
        Ok(answer)
    }

    async fn start_publisher(self: Arc<Self>, id: SessionId, built: BuiltPc, offer: RTCSessionDescription, ctx: IngestCtx) -> Result<String, SfuError> {
        let BuiltPc { pc, mut events, mut gathered, port } = built;
        let answer = match Self::answer(&pc, &mut gathered, offer).await {
            Ok(a) => a,
            Err(e) => {
                self.release_pc(&pc, port).await;
                return Err(e);
            }
        };
        let (mut cancel, done) = self.register(id, None);
        let inner = Arc::clone(&self);
        tokio::spawn(async move {
            let _g = TaskGuard::new(&inner.counters);
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(PcEvent::Track(t)) => { tokio::spawn(forward::run_ingest(t, ctx.clone())); }
                        Some(PcEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => break,
                        Some(_) => {}
                    },
                    _ = crate::cancelled(&mut cancel) => break,
                }
            }
            inner.release_pc(&pc, port).await;
            let ids: Vec<TrackId> = ctx.published.lock().expect("published").drain(..).collect();
            for t in ids {
                ctx.room.unpublish(t);
            }
            ctx.room.leave(&ctx.participant);
            inner.sessions.lock().expect("sessions").remove(&id);
            inner.forget_room_if_idle(&ctx.room);
            done.send_replace(true);
        });
        Ok(answer)
    }
}

/// Pick the source for each viewer slot: per kind, the active speaker's tracks first, then in
/// publication order.
pub(crate) async fn assign_viewer_slots(room: &Room, slots: &mut [Slot]) {
    let (tracks, speaker) = {
        let st = room.state.lock().expect("room");
        (st.tracks.clone(), st.speaker.clone())
    };
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let mut cands: Vec<&Arc<PublishedTrack>> = tracks.iter().filter(|t| t.kind == kind).collect();
        cands.sort_by_key(|t| Some(&t.participant) != speaker.as_ref());
        let mut cands = cands.into_iter();
        for slot in slots.iter_mut().filter(|s| s.kind == kind) {
            let next = cands.next();
            if slot.source != next.map(|t| t.id) {
                slot.source = next.map(|t| t.id);
                let _ = slot.ctrl.send(FwdCmd::Source(next.cloned())).await;
            }
        }
    }
}

async fn viewer_loop(
    room: &Arc<Room>,
    mut events: mpsc::UnboundedReceiver<PcEvent>,
    mut slots: Vec<Slot>,
    connected: &Arc<AtomicBool>,
    mut cancel: watch::Receiver<bool>,
    mut layer_rx: mpsc::Receiver<FwdCmd>,
) {
    let mut room_rx = room.events.subscribe();
    assign_viewer_slots(room, &mut slots).await;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(PcEvent::State(RTCPeerConnectionState::Connected)) => connected.store(true, Ordering::SeqCst),
                Some(PcEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => break,
                Some(_) => {}
            },
            r = room_rx.recv() => match r {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => assign_viewer_slots(room, &mut slots).await,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            Some(cmd) = layer_rx.recv() => {
                if let FwdCmd::Layer(l) = cmd {
                    for s in slots.iter().filter(|s| s.kind == MediaKind::Video) {
                        let _ = s.ctrl.send(FwdCmd::Layer(l)).await;
                    }
                }
            }
            _ = crate::cancelled(&mut cancel) => break,
        }
    }
}

/// Resolves once the session's stop switch is set (or its owner is gone).
pub(crate) async fn cancelled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}
