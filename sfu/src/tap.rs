//! The stage tap: everything published on a room's stage, as one stream of events, for the
//! hub's programme (the livestream packaged as LL-HLS).
//!
//! ```text
//! let mut tap = sfu.stage_tap("room");
//! while let Some(ev) = tap.recv().await {
//!     StageEvent::TrackAdded { track, participant, kind, codec }   // also for tracks already there
//!     StageEvent::Packet(p)                                       // seq, ts, marker, keyframe, payload, arrival
//!     StageEvent::TrackRemoved { track, participant, kind }
//!     StageEvent::ActiveSpeaker { participant }
//! }
//! sfu.request_keyframe("room", "alice").await;                    // PLI, throttled per track
//! ```
//!
//! How: the SFU's driver hands the tap every packet of the room's published tracks as it
//! forwards them (the same decrypted packet the subscribers get, before any rewriting), in the
//! order it processes them. A tap holds at most [`TAP_QUEUE`] packets not yet read: beyond
//! that packets are dropped — counted in [`StageTap::lost`], and visible to the consumer as RTP
//! sequence gaps — and the driver never waits for a tap. Track and speaker events are never
//! dropped (they do not count against the bound). A simulcast publisher is tapped at its best
//! layer heard in the last half second (the top one once the sender's bandwidth estimate allows
//! it), switched at that layer's keyframe, with sequence numbers and timestamps rewritten so the
//! tapped track stays one continuous stream — a [`Forwarder`] does it, as for a subscriber;
//! other tracks keep the publisher's numbers. `arrival` is when the driver's wake-up that read
//! the packet from the socket began (within that wake-up's reading, well under a millisecond):
//! all packets a wake-up reads are handed to the taps before the next one, so arrival times are
//! non-decreasing per tap by construction, across tracks and publishers. (The per-packet read
//! time cannot be used as is: the driver drains connections one after the other, so a second
//! publisher's packet read earlier in a wake-up would reach the tap after a newer one of the
//! first. Before the single-port core, each tapped track's task stamped `Instant::now()` and then
//! sent into the shared channel, and two tracks' tasks raced: that was the test's flake.)
//!
//! While a room has a tap it is a *stage*: it is kept even when idle (so the tap keeps seeing it)
//! and its publishers are asked for H.264 first (the offer's H.264 formats are moved first), the
//! codec the programme packages without re-encoding. A publisher that cannot send H.264 falls back
//! to VP8 as before: WebRTC viewers still get it; the programme reports it as unusable. WHIP is
//! always ingest onto a stage and always asked for H.264.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::driver::Cmd;
use crate::forward::{DropReason, Forwarder, PacketMeta, Source, Verdict};
use crate::{Inner, MediaKind, TrackId};

/// Packets a tap's queue holds unread (about four seconds of a two-camera stage).
pub const TAP_QUEUE: usize = 4096;

/// A published track's codec, as negotiated with its publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapCodec {
    /// `video/H264`, `video/VP8`, `audio/opus`, ...
    pub mime_type: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u16,
    /// The `a=fmtp` parameters.
    pub fmtp: String,
}

/// One RTP packet of a stage track (header extensions stripped).
#[derive(Clone, Debug)]
pub struct TapPacket {
    /// The track.
    pub track: TrackId,
    /// RTP sequence number (the publisher's; continuous across simulcast layer switches).
    pub seq: u16,
    /// RTP timestamp (the publisher's; continuous across simulcast layer switches).
    pub ts: u32,
    /// Marker bit.
    pub marker: bool,
    /// The SFU's keyframe detection says this packet starts a keyframe.
    pub keyframe: bool,
    /// The payload.
    pub payload: Bytes,
    /// When the SFU's socket read it.
    pub arrival: Instant,
}

/// What happens on the stage.
#[derive(Clone, Debug)]
pub enum StageEvent {
    /// A track is on stage (sent for existing tracks when the tap opens, then for new ones).
    TrackAdded {
        /// The track.
        track: TrackId,
        /// Its publisher.
        participant: String,
        /// Audio or video.
        kind: MediaKind,
        /// Its codec.
        codec: TapCodec,
    },
    /// A packet of a track.
    Packet(TapPacket),
    /// A track left the stage.
    TrackRemoved {
        /// The track.
        track: TrackId,
        /// Its publisher.
        participant: String,
        /// Audio or video.
        kind: MediaKind,
    },
    /// The dominant speaker changed.
    ActiveSpeaker {
        /// Who speaks.
        participant: String,
    },
}

/// A room's stage as a stream of [`StageEvent`]s. Dropping it closes the tap.
pub struct StageTap {
    rx: mpsc::UnboundedReceiver<StageEvent>,
    queued: Arc<AtomicUsize>,
    lost: Arc<AtomicU64>,
    guard: TapGuard,
}

impl std::fmt::Debug for StageTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StageTap({})", self.guard.room)
    }
}

impl StageTap {
    /// The next event; `None` once the SFU is gone.
    pub async fn recv(&mut self) -> Option<StageEvent> {
        let ev = self.rx.recv().await;
        if let Some(StageEvent::Packet(_)) = &ev {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        ev
    }

    /// The next event if one is queued (to take a burst before acting on it).
    pub fn try_recv(&mut self) -> Option<StageEvent> {
        let ev = self.rx.try_recv().ok();
        if let Some(StageEvent::Packet(_)) = &ev {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        ev
    }

    /// Packets this tap lost because it held [`TAP_QUEUE`] unread ones.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Closes the tap in the driver when the [`StageTap`] goes.
struct TapGuard {
    inner: Arc<Inner>,
    room: String,
    id: u64,
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        self.inner.send(Cmd::TapClose { room: std::mem::take(&mut self.room), id: self.id });
    }
}

/// How recently a simulcast layer must have been heard to be the one tapped.
const LAYER_FRESH: Duration = Duration::from_millis(500);

/// How a tap follows one simulcast track: the layer it takes, and the rewriting that keeps it
/// one stream.
struct Follow {
    fwd: Forwarder,
    heard: [Option<Instant>; 8],
    target: Option<usize>,
}

/// The driver's end of a tap.
pub(crate) struct TapSink {
    pub id: u64,
    tx: mpsc::UnboundedSender<StageEvent>,
    queued: Arc<AtomicUsize>,
    lost: Arc<AtomicU64>,
    follow: HashMap<TrackId, Follow>,
}

impl TapSink {
    /// A track or speaker event (never dropped). False once the tap is gone.
    pub fn event(&self, ev: StageEvent) -> bool {
        self.tx.send(ev).is_ok()
    }

    /// A packet of a published track (`meta` as the forwarders see it). A plain track's packets
    /// pass with the publisher's numbers; a simulcast track is reduced to one layer (see the
    /// module docs). Returns `(alive, keyframe wanted)`: false once the tap is gone; a keyframe
    /// is wanted while a layer switch waits for one (the caller's PLI is throttled per track).
    pub fn media(&mut self, meta: &PacketMeta, clock_rate: u32, marker: bool, payload: &Bytes, arrival: Instant) -> (bool, bool) {
        let packet = |seq, ts| TapPacket { track: meta.source, seq, ts, marker, keyframe: meta.keyframe, payload: payload.clone(), arrival };
        if meta.layers <= 1 {
            return (self.packet(packet(meta.seq, meta.ts)), false);
        }
        let f = self.follow.entry(meta.source).or_insert_with(|| {
            let mut fwd = Forwarder::new(clock_rate, 1, 0, 0);
            fwd.handle_source(Some(Source { id: meta.source, layers: meta.layers, codec_matches: true }));
            fwd.handle_connected();
            Follow { fwd, heard: [None; 8], target: None }
        });
        let n = meta.layers.clamp(1, f.heard.len());
        f.heard[(meta.layer as usize).min(f.heard.len() - 1)] = Some(arrival);
        let best = (0..n).rev().find(|l| f.heard[*l].is_some_and(|t| arrival.saturating_duration_since(t) < LAYER_FRESH)).unwrap_or(0);
        let mut want = false;
        if f.target != Some(best) {
            f.target = Some(best);
            want |= f.fwd.handle_target_layer(best);
        }
        // The programme follows the floor itself: the tap sees what is published.
        let d = f.fwd.handle_packet(&PacketMeta { gate_open: true, ..*meta }, arrival);
        want |= d.request_keyframe;
        match d.verdict {
            Verdict::Forward { seq, ts, .. } => (self.packet(packet(seq, ts)), want),
            Verdict::Drop(DropReason::AwaitingKeyframe) => (!self.tx.is_closed(), want || f.fwd.wants_keyframe()),
            Verdict::Drop(_) => (!self.tx.is_closed(), want),
        }
    }

    /// Track `id` left the stage: forget how it was followed.
    pub fn forget(&mut self, id: TrackId) {
        self.follow.remove(&id);
    }

    /// A packet, unless the tap holds too many unread. False once the tap is gone.
    fn packet(&mut self, p: TapPacket) -> bool {
        if self.queued.load(Ordering::Relaxed) >= TAP_QUEUE {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return !self.tx.is_closed();
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(StageEvent::Packet(p)).is_ok()
    }
}

pub(crate) fn open(inner: &Arc<Inner>, room: &str) -> StageTap {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let sink = TapSink { id, tx, queued: Arc::clone(&queued), lost: Arc::clone(&lost), follow: HashMap::new() };
    inner.send(Cmd::TapOpen { room: room.to_owned(), sink });
    StageTap { rx, queued, lost, guard: TapGuard { inner: Arc::clone(inner), room: room.to_owned(), id } }
}
