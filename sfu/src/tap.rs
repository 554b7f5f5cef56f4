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
//! How: a tap subscribes to each published track's fan-out channel exactly as a forwarder
//! does (its own lagging `broadcast` receiver) and copies packets into one bounded queue with
//! `try_send`. A slow tap loses packets — counted in [`StageTap::lost`], and visible to the
//! consumer as RTP sequence gaps — and never holds up the stage or its subscribers. Track and
//! speaker events are never dropped: they wait for room in the queue on the tap's own task.
//! A simulcast publisher is tapped at its best layer heard in the last half second (the top one
//! once the sender's bandwidth estimate allows it), switched at that layer's keyframe, with
//! sequence numbers and timestamps rewritten so the tapped track stays one continuous stream (as
//! a forwarder does for a subscriber); other tracks keep the publisher's numbers. A tap's tasks (one, plus one per track)
//! end with the tap; they are not in [`crate::SfuStats::tasks_alive`], which counts the tasks of
//! sessions (a hub keeps a tap open per live livestream for its whole life). Packets carry the time the tap saw them
//! (microseconds after the ingest task read them), since the fan-out carries no arrival time.
//!
//! While a room has a tap it is a *stage*: it is kept even when idle (so the tap keeps seeing it)
//! and its publishers are asked for H.264 first (the offer's H.264 formats are moved first), the codec
//! the programme packages without re-encoding. A publisher that cannot send H.264 falls back to
//! VP8 as before: WebRTC viewers still get it; the programme reports it as unusable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use crate::rewrite::{LayerDecision, LayerSelector, SeqRewriter, TsRewriter};
use crate::room::{Fwd, PublishedTrack, Room, RoomEvent};
use crate::{Inner, MediaKind, TrackId};

/// Events a tap's queue holds (about four seconds of a two-camera stage).
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
    /// When the tap saw it.
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

/// A room's stage as a stream of [`StageEvent`]s. Dropping it stops its tasks.
pub struct StageTap {
    rx: mpsc::Receiver<StageEvent>,
    lost: Arc<AtomicU64>,
    _stage: StageGuard,
}

impl std::fmt::Debug for StageTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StageTap({})", self._stage.room)
    }
}

impl StageTap {
    /// The next event; `None` once the SFU is gone.
    pub async fn recv(&mut self) -> Option<StageEvent> {
        self.rx.recv().await
    }

    /// The next event if one is queued (to take a burst before acting on it).
    pub fn try_recv(&mut self) -> Option<StageEvent> {
        self.rx.try_recv().ok()
    }

    /// Packets this tap lost because its queue was full or it lagged behind a track's fan-out.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Marks the room a stage while the tap lives.
struct StageGuard {
    inner: Arc<Inner>,
    room: String,
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        {
            let mut stages = self.inner.stages.lock().expect("stages");
            if let Some(n) = stages.get_mut(&self.room) {
                *n -= 1;
                if *n == 0 {
                    stages.remove(&self.room);
                }
            }
        }
        let room = self.inner.room(&self.room);
        self.inner.forget_room_if_idle(&room);
    }
}

pub(crate) fn open(inner: &Arc<Inner>, room_name: &str) -> StageTap {
    *inner.stages.lock().expect("stages").entry(room_name.to_owned()).or_insert(0) += 1;
    let room = inner.room(room_name);
    let (tx, rx) = mpsc::channel(TAP_QUEUE);
    let lost = Arc::new(AtomicU64::new(0));
    tokio::spawn(run_tap(room, tx, Arc::clone(&lost)));
    StageTap { rx, lost, _stage: StageGuard { inner: Arc::clone(inner), room: room_name.to_owned() } }
}

fn codec_of(t: &PublishedTrack) -> TapCodec {
    TapCodec { mime_type: t.codec.mime_type.clone(), clock_rate: t.codec.clock_rate, channels: t.codec.channels, fmtp: t.codec.sdp_fmtp_line.clone() }
}

struct Tapped {
    participant: String,
    kind: MediaKind,
    task: tokio::task::JoinHandle<()>,
}

async fn run_tap(room: Arc<Room>, tx: mpsc::Sender<StageEvent>, lost: Arc<AtomicU64>) {
    let mut events = room.events.subscribe();
    let mut tapped: HashMap<TrackId, Tapped> = HashMap::new();
    let speaker = room.state.lock().expect("room").speaker.clone();
    if !sync(&room, &tx, &lost, &mut tapped).await {
        return;
    }
    if let Some(participant) = speaker
        && tx.send(StageEvent::ActiveSpeaker { participant }).await.is_err()
    {
        return;
    }
    loop {
        let ok = tokio::select! {
            r = events.recv() => match r {
                Ok(RoomEvent::Speaker(participant)) => tx.send(StageEvent::ActiveSpeaker { participant }).await.is_ok(),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => sync(&room, &tx, &lost, &mut tapped).await,
                Err(broadcast::error::RecvError::Closed) => false,
            },
            _ = tx.closed() => false,
        };
        if !ok {
            break;
        }
    }
    for (_, t) in tapped {
        t.task.abort();
    }
}

/// Makes the tapped set the room's tracks; false once the tap is gone.
async fn sync(room: &Room, tx: &mpsc::Sender<StageEvent>, lost: &Arc<AtomicU64>, tapped: &mut HashMap<TrackId, Tapped>) -> bool {
    let tracks = room.tracks();
    let gone: Vec<TrackId> = tapped.keys().filter(|id| !tracks.iter().any(|t| t.id == **id)).copied().collect();
    for id in gone {
        let t = tapped.remove(&id).expect("present");
        t.task.abort();
        if tx.send(StageEvent::TrackRemoved { track: id, participant: t.participant, kind: t.kind }).await.is_err() {
            return false;
        }
    }
    for t in tracks {
        if tapped.contains_key(&t.id) {
            continue;
        }
        // Subscribe before announcing, so no packet after the announcement is missed.
        let rx = t.tx.subscribe();
        let added = StageEvent::TrackAdded { track: t.id, participant: t.participant.clone(), kind: t.kind, codec: codec_of(&t) };
        if tx.send(added).await.is_err() {
            return false;
        }
        let task = tokio::spawn(tap_track(t.id, Arc::downgrade(&t), rx, tx.clone(), Arc::clone(lost)));
        tapped.insert(t.id, Tapped { participant: t.participant.clone(), kind: t.kind, task });
    }
    true
}

/// How recently a simulcast layer must have been heard to be the one tapped.
const LAYER_FRESH: std::time::Duration = std::time::Duration::from_millis(500);

/// Copies one track's packets into the tap's queue, dropping on full. A simulcast track is
/// reduced to one layer (see the module docs). Holds the track only weakly: the fan-out closing
/// (the track gone) ends the task.
async fn tap_track(track: TrackId, published: std::sync::Weak<PublishedTrack>, mut rx: broadcast::Receiver<Fwd>, tx: mpsc::Sender<StageEvent>, lost: Arc<AtomicU64>) {
    let clock = published.upgrade().map_or(90_000, |t| t.codec.clock_rate);
    let mut selector: Option<LayerSelector> = None;
    let mut seq = SeqRewriter::new(1);
    let mut ts = TsRewriter::new(clock, 0);
    let mut heard: [Option<Instant>; 8] = [None; 8];
    loop {
        let r = tokio::select! {
            r = rx.recv() => r,
            _ = tx.closed() => break,
        };
        let mut p = match r {
            Ok(p) => p,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                lost.fetch_add(n, Ordering::Relaxed);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let now = Instant::now();
        let layers = published.upgrade().map_or(1, |t| t.layer_count.load(Ordering::Relaxed)).clamp(1, heard.len());
        if layers > 1 {
            heard[(p.layer as usize).min(heard.len() - 1)] = Some(now);
            let best = (0..layers).rev().find(|l| heard[*l].is_some_and(|t| now.duration_since(t) < LAYER_FRESH)).unwrap_or(0);
            let sel = selector.get_or_insert_with(|| LayerSelector::new(layers, best));
            sel.handle_layers(layers);
            if sel.effective_target() != best {
                sel.handle_set_target(best);
            }
            let decision = sel.handle_packet(p.layer as usize, p.keyframe);
            let wants_keyframe = sel.wants_keyframe();
            match decision {
                LayerDecision::Drop => {
                    if wants_keyframe && let Some(t) = published.upgrade() {
                        t.request_keyframe().await; // throttled per track
                    }
                    continue;
                }
                LayerDecision::SwitchAndForward => {
                    seq.handle_switch();
                    ts.handle_switch();
                }
                LayerDecision::Forward => {}
            }
            let Some(s) = seq.rewrite(p.seq) else { continue };
            p.seq = s;
            p.ts = ts.rewrite(p.ts, now);
        }
        let ev = StageEvent::Packet(TapPacket { track, seq: p.seq, ts: p.ts, marker: p.marker, keyframe: p.keyframe, payload: p.payload, arrival: now });
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                lost.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
}

/// Asks `participant`'s cameras in `room` for a keyframe; false if they publish none there.
pub(crate) async fn request_keyframe(inner: &Inner, room: &str, participant: &str) -> bool {
    let room = inner.rooms.lock().expect("rooms").get(room).cloned();
    let Some(room) = room else { return false };
    let tracks: Vec<Arc<PublishedTrack>> = room.tracks().into_iter().filter(|t| t.participant == participant && t.kind == MediaKind::Video).collect();
    for t in &tracks {
        t.request_keyframe().await;
    }
    !tracks.is_empty()
}
