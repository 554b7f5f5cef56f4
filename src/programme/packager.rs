//! Cuts the programme's timed samples into LL-HLS parts and segments, each part one fMP4
//! fragment, and decides where a new init segment (an *epoch*) begins.
//!
//! ```text
//! p.push_video(dts_90k, avcc, keyframe, &params)   // frames of whichever camera is on air
//! p.push_audio(dts_48k, opus, samples)             // contiguous: the caller fills gaps
//! p.handle_tick(media_now_us)                       // video stalled → an audio-only epoch
//! p.finish()                                        // the last part and segment
//! while let Some(out) = p.poll() { Init | Part | Segment }
//! ```
//!
//! Rules (`PackagerConfig` holds the numbers):
//! - video leads: a frame's duration is known when the next frame arrives, so a part ends at a
//!   frame's start and holds the frames before it (one frame of delay, ~33 ms);
//! - a part ends once it reaches 85 % of the part target (RFC 8216bis: every part but a
//!   segment's last is at least that long, none longer than the target);
//! - a segment ends at the first keyframe after `segment_min_us`, or, if no keyframe comes (a
//!   publisher that ignores keyframe requests), at `segment_max_us` on a part boundary;
//! - new video parameters (another SPS/PPS: another camera or resolution) start a new epoch at
//!   that keyframe: new init segment, `EXT-X-DISCONTINUITY`. So does video appearing or
//!   disappearing (an epoch has a video track only while there is video);
//! - without video, audio leads (every Opus packet is independent).
//!
//! Audio goes into the part whose time span it starts in, once the part closes; audio that comes
//! after its part closed goes into the next one (its own `tfdt` keeps its timeline exact).

use std::collections::VecDeque;

use bytes::Bytes;

use super::fmp4::{self, Sample, TrackRun, VideoParams};
use super::playlist::{PartEntry, SegmentEntry, SegmentStart};

/// Part and segment timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackagerConfig {
    /// `PART-TARGET` in microseconds.
    pub part_target_us: u64,
    /// A keyframe closes a segment once it is at least this long.
    pub segment_min_us: u64,
    /// A segment is closed at a part boundary once it reaches this, keyframe or not; stays
    /// below `EXT-X-TARGETDURATION` + 0.5 s so that the rounded duration never exceeds it.
    pub segment_max_us: u64,
    /// Video silent this long while audio goes on: the epoch ends and an audio-only one begins.
    pub video_stall_us: u64,
    /// Segment length without video (audio cuts anywhere: every Opus packet is independent).
    pub audio_segment_us: u64,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self { part_target_us: 500_000, segment_min_us: 1_500_000, segment_max_us: 2_400_000, video_stall_us: 2_000_000, audio_segment_us: 2_000_000 }
    }
}

impl PackagerConfig {
    /// The shortest part that may end before its segment does (85 % of the target).
    pub fn part_min_us(&self) -> u64 {
        self.part_target_us * 85 / 100
    }
}

/// An init segment: the start of an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitOut {
    /// Its number (`init-{epoch}.mp4`).
    pub epoch: u32,
    /// The bytes.
    pub bytes: Bytes,
    /// RFC 6381 codecs (`avc1.42e01f,opus`).
    pub codecs: String,
    /// Picture size, if the epoch has video.
    pub resolution: Option<(u32, u32)>,
}

/// A written part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartOut {
    /// The segment it belongs to.
    pub segment: SegmentStart,
    /// The part.
    pub part: PartEntry,
    /// The fragment (`moof` + `mdat`).
    pub bytes: Bytes,
}

/// A complete segment: its parts concatenated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentOut {
    /// What the playlists and the index say about it.
    pub entry: SegmentEntry,
    /// The bytes (`{msn}.m4s`).
    pub bytes: Bytes,
}

/// What the packager produces, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackagerOut {
    /// A new init segment; the parts that follow need it.
    Init(InitOut),
    /// A part of the segment being written.
    Part(PartOut),
    /// The segment is complete.
    Segment(SegmentOut),
}

#[derive(Debug)]
struct Epoch {
    id: u32,
    video: Option<VideoParams>,
}

#[derive(Debug)]
struct OpenSegment {
    start: SegmentStart,
    start_us: u64,
    parts: Vec<PartEntry>,
    bytes: Vec<u8>,
    video_source: Option<String>,
}

#[derive(Debug)]
struct OpenPart {
    start_us: u64,
    video: TrackRun,
    audio: TrackRun,
}

/// Microseconds of a 90 kHz tick count.
fn us90(t: u64) -> u64 {
    t * 100 / 9
}
/// Microseconds of a 48 kHz sample count.
fn us48(t: u64) -> u64 {
    t * 125 / 6
}

/// The segmenter and muxer of one programme.
#[derive(Debug)]
pub struct Packager {
    cfg: PackagerConfig,
    /// Wall-clock time (ms since the Unix epoch) of media time zero.
    origin_wall_ms: u64,
    epoch: Option<Epoch>,
    next_epoch: u32,
    next_msn: u64,
    frag_seq: u32,
    seg: Option<OpenSegment>,
    part: Option<OpenPart>,
    /// The last video frame, waiting for the next one to know its duration: (dts, sample).
    pending_video: Option<(u64, Bytes, bool)>,
    last_video_duration: u32,
    /// Media time of the newest video frame (µs), for the stall rule.
    last_video_us: Option<u64>,
    /// Audio waiting for its part: (dts, data, samples).
    audio: VecDeque<(u64, Bytes, u32)>,
    /// Video source to label the next segments with.
    video_source: Option<String>,
    out: VecDeque<PackagerOut>,
    first_segment: bool,
    /// The epoch of the last segment closed (a segment of another epoch follows a discontinuity).
    last_segment_epoch: Option<u32>,
}

impl Packager {
    /// A packager whose media time zero is `origin_wall_ms`, numbering segments from
    /// `first_msn` and init segments from `first_epoch` (a restarted programme continues its
    /// recording's numbering; its first segment then has a discontinuity).
    pub fn new(cfg: PackagerConfig, origin_wall_ms: u64, first_msn: u64, first_epoch: u32) -> Self {
        Self {
            cfg,
            origin_wall_ms,
            epoch: None,
            next_epoch: first_epoch,
            next_msn: first_msn,
            frag_seq: 1,
            seg: None,
            part: None,
            pending_video: None,
            last_video_duration: 3000,
            last_video_us: None,
            audio: VecDeque::new(),
            video_source: None,
            out: VecDeque::new(),
            first_segment: first_msn == 0,
            last_segment_epoch: None,
        }
    }

    /// The next output.
    pub fn poll(&mut self) -> Option<PackagerOut> {
        self.out.pop_front()
    }

    /// Label the segments opened from now on with whose camera they show (a segment is
    /// labelled with the camera on air at its start).
    pub fn set_video_source(&mut self, who: Option<String>) {
        self.video_source = who;
    }

    /// The current epoch has video.
    pub fn has_video(&self) -> bool {
        self.epoch.as_ref().is_some_and(|e| e.video.is_some())
    }

    /// One video frame: `dts` in 90 kHz ticks of media time (strictly increasing), `avcc` the
    /// sample in AVCC form, `params` the parameter sets it decodes with.
    pub fn push_video(&mut self, dts: u64, avcc: Bytes, keyframe: bool, params: &VideoParams) {
        if let Some((prev, _, _)) = &self.pending_video
            && dts <= *prev
        {
            return; // not increasing: the caller's bug, never a broken file
        }
        let t_us = us90(dts);
        let same_params = self.epoch.as_ref().and_then(|e| e.video.as_ref()).is_some_and(|v| v.sps == params.sps && v.pps == params.pps);
        if !same_params {
            if !keyframe {
                return; // a new stream can only start at a keyframe
            }
            // The previous frame ends here; then a new epoch with these parameters.
            self.settle_pending_video(dts);
            self.close_part(t_us);
            self.close_segment();
            self.start_epoch(Some(params.clone()));
        } else {
            self.settle_pending_video(dts);
            let age = self.seg.as_ref().map_or(0, |s| t_us.saturating_sub(s.start_us));
            if (keyframe && age >= self.cfg.segment_min_us) || age >= self.cfg.segment_max_us {
                self.close_part(t_us);
                self.close_segment();
            } else if self.part.as_ref().is_some_and(|p| t_us.saturating_sub(p.start_us) >= self.cfg.part_min_us()) {
                self.close_part(t_us);
            }
        }
        self.open_part(t_us);
        self.pending_video = Some((dts, avcc, keyframe));
        self.last_video_us = Some(t_us);
    }

    /// One Opus packet at `dts` (48 kHz) lasting `samples`. Audio must be contiguous.
    pub fn push_audio(&mut self, dts: u64, data: Bytes, samples: u32) {
        if self.epoch.is_none() {
            // Nothing on air yet: audio alone starts an audio-only epoch.
            self.start_epoch(None);
        }
        self.audio.push_back((dts, data, samples));
        if !self.has_video() {
            self.cut_audio_only();
        }
    }

    /// Without video, audio leads: cut parts and segments through the queued audio, leaving the
    /// last part open.
    fn cut_audio_only(&mut self) {
        let starts: Vec<u64> = self.audio.iter().map(|(d, _, _)| us48(*d)).collect();
        for t in starts {
            let seg_age = self.seg.as_ref().map(|s| t.saturating_sub(s.start_us));
            let part_age = self.part.as_ref().map(|p| t.saturating_sub(p.start_us));
            if seg_age.is_some_and(|a| a >= self.cfg.audio_segment_us) {
                self.close_part(t);
                self.close_segment();
            } else if part_age.is_some_and(|a| a >= self.cfg.part_min_us()) {
                self.close_part(t);
            }
            self.open_part(t);
        }
    }

    /// Media time passed: if video stalled while audio goes on, end the video epoch so the
    /// programme keeps playing (audio only) instead of stopping at the last frame.
    pub fn handle_tick(&mut self, media_now_us: u64) {
        if self.has_video()
            && let Some(last) = self.last_video_us
            && media_now_us.saturating_sub(last) >= self.cfg.video_stall_us
            && self.audio.back().is_some_and(|(dts, _, _)| us48(*dts) > last)
        {
            let end = last + us90(self.last_video_duration as u64);
            self.settle_pending_video(self.pending_video.as_ref().map_or(0, |p| p.0) + self.last_video_duration as u64);
            self.close_part(end);
            self.close_segment();
            self.start_epoch(None);
            self.last_video_us = None;
            // Audio already waiting goes into the audio-only epoch's parts.
            self.cut_audio_only();
        }
    }

    /// Ends the programme: the open part and segment are written.
    pub fn finish(&mut self) {
        let end_dts = self.pending_video.as_ref().map(|p| p.0 + self.last_video_duration as u64);
        if let Some(end) = end_dts {
            self.settle_pending_video(end);
        }
        let end_us = end_dts.map(us90).or_else(|| self.audio.back().map(|(d, _, n)| us48(d + *n as u64))).unwrap_or(0);
        // All audio left goes into the last part.
        self.close_part_with(end_us, true);
        self.close_segment();
        // Whatever comes next (a paused programme resuming) starts a new epoch.
        self.epoch = None;
        self.last_video_us = None;
    }

    fn start_epoch(&mut self, video: Option<VideoParams>) {
        let id = self.next_epoch;
        self.next_epoch += 1;
        let bytes = Bytes::from(fmp4::init_segment(video.as_ref()));
        self.out.push_back(PackagerOut::Init(InitOut {
            epoch: id,
            bytes,
            codecs: fmp4::codecs(video.as_ref()),
            resolution: video.as_ref().map(|v| (v.info.width, v.info.height)),
        }));
        self.epoch = Some(Epoch { id, video });
    }

    /// The pending frame ends at `next_dts`: it joins the open part.
    fn settle_pending_video(&mut self, next_dts: u64) {
        let Some((dts, data, sync)) = self.pending_video.take() else { return };
        let duration = next_dts.saturating_sub(dts).clamp(1, u32::MAX as u64) as u32;
        self.last_video_duration = duration.min(9000);
        if let Some(p) = self.part.as_mut() {
            if p.video.samples.is_empty() {
                p.video.base_decode_time = dts;
            }
            p.video.samples.push(Sample { duration, data, sync });
        }
    }

    fn open_part(&mut self, t_us: u64) {
        if self.part.is_none() {
            self.part = Some(OpenPart { start_us: t_us, video: TrackRun::default(), audio: TrackRun::default() });
        }
        if self.seg.is_none() {
            let epoch = self.epoch.as_ref().map_or(0, |e| e.id);
            let discontinuity = !self.first_segment && self.epoch_is_new(epoch);
            self.first_segment = false;
            self.seg = Some(OpenSegment {
                start: SegmentStart { msn: self.next_msn, epoch, pdt_ms: self.origin_wall_ms + t_us / 1000, discontinuity },
                start_us: t_us,
                parts: Vec::new(),
                bytes: Vec::new(),
                video_source: self.video_source.clone(),
            });
            self.next_msn += 1;
        }
    }

    /// Whether no segment of `epoch` was opened yet (the first of an epoch follows a discontinuity).
    fn epoch_is_new(&self, epoch: u32) -> bool {
        self.last_segment_epoch != Some(epoch)
    }

    fn close_part(&mut self, end_us: u64) {
        self.close_part_with(end_us, false);
    }

    fn close_part_with(&mut self, end_us: u64, all_audio: bool) {
        let Some(mut part) = self.part.take() else { return };
        while let Some(&(dts, _, _)) = self.audio.front() {
            if !all_audio && us48(dts) >= end_us {
                break;
            }
            let (dts, data, samples) = self.audio.pop_front().expect("front");
            if part.audio.samples.is_empty() {
                part.audio.base_decode_time = dts;
            }
            part.audio.samples.push(Sample { duration: samples, data, sync: true });
        }
        if part.video.samples.is_empty() && part.audio.samples.is_empty() {
            return;
        }
        let Some(seg) = self.seg.as_mut() else { return };
        let duration_us = end_us.saturating_sub(part.start_us).max(1);
        let independent = match part.video.samples.first() {
            Some(s) => s.sync,
            None => self.epoch.as_ref().is_none_or(|e| e.video.is_none()),
        };
        let bytes = fmp4::fragment(self.frag_seq, Some(&part.video), Some(&part.audio));
        self.frag_seq = self.frag_seq.wrapping_add(1);
        let entry = PartEntry { index: seg.parts.len() as u32, duration_us, independent };
        seg.parts.push(entry.clone());
        seg.bytes.extend_from_slice(&bytes);
        self.out.push_back(PackagerOut::Part(PartOut { segment: seg.start.clone(), part: entry, bytes: Bytes::from(bytes) }));
    }

    fn close_segment(&mut self) {
        let Some(seg) = self.seg.take() else { return };
        if seg.parts.is_empty() {
            // Opened but nothing written: reuse its number.
            self.next_msn = seg.start.msn;
            return;
        }
        self.last_segment_epoch = Some(seg.start.epoch);
        let entry = SegmentEntry {
            msn: seg.start.msn,
            epoch: seg.start.epoch,
            duration_us: seg.parts.iter().map(|p| p.duration_us).sum(),
            pdt_ms: seg.start.pdt_ms,
            discontinuity: seg.start.discontinuity,
            parts: seg.parts,
            video_source: seg.video_source,
        };
        self.out.push_back(PackagerOut::Segment(SegmentOut { entry, bytes: Bytes::from(seg.bytes) }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::h264::tests::{PPS, SPS_640X360};
    use mp4_atom::{Decode, Moof};
    use proptest::prelude::*;

    fn params() -> VideoParams {
        VideoParams::new(Bytes::from_static(SPS_640X360), Bytes::from_static(PPS)).unwrap()
    }

    fn other_params() -> VideoParams {
        // Same SPS, another PPS: new parameters all the same.
        VideoParams::new(Bytes::from_static(SPS_640X360), Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80])).unwrap()
    }

    /// Feeds video at the given frame starts (ms) with keyframes at `keys` (ms), and 20 ms audio
    /// up to the last frame. Returns everything produced, in order.
    fn run(frames_ms: &[u64], keys: &[u64], p: &VideoParams) -> Vec<PackagerOut> {
        let mut pk = Packager::new(PackagerConfig::default(), 1_700_000_000_000, 0, 0);
        let mut audio_ms = 0;
        for &f in frames_ms {
            pk.push_video(f * 90, Bytes::from(vec![0u8; 100]), keys.contains(&f), p);
            while audio_ms <= f {
                pk.push_audio(audio_ms * 48, Bytes::from_static(b"op"), 960);
                audio_ms += 20;
            }
        }
        pk.finish();
        std::iter::from_fn(|| pk.poll()).collect()
    }

    fn parts(out: &[PackagerOut]) -> Vec<&PartOut> {
        out.iter().filter_map(|o| if let PackagerOut::Part(p) = o { Some(p) } else { None }).collect()
    }

    fn segments(out: &[PackagerOut]) -> Vec<&SegmentOut> {
        out.iter().filter_map(|o| if let PackagerOut::Segment(s) = o { Some(s) } else { None }).collect()
    }

    #[test]
    fn steady_video_gives_half_second_parts_and_segments_at_keyframes() {
        let frames: Vec<u64> = (0..180).map(|i| i * 100 / 3).collect(); // 6 s at 30 fps
        let keys: Vec<u64> = frames.iter().copied().filter(|f| f % 2000 < 33).collect();
        let out = run(&frames, &keys, &params());
        assert!(matches!(out[0], PackagerOut::Init(InitOut { epoch: 0, resolution: Some((640, 360)), .. })));
        let segs = segments(&out);
        assert_eq!(segs.len(), 3, "{:?}", segs.iter().map(|s| s.entry.duration_us).collect::<Vec<_>>());
        for s in &segs {
            assert!(s.entry.parts[0].independent, "every segment starts at a keyframe");
            assert!((1_900_000..=2_100_000).contains(&s.entry.duration_us), "{}", s.entry.duration_us);
            let (last, rest) = s.entry.parts.split_last().unwrap();
            assert!(last.duration_us <= 500_000);
            assert!(rest.iter().all(|p| (425_000..=500_000).contains(&p.duration_us)), "{:?}", s.entry.parts);
        }
        assert!(!segs[1].entry.discontinuity);
        assert_eq!(segs[1].entry.pdt_ms, 1_700_000_000_000 + 2000);
    }

    #[test]
    fn a_segment_is_the_concatenation_of_its_parts_and_every_part_parses() {
        let frames: Vec<u64> = (0..90).map(|i| i * 100 / 3).collect();
        let out = run(&frames, &[0, 2000], &params());
        let ps = parts(&out);
        let seg = segments(&out)[0];
        let mine: Vec<u8> = ps.iter().filter(|p| p.segment.msn == seg.entry.msn).flat_map(|p| p.bytes.to_vec()).collect();
        assert_eq!(mine, seg.bytes.to_vec());
        let mut next_video = None;
        for p in ps {
            let moof = Moof::decode(&mut std::io::Cursor::new(&p.bytes[..])).unwrap();
            let v = moof.traf.iter().find(|t| t.tfhd.track_id == fmp4::VIDEO_TRACK).unwrap();
            let base = v.tfdt.as_ref().unwrap().base_media_decode_time;
            if let Some(n) = next_video {
                assert_eq!(base, n, "video decode times are contiguous across parts");
            }
            let dur: u64 = v.trun[0].samples.iter().map(|e| e.duration.unwrap() as u64).sum();
            next_video = Some(base + dur);
        }
    }

    #[test]
    fn new_parameters_start_an_epoch_with_a_discontinuity() {
        let mut pk = Packager::new(PackagerConfig::default(), 0, 0, 0);
        for i in 0..60u64 {
            pk.push_video(i * 3000, Bytes::from_static(b"f"), i == 0, &params());
        }
        for i in 60..120u64 {
            pk.push_video(i * 3000, Bytes::from_static(b"g"), i == 60, &other_params());
        }
        pk.finish();
        let out: Vec<PackagerOut> = std::iter::from_fn(|| pk.poll()).collect();
        let inits: Vec<u32> = out.iter().filter_map(|o| if let PackagerOut::Init(i) = o { Some(i.epoch) } else { None }).collect();
        assert_eq!(inits, [0, 1]);
        let segs = segments(&out);
        let switch = segs.iter().find(|s| s.entry.epoch == 1).unwrap();
        assert!(switch.entry.discontinuity);
        assert!(switch.entry.parts[0].independent);
        assert!(!segs[0].entry.discontinuity);
        // The old epoch's last segment ends exactly where the new one starts (2 s).
        let before: u64 = segs.iter().filter(|s| s.entry.epoch == 0).map(|s| s.entry.duration_us).sum();
        assert_eq!(before, 2_000_000);
    }

    #[test]
    fn without_keyframes_segments_are_cut_at_the_maximum_and_not_marked_independent() {
        let frames: Vec<u64> = (0..150).map(|i| i * 100 / 3).collect(); // 5 s, one keyframe
        let out = run(&frames, &[0], &params());
        let segs = segments(&out);
        assert!(segs.len() >= 2);
        assert!(segs[0].entry.duration_us <= 2_400_000 + 34_000);
        assert!(!segs[1].entry.parts[0].independent);
    }

    #[test]
    fn a_stalled_camera_turns_the_programme_audio_only_and_it_keeps_going() {
        let mut pk = Packager::new(PackagerConfig::default(), 0, 0, 0);
        for i in 0..30u64 {
            pk.push_video(i * 3000, Bytes::from_static(b"f"), i == 0, &params());
        }
        for i in 0..250u64 {
            // 5 s of audio; video stopped after 1 s.
            pk.push_audio(i * 960, Bytes::from_static(b"a"), 960);
            pk.handle_tick(i * 20_000);
        }
        let out: Vec<PackagerOut> = std::iter::from_fn(|| pk.poll()).collect();
        let inits: Vec<&InitOut> = out.iter().filter_map(|o| if let PackagerOut::Init(i) = o { Some(i) } else { None }).collect();
        assert_eq!(inits.len(), 2);
        assert_eq!(inits[1].codecs, "opus");
        let audio_parts: Vec<&PartOut> = parts(&out).into_iter().filter(|p| p.segment.epoch == 1).collect();
        assert!(audio_parts.len() >= 4, "{}", audio_parts.len());
        assert!(audio_parts.iter().all(|p| p.part.independent && p.part.duration_us <= 500_000), "{audio_parts:?}");
    }

    proptest! {
        /// Irregular frame rates and random keyframes: parts never exceed the target, segments
        /// never round above the target duration, every non-final part is at least 85 % of the
        /// target, and a segment's first part is independent exactly when it starts on a keyframe.
        #[test]
        fn parts_and_segments_respect_the_ll_hls_bounds(gaps in proptest::collection::vec(15u64..60, 50..400), keys in proptest::collection::vec(any::<bool>(), 400)) {
            let mut t = 0;
            let mut frames = Vec::new();
            let mut key_at = vec![0];
            for (i, g) in gaps.iter().enumerate() {
                frames.push(t);
                if keys[i] && i % 7 == 0 { key_at.push(t); }
                t += g;
            }
            let out = run(&frames, &key_at, &params());
            for s in segments(&out) {
                prop_assert!(s.entry.duration_us <= 2_400_000 + 60_000, "{}", s.entry.duration_us);
                let (last, rest) = s.entry.parts.split_last().unwrap();
                prop_assert!(last.duration_us <= 500_000 + 60_000);
                for p in rest {
                    prop_assert!(p.duration_us >= 425_000 && p.duration_us <= 500_000, "{:?}", s.entry.parts);
                }
                prop_assert_eq!(s.entry.duration_us, s.entry.parts.iter().map(|p| p.duration_us).sum::<u64>());
            }
        }
    }
}
