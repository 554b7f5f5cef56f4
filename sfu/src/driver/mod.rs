//! The driver: one thread that owns the node's UDP socket and every peer connection, room and
//! session, and drives the sans-I/O `rtc` connections from one loop.
//!
//! ```text
//! loop {
//!     wait for: socket readable | a command from the API | the earliest connection timer
//!     readable:  recvmmsg (GRO) ─ demux (ufrag, then address) ─ pc.handle_read        ×≤ 8 batches
//!     command:   signaling (offers/answers), close, floor, layer     (the API awaits the reply)
//!     timers:    pc.handle_timeout for every due connection; ICE deadlines
//!     flush:     for every touched pc: poll_event → sessions; poll_read → forward (writes into
//!                subscriber pcs, which become touched); poll_write → the send batch; poll_timeout
//!                → timer heap.   Then one GSO send per destination run.
//! }
//! ```
//!
//! There is no lock and no channel on the media path: a publisher's packet is decrypted,
//! decided on ([`crate::forward::Forwarder`] per subscriber), written into each subscriber's
//! connection and encrypted there, all on this thread, and the whole flush leaves in a few
//! `sendmsg` calls. What the async `webrtc` layer did per connection (a task, a socket, a
//! channel per track, one `sendmsg` per packet) is gone; see `sfu/README.md`.

mod media;
mod room;
mod session;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::message::TaggedRTCMessage;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::forward::Forwarder;
use crate::io::batch::SendBatch;
use crate::io::demux::{Demux, Proto};
use crate::io::tcp::{TcpConns, TcpEvent};
use crate::io::udp::UdpIo;
use crate::peer::PcFactory;
use crate::{Counters, IceCandidate, MediaKind, Pc, SessionId, SfuConfig, SfuError, SfuEvent, TrackId};

use room::Room;
use session::Session;

/// A reply to the API.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

/// What the API asks of the driver.
pub(crate) enum Cmd {
    Whep { room: String, offer: String, kinds: Vec<MediaKind>, from: Option<std::net::IpAddr>, reply: Reply<(SessionId, String)> },
    Whip { room: String, participant: String, offer: String, reply: Reply<(SessionId, String)> },
    Join { room: String, participant: String, events: mpsc::Sender<SfuEvent>, reply: Reply<SessionId> },
    Member { id: SessionId, cmd: MemberCmd },
    Close { id: SessionId, reply: Reply<bool> },
    ViewerLayer { id: SessionId, layer: usize, reply: Reply<()> },
    Floor { room: String, participant: String, audio: bool, video: bool },
    /// The public gate of a livestream (see `Sfu::set_public`).
    Public { room: String, participant: String, public: bool },
    Evict { room: String, participant: String },
    TapOpen { room: String, sink: crate::tap::TapSink },
    TapClose { room: String, id: u64 },
    KeyframeFor { room: String, participant: String, reply: Reply<bool> },
}

/// What a member's handle asks.
pub(crate) enum MemberCmd {
    PublishOffer(String, Reply<String>),
    SubscriberAnswer(String, Reply<()>),
    AddIce(Pc, IceCandidate, Reply<()>),
    IceRestart(Reply<()>),
    SetLayer(TrackId, String, Reply<()>),
}

/// A peer connection's key in the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PcKey(u64);

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A WHEP viewer's receive-only connection.
    Viewer,
    /// WHIP ingest.
    Ingest,
    /// A member's publisher connection.
    MemberPublisher,
    /// A member's subscriber connection.
    MemberSubscriber,
}

impl Role {
    fn receives_media(self) -> bool {
        matches!(self, Role::Ingest | Role::MemberPublisher)
    }
}

/// One outgoing track of a subscriber connection.
pub(crate) struct Out {
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    /// The payload type the leg negotiated for the current source's codec (looked up on the
    /// first packet of a source, and again after each negotiation).
    pub pt: Option<(TrackId, u8)>,
    /// In an offer the remote has not answered yet (a member's subscriber leg).
    pub offered: bool,
    /// Negotiated: the remote knows this track's SSRC, so packets are not lost on it. The
    /// forwarder starts (on a keyframe) once the track is ready and the connection is up.
    pub ready: bool,
    pub fwd: Forwarder,
}

/// One incoming track of a publishing connection.
pub(crate) struct In {
    /// `rtc`'s track id (what `poll_read` names packets by).
    pub rtc_track: String,
    pub track: TrackId,
}

/// A peer connection and what the driver knows about it.
pub(crate) struct PcState {
    pub rtc: RTCPeerConnection,
    pub session: SessionId,
    pub role: Role,
    pub connected: bool,
    /// Outgoing tracks; indices are stable (a removed track leaves `None`).
    pub outs: Vec<Option<Out>>,
    pub ins: Vec<In>,
    /// The offer's audio-level extension id and simulcast rids by mid (publishing connections).
    pub audio_level_id: Option<u8>,
    pub rids: Vec<(String, Vec<String>)>,
    /// The earliest deadline queued in the timer heap for this connection.
    timeout: Option<Instant>,
    /// ICE must complete by then, or the session is released.
    deadline: Option<Instant>,
    dirty: bool,
}

/// Client addresses the WHEP rate limit remembers at most (a few MB).
const ADDRESSES_REMEMBERED: usize = 65_536;
/// Activities the per-activity WHEP rate limit remembers at most.
const ACTIVITIES_REMEMBERED: usize = 16_384;
/// A refusal kind (rate limited, pending full, ICE deadline ...) is logged at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// ICE-TCP frames (and accepts/closes) taken per wake-up before the flush.
const TCP_EVENTS_PER_WAKE: usize = 256;

/// recvmmsg calls per wake-up before the flush (32 datagrams each, more with GRO).
const RECV_BATCHES: usize = 8;

/// The node's ICE-TCP listener and its candidate address, handed to the driver.
pub(crate) struct TcpListen {
    pub listener: std::net::TcpListener,
    pub candidate: SocketAddr,
}

/// Start the driver thread.
pub(crate) fn spawn(
    cfg: SfuConfig,
    socket: std::net::UdpSocket,
    candidate: SocketAddr,
    tcp: Option<TcpListen>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    counters: Arc<Counters>,
) -> Result<(), SfuError> {
    let factory = PcFactory::new(candidate, tcp.as_ref().map(|t| t.candidate))?;
    std::thread::Builder::new()
        .name("sfu-driver".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!("SFU driver: no runtime: {e}"),
            };
            rt.block_on(async move {
                let io = match UdpIo::new(socket) {
                    Ok(io) => io,
                    Err(e) => return tracing::error!("SFU driver: socket: {e}"),
                };
                tracing::info!("SFU on udp {} (candidate {candidate}, {} segments per GSO send)", io.local_addr(), io.max_gso_segments());
                let tcp = match tcp.map(|t| TcpConns::new(t.listener, t.candidate, cfg.max_tcp_connections)).transpose() {
                    Ok(t) => t,
                    Err(e) => return tracing::error!("SFU driver: ICE-TCP listener: {e}"),
                };
                if let Some(t) = &tcp {
                    tracing::info!("SFU ICE-TCP on tcp {} (passive candidate {})", t.listen_addr().map_or_else(|_| "?".into(), |a| a.to_string()), t.local);
                }
                let d = Driver::new(cfg, io, tcp, candidate, factory, counters);
                d.run(cmds).await;
            });
        })
        .map_err(SfuError::webrtc)?;
    Ok(())
}

pub(crate) struct Driver {
    cfg: SfuConfig,
    io: UdpIo,
    /// The ICE-TCP connections, if the node listens for them.
    tcp: Option<TcpConns>,
    batch: SendBatch,
    /// The candidate address: what the connections know as their local address.
    local: SocketAddr,
    factory: PcFactory,
    pcs: HashMap<PcKey, PcState>,
    demux: Demux<PcKey>,
    sessions: HashMap<SessionId, Session>,
    rooms: HashMap<String, Room>,
    tracks: HashMap<TrackId, media::Published>,
    timers: BinaryHeap<Reverse<(Instant, PcKey)>>,
    deadlines: BinaryHeap<Reverse<(Instant, PcKey)>>,
    dirty: Vec<PcKey>,
    /// Connections whose state machine panicked, to be released.
    poisoned: Vec<PcKey>,
    next_pc: u64,
    next_session: u64,
    next_track: u64,
    /// When the current wake-up began: the taps' arrival time of the packets it reads.
    pub(super) woke: Instant,
    /// WHEP viewers, pending ones included.
    viewers: usize,
    /// WHEP viewers whose connection is not up yet.
    pending_viewers: usize,
    /// Unauthenticated WHEP offers per client address.
    limiter: crate::admission::AddressLimiter,
    /// Unauthenticated WHEP offers per activity (room), all addresses together.
    activity_limiter: crate::admission::RateLimiter<String>,
    /// One line per refusal kind per interval.
    refusals: crate::admission::RefusalLog,
    counters: Arc<Counters>,
}

enum Wake {
    Readable,
    Tcp(crate::io::tcp::Wake),
    Cmd(Option<Cmd>),
    Timer,
}

impl Driver {
    fn new(cfg: SfuConfig, io: UdpIo, tcp: Option<TcpConns>, local: SocketAddr, factory: PcFactory, counters: Arc<Counters>) -> Self {
        let batch = SendBatch::new(io.max_gso_segments(), 60_000);
        counters.max_gso_segments.store(io.max_gso_segments() as u64, Ordering::Relaxed);
        let limiter = crate::admission::AddressLimiter::new(cfg.whep_per_address_per_minute, cfg.whep_burst, ADDRESSES_REMEMBERED);
        let activity_limiter = crate::admission::RateLimiter::new(cfg.whep_per_activity_per_minute, cfg.whep_activity_burst, ACTIVITIES_REMEMBERED);
        Self {
            io,
            tcp,
            batch,
            local,
            factory,
            pcs: HashMap::new(),
            demux: Demux::default(),
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            tracks: HashMap::new(),
            timers: BinaryHeap::new(),
            deadlines: BinaryHeap::new(),
            dirty: Vec::new(),
            poisoned: Vec::new(),
            next_pc: 1,
            next_session: 1,
            next_track: 1,
            cfg,
            woke: Instant::now(),
            viewers: 0,
            pending_viewers: 0,
            limiter,
            activity_limiter,
            refusals: crate::admission::RefusalLog::new(REFUSAL_LOG_INTERVAL),
            counters,
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let next = [self.timers.peek(), self.deadlines.peek()].into_iter().flatten().map(|Reverse((t, _))| *t).min();
            let wake = {
                let io = &self.io;
                let tcp = &mut self.tcp;
                let tcp_next = async {
                    match tcp {
                        Some(t) => t.next().await,
                        None => std::future::pending().await,
                    }
                };
                let sleep = async {
                    match next {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = io.readable() => match r {
                        Ok(()) => Wake::Readable,
                        Err(e) => {
                            tracing::error!("SFU socket: {e}");
                            Wake::Cmd(None)
                        }
                    },
                    c = cmds.recv() => Wake::Cmd(c),
                    t = tcp_next => Wake::Tcp(t),
                    _ = sleep => Wake::Timer,
                }
            };
            // Every packet this wake-up reads reaches the taps stamped with this instant, and
            // all of them are handed over in the flush below, before the next wake-up: arrival
            // times are non-decreasing per tap by construction (see `tap`).
            self.woke = Instant::now();
            match wake {
                Wake::Readable => self.read(),
                Wake::Tcp(t) => self.tcp_wake(t),
                Wake::Cmd(None) => break,
                Wake::Cmd(Some(c)) => {
                    self.handle_cmd(c);
                    // Take what else is queued (bounded) before flushing.
                    for _ in 0..64 {
                        match cmds.try_recv() {
                            Ok(c) => self.handle_cmd(c),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Timer => {}
            }
            self.fire_timers(Instant::now());
            self.flush().await;
        }
        // Every API handle is gone: close what is left and say goodbye on the wire.
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.close_session(id, "node shutting down");
        }
        self.flush().await;
    }

    /// Read what the socket has (bounded), handing each datagram to its connection.
    fn read(&mut self) {
        for _ in 0..RECV_BATCHES {
            let n = match self.io.try_recv() {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    // ICMP errors (a viewer gone) surface here; they concern one destination.
                    tracing::debug!("SFU recv: {e}");
                    continue;
                }
            };
            let now = Instant::now();
            let Self { io, demux, pcs, dirty, local, counters, poisoned, .. } = self;
            counters.receives.fetch_add(1, Ordering::Relaxed);
            for (from, bytes) in io.datagrams(n) {
                counters.datagrams_received.fetch_add(1, Ordering::Relaxed);
                let Some(key) = demux.route(Proto::Udp, from, bytes) else {
                    // No connection knows this address (yet): dropped, as str0m does.
                    counters.unrouted.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let Some(pc) = pcs.get_mut(&key) else { continue };
                let msg = TaggedBytesMut {
                    now,
                    transport: TransportContext { local_addr: *local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
                    message: BytesMut::from(bytes),
                };
                match contain(|| pc.rtc.handle_read(msg)) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => tracing::trace!("pc {key:?} handle_read: {e}"),
                    None => poisoned.push(key),
                }
                mark(dirty, key, pc);
            }
        }
    }

    /// An ICE-TCP connection was accepted, sent a frame, or ended; then whatever else the
    /// connections have queued (bounded), before the flush.
    fn tcp_wake(&mut self, wake: crate::io::tcp::Wake) {
        self.tcp_one(wake);
        for _ in 0..TCP_EVENTS_PER_WAKE {
            let Some(e) = self.tcp.as_mut().and_then(TcpConns::try_event) else { break };
            self.tcp_one(crate::io::tcp::Wake::Event(e));
        }
        self.counters.tcp_connections.store(self.tcp.as_ref().map_or(0, TcpConns::len), Ordering::Relaxed);
    }

    fn tcp_one(&mut self, wake: crate::io::tcp::Wake) {
        let Some(tcp) = self.tcp.as_mut() else { return };
        match wake {
            crate::io::tcp::Wake::Accepted(Ok((stream, peer))) => {
                if !tcp.accepted(stream, peer) {
                    self.counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
                    self.refused("ice_tcp_too_many_connections", Instant::now());
                }
            }
            crate::io::tcp::Wake::Accepted(Err(e)) => tracing::debug!("SFU ICE-TCP accept: {e}"),
            crate::io::tcp::Wake::Event(TcpEvent::Closed(peer)) => tcp.closed(peer),
            crate::io::tcp::Wake::Event(TcpEvent::Frame(peer, bytes)) => {
                let now = Instant::now();
                self.counters.datagrams_received.fetch_add(1, Ordering::Relaxed);
                let Some(key) = self.demux.route(Proto::Tcp, peer, &bytes) else {
                    // Not a check naming one of our ufrags, from a connection no pc owns: an
                    // ICE-TCP connection is for one pc, so this one is closed.
                    self.counters.unrouted.fetch_add(1, Ordering::Relaxed);
                    tcp.close(peer);
                    return;
                };
                let local_addr = tcp.local;
                let Some(pc) = self.pcs.get_mut(&key) else { return };
                let msg = TaggedBytesMut {
                    now,
                    transport: TransportContext { local_addr, peer_addr: peer, ecn: None, transport_protocol: TransportProtocol::TCP },
                    message: bytes,
                };
                match contain(|| pc.rtc.handle_read(msg)) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => tracing::trace!("pc {key:?} handle_read (tcp): {e}"),
                    None => self.poisoned.push(key),
                }
                mark(&mut self.dirty, key, pc);
            }
        }
    }

    /// Handle every due connection timer and ICE deadline.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(pc) = self.pcs.get_mut(&key) else { continue };
            if pc.timeout != Some(t) {
                continue; // superseded by an earlier deadline
            }
            pc.timeout = None;
            match contain(|| pc.rtc.handle_timeout(now)) {
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::debug!("pc {key:?} handle_timeout: {e}"),
                None => self.poisoned.push(key),
            }
            mark(&mut self.dirty, key, pc);
        }
        while let Some(Reverse((t, key))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            let expired = self.pcs.get(&key).is_some_and(|pc| !pc.connected && pc.deadline == Some(t));
            if expired && let Some((session, role)) = self.pcs.get(&key).map(|pc| (pc.session, pc.role)) {
                tracing::debug!("session {session}: ICE did not complete in time; released");
                if role == Role::Viewer {
                    self.counters.expired_pending.fetch_add(1, Ordering::Relaxed);
                    self.refused("pending_expired", now);
                }
                self.close_session(session, "ICE deadline");
            }
        }
    }

    /// Drain every touched connection (events, media, datagrams, timers), then send the batch.
    async fn flush(&mut self) {
        self.release_poisoned();
        // Forwarding touches subscriber connections, whose events may touch publishers (a PLI):
        // bounded rounds, each draining what the previous one touched.
        let mut reads: Vec<TaggedRTCMessage> = Vec::new();
        let mut events = Vec::new();
        for _round in 0..16 {
            if self.dirty.is_empty() {
                break;
            }
            let keys = std::mem::take(&mut self.dirty);
            for key in keys {
                let now = Instant::now();
                let Some(pc) = self.pcs.get_mut(&key) else { continue };
                pc.dirty = false;
                let drained = contain(|| {
                    while let Some(ev) = pc.rtc.poll_event() {
                        events.push(ev);
                    }
                    while let Some(m) = pc.rtc.poll_read() {
                        reads.push(m);
                    }
                });
                if drained.is_none() {
                    events.clear();
                    reads.clear();
                    self.poisoned.push(key);
                    continue;
                }
                let role = pc.role;
                for ev in events.drain(..) {
                    self.handle_pc_event(key, ev, now);
                }
                for m in reads.drain(..) {
                    if role.receives_media() {
                        self.handle_ingest_message(key, m);
                    } else {
                        self.handle_subscriber_message(key, m, now);
                    }
                }
                self.drain_writes(key, now);
            }
        }
        self.release_poisoned();
        if !self.batch.is_empty() {
            let c = &self.counters;
            c.sends.fetch_add(self.batch.transmits().len() as u64, Ordering::Relaxed);
            c.datagrams_sent.fetch_add(self.batch.transmits().iter().map(|t| t.segments() as u64).sum(), Ordering::Relaxed);
            let refused = self.io.send(&mut self.batch).await;
            if refused > 0 {
                self.counters.refused.fetch_add(refused as u64, Ordering::Relaxed);
            }
            self.batch.clear();
        }
    }

    /// Move a connection's datagrams into the send batch and re-arm its timer.
    fn drain_writes(&mut self, key: PcKey, now: Instant) {
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        let (batch, tcp, counters) = (&mut self.batch, &mut self.tcp, &self.counters);
        let next = contain(|| {
            while let Some(w) = pc.rtc.poll_write() {
                write_out(batch, tcp, counters, w.transport, &w.message);
            }
            pc.rtc.poll_timeout()
        });
        let Some(next) = next else {
            self.poisoned.push(key);
            return;
        };
        if let Some(t) = next {
            // Never spin on a deadline that is already due: at least 1 ms from now.
            let t = t.max(now + Duration::from_millis(1));
            if pc.timeout.is_none_or(|old| t < old) {
                pc.timeout = Some(t);
                self.timers.push(Reverse((t, key)));
            }
        }
    }

    fn new_pc(&mut self, session: SessionId, role: Role, now: Instant) -> Result<PcKey, SfuError> {
        let dir = if role.receives_media() { crate::peer::Direction::Receive } else { crate::peer::Direction::Send };
        let rtc = self.factory.build(dir, now)?;
        let key = PcKey(self.next_pc);
        self.next_pc += 1;
        self.pcs.insert(
            key,
            PcState {
                rtc,
                session,
                role,
                connected: false,
                outs: Vec::new(),
                ins: Vec::new(),
                audio_level_id: None,
                rids: Vec::new(),
                timeout: None,
                deadline: None,
                dirty: false,
            },
        );
        self.counters.pcs.store(self.pcs.len(), Ordering::SeqCst);
        Ok(key)
    }

    /// After a local description was set: route the (possibly new) ufrag here; once the remote
    /// description is there too, ICE must complete before the deadline.
    fn negotiated(&mut self, key: PcKey, now: Instant) {
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        if let Some(ufrag) = pc.rtc.local_description().as_ref().and_then(|d| crate::peer::ice_ufrag(&d.sdp).map(str::to_owned)) {
            self.demux.handle_ufrag(&ufrag, key);
        }
        for o in pc.outs.iter_mut().flatten() {
            o.pt = None; // look the payload type up again after each negotiation
        }
        if !pc.connected && pc.deadline.is_none() && pc.rtc.remote_description().is_some() && pc.rtc.local_description().is_some() {
            // A viewer may come without credentials: it holds a pending place for a short time only.
            let limit = if pc.role == Role::Viewer { self.cfg.ice_timeout.min(self.cfg.pending_timeout) } else { self.cfg.ice_timeout };
            let t = now + limit;
            pc.deadline = Some(t);
            self.deadlines.push(Reverse((t, key)));
        }
        mark(&mut self.dirty, key, pc);
    }

    /// Close one connection: stop its forwarding, unpublish its tracks, say goodbye on the
    /// wire, forget its routes.
    fn close_pc(&mut self, key: PcKey) {
        let Some(mut pc) = self.pcs.remove(&key) else { return };
        for (idx, o) in pc.outs.iter().enumerate() {
            if let Some(o) = o
                && let Some(src) = o.fwd.source()
            {
                self.unsubscribe(src, key, idx);
            }
        }
        let published: Vec<TrackId> = pc.ins.iter().map(|i| i.track).collect();
        let _ = pc.rtc.close();
        while let Some(w) = pc.rtc.poll_write() {
            write_out(&mut self.batch, &mut self.tcp, &self.counters, w.transport, &w.message);
        }
        // Its ICE-TCP connections carried only it: closed (after the goodbye queued above).
        for (proto, addr) in self.demux.forget(key) {
            if proto == Proto::Tcp
                && let Some(tcp) = self.tcp.as_mut()
            {
                tcp.close(addr);
            }
        }
        self.counters.pcs.store(self.pcs.len(), Ordering::SeqCst);
        for t in published {
            self.unpublish(t);
        }
    }

    /// The remote answered for the tracks of `key` (all of them, or those `offered`): they are
    /// ready, and if the connection is up their forwarders start on a keyframe.
    fn tracks_negotiated(&mut self, key: PcKey, only_offered: bool, now: Instant) {
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        let connected = pc.connected;
        let mut asks = Vec::new();
        for o in pc.outs.iter_mut().flatten() {
            if o.ready || (only_offered && !o.offered) {
                continue;
            }
            o.ready = true;
            if connected && o.fwd.handle_connected()
                && let Some(src) = o.fwd.source()
            {
                asks.push(src);
            }
        }
        for t in asks {
            self.request_keyframe(t, now);
        }
    }

    /// Close the sessions of connections whose `rtc` state machine panicked: one connection's
    /// bug (or a packet that trips one) must not take the node's other connections down with
    /// the driver thread.
    fn release_poisoned(&mut self) {
        while let Some(key) = self.poisoned.pop() {
            if let Some(session) = self.pcs.get(&key).map(|pc| pc.session) {
                tracing::error!("session {session}: its connection's state machine panicked; released");
                self.close_session(session, "panicked");
            }
        }
    }

    /// A WHEP offer refused (or a pending viewer released) for `kind`: one log line per kind
    /// per interval, however many come.
    pub(super) fn refused(&mut self, kind: &'static str, now: Instant) {
        if let Some(suppressed) = self.refusals.note(kind, now) {
            tracing::info!("SFU admission: {kind} ({suppressed} more since the last line)");
        }
    }

    fn update_gauges(&self) {
        self.counters.pending_viewers.store(self.pending_viewers, Ordering::SeqCst);
        self.counters.sessions.store(self.sessions.len(), Ordering::SeqCst);
        self.counters.rooms.store(self.rooms.len(), Ordering::SeqCst);
        self.counters.pcs.store(self.pcs.len(), Ordering::SeqCst);
    }
}

/// One datagram a connection produced: into the UDP send batch, or framed onto its ICE-TCP
/// connection.
fn write_out(batch: &mut SendBatch, tcp: &mut Option<TcpConns>, counters: &Counters, transport: TransportContext, message: &[u8]) {
    match transport.transport_protocol {
        TransportProtocol::UDP => batch.push(transport.peer_addr, message),
        TransportProtocol::TCP => {
            let sent = tcp.as_mut().is_some_and(|t| t.send(transport.peer_addr, message));
            if sent {
                counters.datagrams_sent.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ => {
            counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Run `f`, catching a panic from inside `rtc` (`None`); the caller releases that connection.
pub(super) fn contain<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// Note that `key` has output to drain at the next flush.
fn mark(dirty: &mut Vec<PcKey>, key: PcKey, pc: &mut PcState) {
    if !pc.dirty {
        pc.dirty = true;
        dirty.push(key);
    }
}

/// A fresh pseudo-random 32-bit value (SSRC, initial sequence number, timestamp): splitmix64 of
/// the clock and a counter, without a rand dependency.
pub(crate) fn random_u32() -> u32 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut z = (t ^ N.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x2545_F491_4F6C_DD1D)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_a_connection_is_contained() {
        // The panic message is captured by the test harness.
        let r: Option<u8> = contain(|| panic!("a bug in one connection's state machine"));
        assert_eq!(r, None);
        assert_eq!(contain(|| 7), Some(7));
    }
}
