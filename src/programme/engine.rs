//! The programme of one livestream: stage tracks in, parts and segments out.
//!
//! ```text
//! let mut p = Programme::new(cfg, now_us, first_msn, first_epoch);
//! loop {
//!     // from the SFU's tap                       // from the moderation driver / console
//!     p.handle_track_added(track, who, kind, codec, now_us);   p.handle_audible(who, yes, now_us);
//!     p.handle_packet(track, rtp, now_us);                     p.handle_turn(holder, open, now_us);
//!     p.handle_track_removed(track, now_us);                   p.handle_pin(who, now_us);
//!     p.handle_active_speaker(who, now_us);
//!     p.handle_tick(now_us);                                   // at p.poll_timeout() at the latest
//!     while let Some(out) = p.poll_output() {
//!         RequestKeyframe(who)  → sfu.request_keyframe(room, who)
//!         Init / Part / Segment → the store and the live playlist
//!         OnAir / Unsupported   → status, logs, the console
//!     }
//! }
//! ```
//!
//! Time: `now_us` is wall-clock microseconds since the Unix epoch; media time zero is the
//! programme's creation. A source's RTP timestamps are mapped onto media time at the frame that
//! put it on air (its arrival time), then follow its own clock, so output timestamps stay
//! continuous and strictly increasing across switches; audio stays gap-free (silence where the
//! voice is missing: a hole in the audio buffer stops an MSE player).
//!
//! Switching: the camera changes at the next keyframe of the new source, which is asked for
//! (`RequestKeyframe`); until it arrives the old picture stays. The voice changes at once.
//! While a camera is on air the programme asks it for a keyframe about once per segment
//! (WebRTC senders make keyframes only when asked).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::Bytes;

use super::fmp4::VideoParams;
use super::h264::{Depacketized, H264Depacketizer};
use super::opus::{self, OpusDepacketizer, OpusFrame};
use super::packager::{InitOut, PackagerConfig, PackagerOut, Packager, PartOut, SegmentOut};
use super::switcher::{self, Candidate, FloorView, OnAir};
use super::RtpPacket;
use crate::consult::ParticipantId;

/// Tuning of a programme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgrammeConfig {
    /// Parts and segments.
    pub packager: PackagerConfig,
    /// Ask the camera on air for a keyframe this long after its last one (a little more than
    /// the shortest segment, so that one keyframe closes each segment).
    pub keyframe_interval_us: u64,
    /// Repeat an unanswered keyframe request after this long.
    pub keyframe_retry_us: u64,
    /// At the start, wait this long for a camera's first keyframe before going on air with the
    /// holding picture.
    pub start_wait_us: u64,
    /// Audio is filled with silence up to this long before now (later voice packets still fit).
    pub audio_lag_us: u64,
    /// The camera on air sent nothing for this long: the holding picture fills in until its
    /// next keyframe.
    pub camera_stall_us: u64,
}

impl Default for ProgrammeConfig {
    fn default() -> Self {
        Self {
            packager: PackagerConfig::default(),
            keyframe_interval_us: 1_600_000,
            keyframe_retry_us: 500_000,
            start_wait_us: 2_000_000,
            audio_lag_us: 300_000,
            camera_stall_us: 1_000_000,
        }
    }
}

/// Opaque id of a stage track (the SFU's track id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey(pub u64);

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// A microphone.
    Audio,
    /// A camera.
    Video,
}

/// A track's codec as far as the programme cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackCodec {
    /// H.264: packaged as is.
    H264,
    /// Opus: packaged as is.
    Opus,
    /// Anything else (VP8, VP9, AV1, G.711...): cannot be packaged without transcoding.
    Other(String),
}

impl TrackCodec {
    /// From a MIME type (`video/H264`, `audio/opus`, ...).
    pub fn from_mime(mime: &str) -> Self {
        if mime.eq_ignore_ascii_case("video/h264") {
            TrackCodec::H264
        } else if mime.eq_ignore_ascii_case("audio/opus") {
            TrackCodec::Opus
        } else {
            TrackCodec::Other(mime.to_owned())
        }
    }
}

/// What a programme produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Ask `participant`'s camera for a keyframe (throttled here; the SFU throttles too).
    RequestKeyframe(ParticipantId),
    /// A new init segment.
    Init(InitOut),
    /// A part.
    Part(PartOut),
    /// A complete segment.
    Segment(SegmentOut),
    /// Who is now seen and heard.
    OnAir(OnAir),
    /// A track the programme cannot use: say so where a moderator sees it.
    Unsupported {
        /// Whose.
        participant: ParticipantId,
        /// Its MIME type.
        mime: String,
        /// Audio or video.
        kind: TrackKind,
    },
}

/// One source as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SourceStatus {
    /// Whose.
    pub participant: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Its MIME type.
    pub mime: String,
    /// Whether the programme can use it.
    pub usable: bool,
}

/// The programme's state for the console and the tests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProgrammeStatus {
    /// Whose camera is on air.
    pub video: Option<String>,
    /// Whose camera the programme is switching to (waiting for its keyframe).
    pub switching_to: Option<String>,
    /// Whose voice is on air.
    pub audio: Option<String>,
    /// The holding picture is shown (no camera on air, or it went quiet).
    pub holding_picture: bool,
    /// The moderator's pin.
    pub pin: Option<String>,
    /// Every track on stage.
    pub sources: Vec<SourceStatus>,
    /// What the audio is: `single_voice` (mixing several voices is not done yet).
    pub audio_mode: &'static str,
    /// Frames dropped by the depacketizers (loss, broken frames).
    pub dropped_frames: u64,
}

#[derive(Debug)]
enum Depack {
    H264(Box<H264Depacketizer>),
    Opus(OpusDepacketizer),
    Unused,
}

/// Where a source's RTP clock sits on media time.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    rtp: u32,
    media_us: u64,
    clock: u32,
}

impl Anchor {
    fn media_us(&self, rtp: u32) -> i64 {
        let d = rtp.wrapping_sub(self.rtp) as i32 as i64;
        self.media_us as i64 + d * 1_000_000 / self.clock as i64
    }
}

#[derive(Debug)]
struct Track {
    participant: ParticipantId,
    kind: TrackKind,
    codec: TrackCodec,
    depack: Depack,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    params: Option<VideoParams>,
    anchor: Option<Anchor>,
}

fn to_90k(us: u64) -> u64 {
    us * 9 / 100
}
fn to_48k(us: u64) -> u64 {
    us * 6 / 125
}
fn from_48k(t: u64) -> u64 {
    t * 125 / 6
}

/// The programme of one livestream (see the module docs for the calling contract).
#[derive(Debug)]
pub struct Programme {
    cfg: ProgrammeConfig,
    origin_us: u64,
    tracks: BTreeMap<TrackKey, Track>,
    floor: FloorView,
    speaker: Option<ParticipantId>,
    pin: Option<ParticipantId>,
    on_air: OnAir,
    video_track: Option<TrackKey>,
    /// The camera being switched to, and when its keyframe was last asked for.
    wanted: Option<(TrackKey, u64)>,
    audio_track: Option<TrackKey>,
    last_video_dts: Option<u64>,
    last_keyframe_media_us: Option<u64>,
    last_periodic_request_us: u64,
    requested: HashMap<ParticipantId, u64>,
    /// The next audio sample's decode time (48 kHz), once on air.
    audio_next: Option<u64>,
    /// When the first track appeared (the start wait counts from it).
    first_track_us: Option<u64>,
    /// Media time of the last camera frame put out.
    last_camera_us: Option<u64>,
    /// The holding picture is on air; its next frame is due at this media time (µs).
    slate_next_us: Option<u64>,
    slate_frames: u64,
    reported: HashSet<TrackKey>,
    packager: Packager,
    out: VecDeque<Output>,
    ended: bool,
    last_tick_us: u64,
}

/// The steady tick while the programme is on: silence is written in 20 ms packets.
pub const TICK_US: u64 = 20_000;

/// The holding picture: a dark 32x18 H.264 stream (x264, baseline) of an SPS, a PPS and two
/// IDR frames with different `idr_pic_id`, shown alternately at 10 fps while no camera is on
/// air. Every frame is a keyframe, so any part of it can start a segment; its size is the tell
/// by which a player knows it is not a picture (`web-client/src/videoBox.ts` counts no frames
/// of it), and it costs almost nothing to send and keep.
const SLATE: &[u8] = include_bytes!("slate.h264");
/// The holding picture's frame interval.
pub const SLATE_FRAME_US: u64 = 100_000;

struct Slate {
    params: VideoParams,
    frames: [Bytes; 2],
}

fn slate() -> &'static Slate {
    static SLATE_PARSED: std::sync::OnceLock<Slate> = std::sync::OnceLock::new();
    SLATE_PARSED.get_or_init(|| {
        // Annex B with 4-byte start codes only (as written by x264).
        let mut nalus: Vec<&[u8]> = Vec::new();
        let mut rest = SLATE;
        while let Some(i) = rest.windows(4).position(|w| w == [0, 0, 0, 1]) {
            rest = &rest[i + 4..];
            let end = rest.windows(4).position(|w| w == [0, 0, 0, 1]).unwrap_or(rest.len());
            nalus.push(&rest[..end]);
        }
        let avcc = |n: &[u8]| {
            let mut v = (n.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(n);
            Bytes::from(v)
        };
        Slate {
            params: VideoParams::new(Bytes::copy_from_slice(nalus[0]), Bytes::copy_from_slice(nalus[1])).expect("the slate's SPS parses"),
            frames: [avcc(nalus[2]), avcc(nalus[3])],
        }
    })
}

impl Programme {
    /// A programme whose media time zero is `now_us`; see [`Packager::new`] for the numbering.
    pub fn new(cfg: ProgrammeConfig, now_us: u64, first_msn: u64, first_epoch: u32) -> Self {
        let packager = Packager::new(cfg.packager.clone(), now_us / 1000, first_msn, first_epoch);
        Self {
            cfg,
            origin_us: now_us,
            tracks: BTreeMap::new(),
            floor: FloorView::default(),
            speaker: None,
            pin: None,
            on_air: OnAir::default(),
            video_track: None,
            wanted: None,
            audio_track: None,
            last_video_dts: None,
            last_keyframe_media_us: None,
            last_periodic_request_us: 0,
            requested: HashMap::new(),
            audio_next: None,
            first_track_us: None,
            last_camera_us: None,
            slate_next_us: None,
            slate_frames: 0,
            reported: HashSet::new(),
            packager,
            out: VecDeque::new(),
            ended: false,
            last_tick_us: now_us,
        }
    }

    fn media_us(&self, wall_us: u64) -> u64 {
        wall_us.saturating_sub(self.origin_us)
    }

    /// A track appeared on stage.
    pub fn handle_track_added(&mut self, track: TrackKey, participant: ParticipantId, kind: TrackKind, codec: TrackCodec, now_us: u64) {
        if self.ended {
            return;
        }
        let depack = match (&kind, &codec) {
            (TrackKind::Video, TrackCodec::H264) => Depack::H264(Box::default()),
            (TrackKind::Audio, TrackCodec::Opus) => Depack::Opus(OpusDepacketizer::new()),
            (_, c) => {
                let mime = match c {
                    TrackCodec::Other(m) => m.clone(),
                    TrackCodec::H264 => "video/H264".into(),
                    TrackCodec::Opus => "audio/opus".into(),
                };
                if self.reported.insert(track) {
                    self.out.push_back(Output::Unsupported { participant: participant.clone(), mime, kind });
                }
                Depack::Unused
            }
        };
        self.tracks.insert(track, Track { participant, kind, codec, depack, sps: None, pps: None, params: None, anchor: None });
        self.first_track_us.get_or_insert(now_us);
        self.reselect(now_us);
    }

    /// A track left the stage.
    pub fn handle_track_removed(&mut self, track: TrackKey, now_us: u64) {
        if self.tracks.remove(&track).is_none() {
            return;
        }
        self.reported.remove(&track);
        if self.video_track == Some(track) {
            self.video_track = None;
            self.last_keyframe_media_us = None;
        }
        if self.wanted.is_some_and(|(t, _)| t == track) {
            self.wanted = None;
        }
        if self.audio_track == Some(track) {
            self.audio_track = None;
        }
        self.reselect(now_us);
    }

    /// One RTP packet of a stage track.
    pub fn handle_packet(&mut self, track: TrackKey, packet: RtpPacket, now_us: u64) {
        let Some(t) = self.tracks.get_mut(&track) else { return };
        match &mut t.depack {
            Depack::H264(d) => d.handle_packet(packet, now_us),
            Depack::Opus(d) => d.handle_packet(packet, now_us),
            Depack::Unused => return,
        }
        self.drain_track(track, now_us);
    }

    /// The SFU's active-speaker detector changed its mind.
    pub fn handle_active_speaker(&mut self, who: ParticipantId, now_us: u64) {
        self.speaker = Some(who);
        self.reselect(now_us);
    }

    /// The floor says whether `who` may be heard.
    pub fn handle_audible(&mut self, who: ParticipantId, audible: bool, now_us: u64) {
        self.floor.audible.insert(who, audible);
        self.reselect(now_us);
    }

    /// The floor's holder and mode changed.
    pub fn handle_turn(&mut self, holder: Option<ParticipantId>, open: bool, now_us: u64) {
        self.floor.holder = holder;
        self.floor.open = open;
        self.reselect(now_us);
    }

    /// A moderator pins (or unpins) whose camera is on air.
    pub fn handle_pin(&mut self, who: Option<ParticipantId>, now_us: u64) {
        self.pin = who;
        self.reselect(now_us);
    }

    /// The livestream ended: the last part and segment are written; nothing more is accepted.
    pub fn handle_end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.packager.finish();
        self.drain_packager();
    }

    /// Time passed.
    pub fn handle_tick(&mut self, now_us: u64) {
        if self.ended {
            return;
        }
        self.last_tick_us = now_us;
        let keys: Vec<TrackKey> = self.tracks.keys().copied().collect();
        for k in keys {
            if let Some(t) = self.tracks.get_mut(&k) {
                match &mut t.depack {
                    Depack::H264(d) => d.handle_tick(now_us),
                    Depack::Opus(d) => d.handle_tick(now_us),
                    Depack::Unused => continue,
                }
            }
            self.drain_track(k, now_us);
        }
        let media_now = self.media_us(now_us);
        // On air: at the first camera keyframe, or with the holding picture if none came in
        // time (or there is no camera to wait for).
        if self.audio_next.is_none()
            && let Some(first) = self.first_track_us
        {
            let camera_expected = self.tracks.values().any(|t| t.kind == TrackKind::Video && t.codec == TrackCodec::H264);
            if now_us.saturating_sub(first) >= self.cfg.start_wait_us || !camera_expected {
                self.audio_next = Some(to_48k(media_now.saturating_sub(self.cfg.audio_lag_us)));
                self.slate_next_us = Some(media_now.saturating_sub(self.cfg.audio_lag_us));
            }
        }
        // The holding picture while no camera is on air (or the one on air went quiet): the
        // programme always has a picture track, so a player's buffers never lose one.
        let stalled = self.video_track.is_some() && self.last_camera_us.is_some_and(|t| media_now.saturating_sub(t) >= self.cfg.camera_stall_us);
        if self.audio_next.is_some() && (self.video_track.is_none() || stalled) {
            let next = self.slate_next_us.get_or_insert(media_now);
            let mut at = *next;
            let mut frames = Vec::new();
            while at <= media_now {
                frames.push(at);
                at += SLATE_FRAME_US;
            }
            *next = at;
            for t in frames {
                self.push_slate(t);
            }
        }
        // Silence where no voice is.
        if let Some(next) = self.audio_next {
            let until = to_48k(media_now.saturating_sub(self.cfg.audio_lag_us));
            let mut n = next;
            while n + opus::SILENCE_SAMPLES as u64 <= until {
                self.packager.push_audio(n, Bytes::from_static(&opus::SILENCE_20MS), opus::SILENCE_SAMPLES);
                n += opus::SILENCE_SAMPLES as u64;
            }
            self.audio_next = Some(n);
        }
        // Keyframes: one per segment from the camera on air, and the one a switch waits for.
        if let (Some(v), Some(k)) = (self.video_track, self.last_keyframe_media_us)
            && media_now.saturating_sub(k) >= self.cfg.keyframe_interval_us
            && now_us.saturating_sub(self.last_periodic_request_us) >= self.cfg.keyframe_retry_us
            && let Some(who) = self.tracks.get(&v).map(|t| t.participant.clone())
        {
            self.last_periodic_request_us = now_us;
            self.request_keyframe(who, now_us);
        }
        if let Some((w, asked)) = self.wanted
            && now_us.saturating_sub(asked) >= self.cfg.keyframe_retry_us
            && let Some(who) = self.tracks.get(&w).map(|t| t.participant.clone())
        {
            self.wanted = Some((w, now_us));
            self.request_keyframe(who, now_us);
        }
        self.packager.handle_tick(media_now);
        self.drain_packager();
    }

    /// When [`handle_tick`](Self::handle_tick) must run at the latest: a reorder hole to give
    /// up, or the steady tick (silence, keyframe requests) while anything is on stage or on air.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.ended {
            return None;
        }
        let depack = self.tracks.values().filter_map(|t| match &t.depack {
            Depack::H264(d) => d.poll_timeout(),
            Depack::Opus(d) => d.poll_timeout(),
            Depack::Unused => None,
        });
        let active = self.audio_next.is_some() || !self.tracks.is_empty();
        let steady = active.then_some(self.last_tick_us + TICK_US);
        depack.chain(steady).min()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// What is on air and what is on stage.
    pub fn status(&self) -> ProgrammeStatus {
        let who = |t: Option<TrackKey>| t.and_then(|t| self.tracks.get(&t)).map(|t| t.participant.as_str().to_owned());
        ProgrammeStatus {
            video: who(self.video_track),
            switching_to: who(self.wanted.map(|w| w.0)),
            audio: who(self.audio_track),
            holding_picture: self.slate_next_us.is_some(),
            pin: self.pin.as_ref().map(|p| p.as_str().to_owned()),
            sources: self
                .tracks
                .values()
                .map(|t| SourceStatus {
                    participant: t.participant.as_str().to_owned(),
                    kind: if t.kind == TrackKind::Audio { "audio" } else { "video" },
                    mime: match &t.codec {
                        TrackCodec::H264 => "video/H264".into(),
                        TrackCodec::Opus => "audio/opus".into(),
                        TrackCodec::Other(m) => m.clone(),
                    },
                    usable: !matches!(t.depack, Depack::Unused),
                })
                .collect(),
            audio_mode: "single_voice",
            dropped_frames: self
                .tracks
                .values()
                .map(|t| match &t.depack {
                    Depack::H264(d) => d.stats().dropped_frames,
                    _ => 0,
                })
                .sum(),
        }
    }

    /// One frame of the holding picture at media time `t_us`.
    fn push_slate(&mut self, t_us: u64) {
        let slate = slate();
        let mut dts = to_90k(t_us);
        if let Some(last) = self.last_video_dts
            && dts <= last
        {
            dts = last + 1;
        }
        self.last_video_dts = Some(dts);
        let frame = slate.frames[(self.slate_frames % 2) as usize].clone();
        self.slate_frames += 1;
        self.packager.set_video_source(None);
        self.packager.push_video(dts, frame, true, &slate.params);
        self.drain_packager();
    }

    fn request_keyframe(&mut self, who: ParticipantId, now_us: u64) {
        // The SFU throttles per track as well; this only keeps the request stream small.
        if self.requested.get(&who).is_some_and(|t| now_us.saturating_sub(*t) < 250_000) {
            return;
        }
        self.requested.insert(who.clone(), now_us);
        self.out.push_back(Output::RequestKeyframe(who));
    }

    fn first_track(&self, who: &ParticipantId, kind: TrackKind, codec: TrackCodec) -> Option<TrackKey> {
        self.tracks.iter().find(|(_, t)| &t.participant == who && t.kind == kind && t.codec == codec).map(|(k, _)| *k)
    }

    /// Applies the switcher's choice: the voice changes now, the camera at its next keyframe.
    fn reselect(&mut self, now_us: u64) {
        if self.ended {
            return;
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        for t in self.tracks.values() {
            let c = match candidates.iter_mut().find(|c| c.participant == t.participant) {
                Some(c) => c,
                None => {
                    candidates.push(Candidate { participant: t.participant.clone(), video: false, audio: false });
                    candidates.last_mut().expect("pushed")
                }
            };
            c.video |= t.kind == TrackKind::Video && t.codec == TrackCodec::H264;
            c.audio |= t.kind == TrackKind::Audio && t.codec == TrackCodec::Opus;
        }
        let current = self.video_track.and_then(|t| self.tracks.get(&t)).map(|t| t.participant.clone());
        let choice = switcher::choose(switcher::Inputs {
            floor: &self.floor,
            speaker: self.speaker.as_ref(),
            pin: self.pin.as_ref(),
            current_video: current.as_ref(),
            candidates: &candidates,
        });
        let audio = choice.audio.as_ref().and_then(|p| self.first_track(p, TrackKind::Audio, TrackCodec::Opus));
        if audio != self.audio_track {
            self.audio_track = audio;
            if let Some(t) = audio.and_then(|a| self.tracks.get_mut(&a)) {
                t.anchor = None; // placed on media time at its next packet
            }
        }
        let video = choice.video.as_ref().and_then(|p| self.first_track(p, TrackKind::Video, TrackCodec::H264));
        match video {
            Some(v) if Some(v) == self.video_track => self.wanted = None,
            Some(v) => {
                if self.wanted.map(|w| w.0) != Some(v) {
                    self.wanted = Some((v, now_us));
                    if let Some(who) = choice.video.clone() {
                        self.request_keyframe(who, now_us);
                    }
                }
            }
            None => self.wanted = None,
        }
        let on_air = OnAir { video: current, audio: choice.audio.filter(|_| self.audio_track.is_some()) };
        if on_air != self.on_air {
            self.on_air = on_air.clone();
            self.out.push_back(Output::OnAir(on_air));
        }
    }

    fn drain_track(&mut self, key: TrackKey, now_us: u64) {
        loop {
            let Some(t) = self.tracks.get_mut(&key) else { return };
            match &mut t.depack {
                Depack::H264(d) => match d.poll() {
                    None => return,
                    Some(Depacketized::KeyframeNeeded) => {
                        let who = t.participant.clone();
                        if self.video_track == Some(key) || self.wanted.is_some_and(|w| w.0 == key) {
                            self.request_keyframe(who, now_us);
                        }
                    }
                    Some(Depacketized::Frame(au)) => {
                        if let Some(sps) = &au.sps {
                            t.sps = Some(sps.clone());
                        }
                        if let Some(pps) = &au.pps {
                            t.pps = Some(pps.clone());
                        }
                        if (au.sps.is_some() || au.pps.is_some())
                            && let (Some(sps), Some(pps)) = (&t.sps, &t.pps)
                        {
                            t.params = VideoParams::new(sps.clone(), pps.clone()).ok();
                        }
                        self.handle_video_frame(key, au, now_us);
                    }
                },
                Depack::Opus(d) => match d.poll() {
                    None => return,
                    Some(f) => self.handle_audio_frame(key, f, now_us),
                },
                Depack::Unused => return,
            }
        }
    }

    fn handle_video_frame(&mut self, key: TrackKey, au: super::h264::AccessUnit, now_us: u64) {
        let arrival = self.media_us(au.arrival_us.min(now_us));
        let switch_now = self.wanted.is_some_and(|w| w.0 == key) && au.keyframe && self.tracks.get(&key).is_some_and(|t| t.params.is_some());
        if switch_now {
            self.wanted = None;
            self.video_track = Some(key);
            if let Some(t) = self.tracks.get_mut(&key) {
                t.anchor = Some(Anchor { rtp: au.rtp_ts, media_us: arrival, clock: 90_000 });
            }
            let who = self.tracks.get(&key).map(|t| t.participant.clone());
            self.packager.set_video_source(who.as_ref().map(|w| w.as_str().to_owned()));
            self.on_air.video = who;
            self.out.push_back(Output::OnAir(self.on_air.clone()));
        }
        if self.video_track != Some(key) {
            return;
        }
        if self.slate_next_us.is_some() {
            // The holding picture is on: the camera comes back at a keyframe (others cannot be
            // decoded after the slate's parameters).
            if !au.keyframe {
                if let Some(who) = self.tracks.get(&key).map(|t| t.participant.clone()) {
                    self.request_keyframe(who, now_us);
                }
                return;
            }
            self.slate_next_us = None;
            let who = self.tracks.get(&key).map(|t| t.participant.as_str().to_owned());
            self.packager.set_video_source(who);
        }
        let Some(t) = self.tracks.get_mut(&key) else { return };
        let Some(params) = t.params.clone() else { return };
        let anchor = *t.anchor.get_or_insert(Anchor { rtp: au.rtp_ts, media_us: arrival, clock: 90_000 });
        let mut media = anchor.media_us(au.rtp_ts);
        if (media - arrival as i64).abs() > 1_000_000 {
            // The source's clock jumped (a restarted encoder) or drifted: place it again.
            t.anchor = Some(Anchor { rtp: au.rtp_ts, media_us: arrival, clock: 90_000 });
            media = arrival as i64;
        }
        let mut dts = to_90k(media.max(0) as u64);
        if let Some(last) = self.last_video_dts
            && dts <= last
        {
            dts = last + 1;
        }
        if self.audio_next.is_none() {
            // On air: sound starts with the first picture.
            self.audio_next = Some(to_48k(dts * 100 / 9));
        }
        self.last_video_dts = Some(dts);
        self.last_camera_us = Some(self.media_us(now_us));
        if au.keyframe {
            self.last_keyframe_media_us = Some(dts * 100 / 9);
        }
        let mut avcc = Vec::with_capacity(au.avcc_len());
        au.write_avcc(&mut avcc);
        self.packager.push_video(dts, Bytes::from(avcc), au.keyframe, &params);
        self.drain_packager();
    }

    fn handle_audio_frame(&mut self, key: TrackKey, f: OpusFrame, now_us: u64) {
        if self.audio_track != Some(key) {
            return;
        }
        let Some(next) = self.audio_next else { return }; // not on air yet
        let arrival = self.media_us(f.arrival_us.min(now_us));
        let Some(t) = self.tracks.get_mut(&key) else { return };
        let anchor = *t.anchor.get_or_insert(Anchor { rtp: f.rtp_ts, media_us: arrival.max(from_48k(next)), clock: opus::CLOCK_RATE });
        let mut media = anchor.media_us(f.rtp_ts);
        if (media - arrival as i64).abs() > 1_000_000 {
            t.anchor = Some(Anchor { rtp: f.rtp_ts, media_us: arrival.max(from_48k(next)), clock: opus::CLOCK_RATE });
            media = arrival.max(from_48k(next)) as i64;
        }
        let at = to_48k(media.max(0) as u64);
        let frame = opus::SILENCE_SAMPLES as u64;
        let mut n = next;
        if at + 2 * frame < n {
            return; // overlaps what is already out (jitter or a clock running fast): drop
        }
        while n + frame <= at {
            self.packager.push_audio(n, Bytes::from_static(&opus::SILENCE_20MS), opus::SILENCE_SAMPLES);
            n += frame;
        }
        self.packager.push_audio(n, f.data, f.samples);
        self.audio_next = Some(n + f.samples as u64);
        self.drain_packager();
    }

    fn drain_packager(&mut self) {
        while let Some(o) = self.packager.poll() {
            self.out.push_back(match o {
                PackagerOut::Init(i) => Output::Init(i),
                PackagerOut::Part(p) => Output::Part(p),
                PackagerOut::Segment(s) => Output::Segment(s),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::fmp4::{AUDIO_TRACK, VIDEO_TRACK};
    use crate::programme::h264::nal_type;
    use crate::programme::h264::tests::{PPS, SPS_320X240, SPS_640X360, idr, packetize, slice};
    use mp4_atom::{Decode, Moof};
    use proptest::prelude::*;

    const T0: u64 = 1_726_800_000_000_000;

    fn p(s: &str) -> ParticipantId {
        ParticipantId::new(s)
    }

    /// A simulated WebRTC publisher: 30 fps H.264 that sends a keyframe when asked, 20 ms Opus.
    struct Publisher {
        who: ParticipantId,
        video: Option<(TrackKey, &'static [u8])>,
        audio: Option<TrackKey>,
        vseq: u16,
        aseq: u16,
        want_key: bool,
        frames: u32,
    }

    struct Stage {
        prog: Programme,
        pubs: Vec<Publisher>,
        now: u64,
        out: Vec<Output>,
        /// Drop every video packet whose index is in here (counted over the whole run).
        drop: HashSet<u64>,
        sent: u64,
    }

    impl Stage {
        fn new() -> Self {
            Stage { prog: Programme::new(ProgrammeConfig::default(), T0, 0, 0), pubs: Vec::new(), now: T0, out: Vec::new(), drop: HashSet::new(), sent: 0 }
        }

        fn publish(&mut self, who: &str, video: Option<&'static [u8]>, audio: bool, vp8: bool) {
            let n = self.pubs.len() as u64 * 10;
            let who = p(who);
            let mut pb = Publisher { who: who.clone(), video: None, audio: None, vseq: 1000, aseq: 5000, want_key: false, frames: 0 };
            if let Some(sps) = video {
                let k = TrackKey(n + 1);
                let codec = if vp8 { TrackCodec::Other("video/VP8".into()) } else { TrackCodec::H264 };
                self.prog.handle_track_added(k, who.clone(), TrackKind::Video, codec, self.now);
                pb.video = Some((k, sps));
            }
            if audio {
                let k = TrackKey(n + 2);
                self.prog.handle_track_added(k, who.clone(), TrackKind::Audio, TrackCodec::Opus, self.now);
                pb.audio = Some(k);
            }
            self.pubs.push(pb);
            self.collect();
        }

        fn collect(&mut self) {
            while let Some(o) = self.prog.poll_output() {
                if let Output::RequestKeyframe(who) = &o {
                    for pb in self.pubs.iter_mut().filter(|pb| &pb.who == who) {
                        pb.want_key = true;
                    }
                }
                self.out.push(o);
            }
        }

        /// Runs the stage for `ms` milliseconds in 10 ms steps.
        fn run(&mut self, ms: u64) {
            for _ in 0..ms / 10 {
                self.now += 10_000;
                let media_ms = (self.now - T0) / 1000;
                let mut packets = Vec::new();
                for pb in self.pubs.iter_mut() {
                    if let Some((k, sps)) = pb.video
                        && media_ms * 3 / 100 >= pb.frames as u64
                    {
                        // 90 kHz clock with its own random-ish origin per publisher.
                        let ts = 77_777u32.wrapping_mul(k.0 as u32 + 1).wrapping_add(pb.frames * 3000);
                        let key = pb.frames == 0 || std::mem::take(&mut pb.want_key);
                        let nalus = if key { vec![sps.to_vec(), PPS.to_vec(), idr(2500, pb.frames as u8)] } else { vec![slice(800, pb.frames as u8)] };
                        for rtp in packetize(&nalus, &mut pb.vseq, ts, 1100) {
                            packets.push((k, rtp, true));
                        }
                        pb.frames += 1;
                    }
                    if let Some(k) = pb.audio
                        && media_ms.is_multiple_of(20)
                    {
                        let ts = 1234u32.wrapping_mul(k.0 as u32).wrapping_add(media_ms as u32 * 48);
                        packets.push((k, RtpPacket { seq: pb.aseq, ts, marker: false, payload: Bytes::from_static(&[0x78, 1, 2, 3]), arrival_us: 0 }, false));
                        pb.aseq = pb.aseq.wrapping_add(1);
                    }
                }
                for (k, mut rtp, video) in packets {
                    rtp.arrival_us = self.now;
                    if video {
                        self.sent += 1;
                        if self.drop.contains(&self.sent) {
                            continue;
                        }
                    }
                    self.prog.handle_packet(k, rtp, self.now);
                }
                self.prog.handle_tick(self.now);
                self.collect();
            }
        }

        fn parts(&self) -> Vec<&PartOut> {
            self.out.iter().filter_map(|o| if let Output::Part(p) = o { Some(p) } else { None }).collect()
        }

        fn segments(&self) -> Vec<&SegmentOut> {
            self.out.iter().filter_map(|o| if let Output::Segment(s) = o { Some(s) } else { None }).collect()
        }

        fn requests(&self, who: &str) -> usize {
            self.out.iter().filter(|o| matches!(o, Output::RequestKeyframe(w) if w.as_str() == who)).count()
        }

        fn inits(&self) -> Vec<&InitOut> {
            self.out.iter().filter_map(|o| if let Output::Init(i) = o { Some(i) } else { None }).collect()
        }

        /// Checks the whole output as a player would see it: every fragment parses, video decode
        /// times strictly increase and are contiguous, audio is contiguous. Returns the video
        /// samples' first NAL tag byte per part (to tell sources apart) and the audio duration.
        fn check_timeline(&self) -> (Vec<u8>, u64) {
            let mut video_next: Option<u64> = None;
            let mut audio_next: Option<u64> = None;
            let mut tags = Vec::new();
            for part in self.parts() {
                let moof = Moof::decode(&mut std::io::Cursor::new(&part.bytes[..])).expect("fragment parses");
                for traf in &moof.traf {
                    let base = traf.tfdt.as_ref().unwrap().base_media_decode_time;
                    let dur: u64 = traf.trun[0].samples.iter().map(|e| e.duration.unwrap() as u64).sum();
                    let next = if traf.tfhd.track_id == VIDEO_TRACK { &mut video_next } else { &mut audio_next };
                    if let Some(n) = *next {
                        assert_eq!(base, n, "track {} not contiguous at part {}.{}", traf.tfhd.track_id, part.segment.msn, part.part.index);
                    }
                    assert!(traf.trun[0].samples.iter().all(|e| e.duration.unwrap() > 0));
                    *next = Some(base + dur);
                    if traf.tfhd.track_id == VIDEO_TRACK {
                        let off = traf.trun[0].data_offset.unwrap() as usize;
                        // AVCC: 4-byte length, NAL header, then our tag byte.
                        assert!(matches!(nal_type(part.bytes[off + 4]), 1 | 5));
                        tags.push(part.bytes[off + 5]);
                    }
                }
                assert!(moof.traf.iter().any(|t| t.tfhd.track_id == AUDIO_TRACK) || moof.traf.len() == 1);
            }
            (tags, audio_next.unwrap_or(0))
        }
    }

    #[test]
    fn a_publisher_goes_on_air_at_its_first_keyframe_and_is_asked_for_one_per_segment() {
        let mut s = Stage::new();
        s.publish("wang", Some(SPS_640X360), true, false);
        s.run(8_000);
        let inits = s.inits();
        assert_eq!(inits.len(), 1);
        assert_eq!(inits[0].codecs, "avc1.42c01e,opus");
        let segs = s.segments();
        assert!(segs.len() >= 3, "{} segments", segs.len());
        for seg in &segs {
            assert!(seg.entry.parts[0].independent);
            assert!(seg.entry.duration_us <= 2_450_000, "{}", seg.entry.duration_us);
            assert_eq!(seg.entry.video_source.as_deref(), Some("wang"));
        }
        // About one keyframe request per segment (plus the first).
        let asks = s.requests("wang");
        assert!(asks >= segs.len() && asks <= segs.len() * 2 + 2, "{asks} requests for {} segments", segs.len());
        s.check_timeline();
        assert_eq!(s.prog.status().video.as_deref(), Some("wang"));
        assert_eq!(s.prog.status().audio.as_deref(), Some("wang"));
    }

    #[test]
    fn handing_the_floor_switches_the_camera_at_the_new_speakers_keyframe_with_continuous_timestamps() {
        let mut s = Stage::new();
        s.prog.handle_turn(Some(p("wang")), false, s.now);
        s.publish("wang", Some(SPS_640X360), true, false);
        s.publish("li", Some(SPS_640X360), true, false);
        s.prog.handle_audible(p("li"), false, s.now);
        s.run(3_000);
        assert_eq!(s.prog.status().video.as_deref(), Some("wang"));
        let before = s.requests("li");
        s.prog.handle_audible(p("wang"), false, s.now);
        s.prog.handle_audible(p("li"), true, s.now);
        s.prog.handle_turn(Some(p("li")), false, s.now);
        s.collect();
        assert_eq!(s.requests("li"), before + 1, "the new speaker is asked for a keyframe at once");
        assert_eq!(s.prog.status().audio.as_deref(), Some("li"), "the voice changes at once");
        s.run(3_000);
        assert_eq!(s.prog.status().video.as_deref(), Some("li"));
        // Same parameters: no new epoch, no discontinuity.
        assert_eq!(s.inits().len(), 1);
        let (tags, _) = s.check_timeline();
        assert!(!tags.is_empty());
        let on_air: Vec<&OnAir> = s.out.iter().filter_map(|o| if let Output::OnAir(a) = o { Some(a) } else { None }).collect();
        assert!(on_air.iter().any(|a| a.video.as_ref().is_some_and(|v| v.as_str() == "li")));
    }

    #[test]
    fn a_new_resolution_on_switch_starts_an_epoch_with_a_discontinuity() {
        let mut s = Stage::new();
        s.publish("wang", Some(SPS_640X360), true, false);
        s.run(2_500);
        s.publish("li", Some(SPS_320X240), true, false);
        s.prog.handle_pin(Some(p("li")), s.now);
        s.run(3_000);
        let inits = s.inits();
        assert_eq!(inits.len(), 2);
        assert_eq!(inits[1].resolution, Some((320, 240)));
        let seg = s.segments().into_iter().find(|g| g.entry.epoch == inits[1].epoch).expect("a segment of the new epoch");
        assert!(seg.entry.discontinuity);
        assert_eq!(seg.entry.video_source.as_deref(), Some("li"));
        s.check_timeline();
    }

    #[test]
    fn a_vp8_only_publisher_is_reported_and_only_heard() {
        let mut s = Stage::new();
        s.publish("wang", Some(SPS_640X360), true, false);
        s.run(1_000);
        s.publish("vp8", Some(SPS_640X360), true, true);
        s.prog.handle_turn(Some(p("vp8")), false, s.now);
        s.prog.handle_audible(p("wang"), false, s.now);
        s.run(2_000);
        assert!(s.out.iter().any(|o| matches!(o, Output::Unsupported { participant, mime, kind: TrackKind::Video } if participant.as_str() == "vp8" && mime == "video/VP8")));
        let st = s.prog.status();
        assert_eq!(st.video.as_deref(), Some("wang"), "the previous picture stays");
        assert_eq!(st.audio.as_deref(), Some("vp8"));
        assert!(st.sources.iter().any(|x| x.participant == "vp8" && x.kind == "video" && !x.usable));
        assert_eq!(s.requests("vp8"), 0);
    }

    #[test]
    fn without_a_camera_the_programme_shows_the_holding_picture_with_the_voice() {
        let mut s = Stage::new();
        s.publish("voice", None, true, false);
        s.run(6_000);
        let inits = s.inits();
        assert_eq!(inits.len(), 1, "one epoch: the holding picture and the voice");
        assert_eq!(inits[0].resolution, Some((32, 18)));
        assert!(inits[0].codecs.ends_with(",opus"), "{}", inits[0].codecs);
        assert!(s.segments().len() >= 2);
        assert!(s.segments().iter().all(|g| g.entry.video_source.is_none() && g.entry.parts[0].independent));
        let (frames, audio_end) = s.check_timeline();
        assert!(frames.len() >= 8, "{} video parts", frames.len());
        assert!(audio_end > 48_000 * 4, "{audio_end}");
        assert!(s.prog.status().holding_picture);
        assert_eq!(s.prog.status().audio.as_deref(), Some("voice"));
    }

    #[test]
    fn a_stage_nobody_may_be_heard_on_is_silent_not_stalled() {
        let mut s = Stage::new();
        s.publish("wang", Some(SPS_640X360), true, false);
        s.prog.handle_audible(p("wang"), false, s.now);
        s.run(5_000);
        assert_eq!(s.prog.status().audio, None);
        let (_, audio_end) = s.check_timeline();
        assert!(audio_end > 48_000 * 3, "silence keeps the audio track going: {audio_end}");
    }

    #[test]
    fn an_empty_stage_keeps_the_programme_on_air_with_the_holding_picture_until_a_camera_returns() {
        let mut s = Stage::new();
        s.publish("wang", Some(SPS_640X360), true, false);
        s.run(3_000);
        for k in s.prog.tracks.keys().copied().collect::<Vec<_>>() {
            s.prog.handle_track_removed(k, s.now);
        }
        s.pubs.clear();
        s.run(1_500);
        let empty = s.segments().len();
        s.run(4_000);
        assert!(s.segments().len() >= empty + 2, "the programme goes on while the stage is empty");
        assert!(s.prog.status().holding_picture);
        s.publish("li", Some(SPS_640X360), true, false);
        s.run(3_000);
        assert!(!s.prog.status().holding_picture);
        let resumed = s.segments().into_iter().find(|g| g.entry.video_source.as_deref() == Some("li")).expect("li on air");
        assert!(resumed.entry.discontinuity, "the camera's parameters differ from the holding picture's");
        // Camera, holding picture, camera: three epochs, one timeline.
        assert_eq!(s.inits().len(), 3);
        s.check_timeline();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// Floor changes, pins and lost packets in any order: every fragment parses, video
        /// decode times stay contiguous and increasing, audio stays gap-free.
        #[test]
        fn timestamps_stay_continuous_whatever_the_floor_and_the_losses_do(
            events in proptest::collection::vec((0u8..5, 200u64..1500), 1..10),
            drops in proptest::collection::btree_set(1u64..3000, 0..30),
        ) {
            let mut s = Stage::new();
            s.drop = drops.into_iter().collect();
            s.publish("a", Some(SPS_640X360), true, false);
            s.publish("b", Some(SPS_320X240), true, false);
            s.publish("c", None, true, false);
            for (e, ms) in events {
                match e {
                    0 => s.prog.handle_turn(Some(p("a")), false, s.now),
                    1 => s.prog.handle_turn(Some(p("b")), false, s.now),
                    2 => s.prog.handle_pin(Some(p("b")), s.now),
                    3 => s.prog.handle_pin(None, s.now),
                    _ => s.prog.handle_active_speaker(p("c"), s.now),
                }
                s.run(ms);
            }
            s.run(2_000);
            let (tags, audio_end) = s.check_timeline();
            prop_assert!(!tags.is_empty() && audio_end > 48_000, "{} video parts, audio to {}", tags.len(), audio_end);
        }
    }
}
