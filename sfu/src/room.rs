//! A room: the tracks published in it (its stage), who is in it, the floor gates and the
//! active-speaker detector. Shared by the sessions of the room behind a `std::sync::Mutex`
//! held for short sections only; media itself never goes through the room, it goes through
//! each track's fan-out channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::broadcast;
use webrtc::media_stream::track_remote::TrackRemote;

use crate::rewrite::PliThrottle;
use crate::speaker::ActiveSpeakerDetector;
use crate::{MediaKind, TrackId};

/// One packet as it travels from a publisher to its subscribers: only what the forwarders
/// rewrite, with header extensions already stripped (each leg negotiates its own ids).
#[derive(Clone, Debug)]
pub(crate) struct Fwd {
    pub layer: u8,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub keyframe: bool,
    pub payload: Bytes,
}

/// Per-participant floor gates (set by [`crate::Sfu::set_forwarding`]).
#[derive(Clone)]
pub(crate) struct Gates {
    pub audio: Arc<AtomicBool>,
    pub video: Arc<AtomicBool>,
}

impl Gates {
    fn open() -> Self {
        Self { audio: Arc::new(AtomicBool::new(true)), video: Arc::new(AtomicBool::new(true)) }
    }
}

/// A track a publisher sends into the room.
pub(crate) struct PublishedTrack {
    pub id: TrackId,
    pub participant: String,
    pub kind: MediaKind,
    pub codec: RTCRtpCodec,
    pub remote: Arc<dyn TrackRemote>,
    /// `(ssrc, layer)` of each simulcast layer seen so far.
    pub layers: Mutex<Vec<(u32, u8)>>,
    /// The publisher's simulcast rids (empty without simulcast).
    pub rids: Vec<String>,
    /// Number of layers the publisher announced (1 without simulcast).
    pub layer_count: AtomicUsize,
    pub tx: broadcast::Sender<Fwd>,
    pub pli: Mutex<PliThrottle>,
    pub gate: Arc<AtomicBool>,
}

impl PublishedTrack {
    /// Ask the publisher for a keyframe (all layers), throttled per track.
    pub async fn request_keyframe(&self) {
        if self.kind != MediaKind::Video {
            return;
        }
        let send = self.pli.lock().expect("pli").handle_request(Instant::now());
        if send {
            self.send_pli().await;
        }
    }

    /// Send a deferred keyframe request if it is due.
    pub async fn poll_deferred_keyframe(&self) {
        if self.kind == MediaKind::Video && self.pli.lock().expect("pli").poll_due(Instant::now()) {
            self.send_pli().await;
        }
    }

    async fn send_pli(&self) {
        let ssrcs: Vec<u32> = self.layers.lock().expect("layers").iter().map(|l| l.0).collect();
        let packets: Vec<Box<dyn rtc::rtcp::Packet>> = ssrcs
            .into_iter()
            .map(|media_ssrc| Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc }) as Box<dyn rtc::rtcp::Packet>)
            .collect();
        if !packets.is_empty() {
            let _ = self.remote.write_rtcp(packets).await;
        }
    }
}

/// What changed in a room; sessions that subscribe re-read the room state on each event.
#[derive(Clone, Debug)]
pub(crate) enum RoomEvent {
    Published { participant: String, track: TrackId, kind: MediaKind },
    Unpublished { participant: String, track: TrackId, kind: MediaKind },
    Speaker(String),
}

#[derive(Default)]
pub(crate) struct RoomState {
    pub tracks: Vec<Arc<PublishedTrack>>,
    /// Participant → (number of sessions, gates).
    pub participants: HashMap<String, (usize, Gates)>,
    pub viewers: usize,
    pub speaker: Option<String>,
    pub detector: ActiveSpeakerDetector<String>,
}

pub(crate) struct Room {
    pub name: String,
    pub state: Mutex<RoomState>,
    pub events: broadcast::Sender<RoomEvent>,
}

impl Room {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), state: Mutex::new(RoomState::default()), events: broadcast::channel(256).0 }
    }

    /// Gates of a participant, created open if unknown (the floor may be set before joining).
    pub fn gates(&self, participant: &str) -> Gates {
        let mut st = self.state.lock().expect("room");
        st.participants.entry(participant.to_owned()).or_insert_with(|| (0, Gates::open())).1.clone()
    }

    /// Admit one more session of `participant`, unless the room is full.
    pub fn enter(&self, participant: &str, max: usize) -> Result<Gates, crate::SfuError> {
        let mut st = self.state.lock().expect("room");
        let active = st.participants.values().filter(|(n, _)| *n > 0).count();
        let entry = st.participants.entry(participant.to_owned()).or_insert_with(|| (0, Gates::open()));
        if entry.0 == 0 && active >= max {
            return Err(crate::SfuError::RoomFull { room: self.name.clone(), max });
        }
        entry.0 += 1;
        Ok(entry.1.clone())
    }

    pub fn leave(&self, participant: &str) {
        let mut st = self.state.lock().expect("room");
        let gone = match st.participants.get_mut(participant) {
            Some(e) => {
                e.0 = e.0.saturating_sub(1);
                e.0 == 0
            }
            None => false,
        };
        if gone {
            st.detector.handle_remove(&participant.to_owned());
        }
    }

    pub fn publish(&self, t: Arc<PublishedTrack>) {
        let ev = RoomEvent::Published { participant: t.participant.clone(), track: t.id, kind: t.kind };
        self.state.lock().expect("room").tracks.push(t);
        let _ = self.events.send(ev);
    }

    pub fn unpublish(&self, id: TrackId) {
        let removed = {
            let mut st = self.state.lock().expect("room");
            let pos = st.tracks.iter().position(|t| t.id == id);
            pos.map(|i| st.tracks.remove(i))
        };
        if let Some(t) = removed {
            let _ = self.events.send(RoomEvent::Unpublished { participant: t.participant.clone(), track: id, kind: t.kind });
        }
    }

    pub fn tracks(&self) -> Vec<Arc<PublishedTrack>> {
        self.state.lock().expect("room").tracks.clone()
    }

    /// Feed one audio level; announces a new dominant speaker.
    pub fn handle_audio_level(&self, participant: &str, level: u8, now: Instant) {
        let changed = {
            let mut st = self.state.lock().expect("room");
            st.detector.handle_level(&participant.to_owned(), level, now);
            let s = st.detector.poll_speaker(now);
            if let Some(s) = &s {
                st.speaker = Some(s.clone());
            }
            s
        };
        if let Some(s) = changed {
            let _ = self.events.send(RoomEvent::Speaker(s));
        }
    }

    /// Nobody is left and no floor decision is pending: the room can be forgotten. A closed
    /// gate keeps the room (so a floor set before someone joins, or across a rejoin, holds).
    pub fn is_idle(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let st = self.state.lock().expect("room");
        st.viewers == 0
            && st.tracks.is_empty()
            && st.participants.values().all(|(n, g)| *n == 0 && g.audio.load(SeqCst) && g.video.load(SeqCst))
    }
}

/// The default minimum interval between two PLIs to one publisher track.
pub(crate) const PLI_INTERVAL: Duration = Duration::from_millis(300);
