//! The replay: where a moment of the session (a wall-clock time, as items, questions and floor
//! turns carry it) lies in the recording's VOD, and the chapters by floor turn. Pure: the
//! segments' index and the record's turns in, offsets out.
//!
//! ```text
//! let t = Timeline::from_segments(&recording.segments);
//! t.offset_of(item.ts)                 // ms into recording.m3u8 where the picture shows that moment
//! chapters(&turns, &t)                 // one per floor turn the recording covers
//! ```
//!
//! The recording is a sequence of segments, each with the wall-clock time of its first frame
//! (`EXT-X-PROGRAM-DATE-TIME`) and its duration. Consecutive segments whose wall-clock times
//! follow each other form one *run*; a restart of the hub (or anything that interrupted the
//! programme) starts another. Inside a run a wall time maps linearly onto the VOD; a moment in
//! the gap between two runs (nothing was recorded then) maps to the start of the next run, one
//! before the recording to its start, one after it to its end — so everything the record holds
//! has a place on the replay's time line.

use serde::Serialize;

use super::playlist::SegmentEntry;

/// A stretch of the recording whose wall-clock time runs with its media time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Where it starts in the VOD, ms.
    pub offset_ms: u64,
    /// The wall-clock time of its first frame, ms since the Unix epoch.
    pub pdt_ms: u64,
    /// How long it is, ms.
    pub duration_ms: u64,
}

/// Segments whose wall-clock start differs from where the previous one ended by more than this
/// begin a new run (the programme's segments are contiguous to within a frame or two; a restart
/// leaves seconds at least).
pub const RUN_BREAK_MS: u64 = 1_000;

/// The recording's time line: wall-clock time ⇄ position in the VOD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The runs, in order; their offsets are contiguous.
    pub runs: Vec<Run>,
    /// The VOD's duration, ms.
    pub duration_ms: u64,
}

impl Timeline {
    /// The time line of the recording made of `segments` (in order).
    pub fn from_segments(segments: &[SegmentEntry]) -> Self {
        let mut runs: Vec<Run> = Vec::new();
        let mut offset = 0u64;
        for s in segments {
            let d = s.duration_us / 1000;
            // A discontinuity alone (another camera) does not break a run; a jump in wall time does.
            let joins = runs.last().is_some_and(|r| s.pdt_ms.abs_diff(r.pdt_ms + r.duration_ms) <= RUN_BREAK_MS);
            match runs.last_mut() {
                Some(r) if joins => r.duration_ms += d,
                _ => runs.push(Run { offset_ms: offset, pdt_ms: s.pdt_ms, duration_ms: d }),
            }
            offset += d;
        }
        Timeline { runs, duration_ms: offset }
    }

    /// Wall-clock time of the recording's first frame.
    pub fn start_ms(&self) -> Option<u64> {
        self.runs.first().map(|r| r.pdt_ms)
    }

    /// Where the moment `wall_ms` is in the VOD, ms (see the module docs for moments outside
    /// the recording).
    pub fn offset_of(&self, wall_ms: u64) -> u64 {
        for r in &self.runs {
            if wall_ms < r.pdt_ms {
                return r.offset_ms; // before this run (and after the previous one): its start
            }
            if wall_ms < r.pdt_ms + r.duration_ms {
                return r.offset_ms + (wall_ms - r.pdt_ms);
            }
        }
        self.duration_ms
    }

    /// The wall-clock time shown at `offset_ms` into the VOD (`None` for an empty recording).
    pub fn wall_at(&self, offset_ms: u64) -> Option<u64> {
        let r = self.runs.iter().rev().find(|r| r.offset_ms <= offset_ms).or(self.runs.first())?;
        Some(r.pdt_ms + offset_ms.saturating_sub(r.offset_ms).min(r.duration_ms))
    }
}

/// One floor turn as the record keeps it (the session summary's turn rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Turn {
    /// Who spoke (participant id).
    pub holder: String,
    /// Their display name.
    pub name: String,
    /// When the turn began, wall-clock ms.
    pub start_ms: u64,
    /// When it ended (`None`: still speaking).
    pub end_ms: Option<u64>,
}

/// A chapter of the replay: a floor turn, where the recording shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chapter {
    /// Who spoke.
    pub holder: String,
    /// Their display name.
    pub name: String,
    /// When the turn began, wall-clock ms.
    pub start_ms: u64,
    /// When it ended (`None`: still speaking when the recording was read).
    pub end_ms: Option<u64>,
    /// Where the replay jumps to, ms into the VOD.
    pub offset_ms: u64,
    /// How much of the VOD it covers, ms.
    pub duration_ms: u64,
}

/// The chapters of a recording: one per floor turn that overlaps it, in order of their start.
/// Turns wholly before the recording began or after it ended are left out (nothing of them can
/// be seen); a turn that began before the recording starts at its start.
pub fn chapters(turns: &[Turn], timeline: &Timeline) -> Vec<Chapter> {
    let (Some(start), Some(last)) = (timeline.start_ms(), timeline.runs.last()) else { return Vec::new() };
    let end = last.pdt_ms + last.duration_ms;
    let mut out: Vec<Chapter> = turns
        .iter()
        .filter(|t| t.start_ms < end && t.end_ms.is_none_or(|e| e > start))
        .map(|t| {
            let offset_ms = timeline.offset_of(t.start_ms);
            let until = t.end_ms.map_or(timeline.duration_ms, |e| timeline.offset_of(e));
            Chapter { holder: t.holder.clone(), name: t.name.clone(), start_ms: t.start_ms, end_ms: t.end_ms, offset_ms, duration_ms: until.saturating_sub(offset_ms) }
        })
        .collect();
    out.sort_by_key(|c| (c.offset_ms, c.start_ms));
    out
}

/// The recording of a livestream as the session record names it (`shangliang export`: the
/// minutes' recording section, the JSON's `recording`, the CSV's `recording`/`chapter` rows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordingInfo {
    /// The replay page, a path on the hub (`/replay/{activity}`).
    pub replay_url: String,
    /// The VOD playlist, a path on the hub (`/hls/{activity}/recording.m3u8`).
    pub playlist_url: String,
    /// Wall-clock time of the first frame, ms.
    pub start_ms: u64,
    /// Length of the VOD, ms.
    pub duration_ms: u64,
    /// Segments recorded.
    pub segments: usize,
    /// Stretches recorded without interruption (more than one: the programme stopped between).
    pub runs: usize,
    /// Whether the livestream ended (the VOD is complete).
    pub ended: bool,
    /// One per floor turn the recording shows.
    pub chapters: Vec<Chapter>,
}

impl RecordingInfo {
    /// What the record says of `activity`'s recording, read from its index (`segments`) and
    /// the floor turns; `None` when nothing was recorded.
    pub fn new(activity: &str, segments: &[SegmentEntry], ended: bool, turns: &[Turn]) -> Option<Self> {
        let timeline = Timeline::from_segments(segments);
        let start_ms = timeline.start_ms()?;
        Some(RecordingInfo {
            replay_url: format!("/replay/{activity}"),
            playlist_url: format!("/hls/{activity}/recording.m3u8"),
            start_ms,
            duration_ms: timeline.duration_ms,
            segments: segments.len(),
            runs: timeline.runs.len(),
            ended,
            chapters: chapters(turns, &timeline),
        })
    }
}

/// `h:mm:ss` (or `m:ss`) of a duration in ms, as the export and the replay page show it.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 { format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) } else { format!("{}:{:02}", s / 60, s % 60) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(msn: u64, pdt_ms: u64, ms: u64, discontinuity: bool) -> SegmentEntry {
        SegmentEntry { msn, epoch: 0, duration_us: ms * 1000, pdt_ms, discontinuity, parts: vec![], video_source: None }
    }

    const T: u64 = 1_726_800_000_000;

    #[test]
    fn contiguous_segments_are_one_run_and_moments_map_linearly() {
        let segs: Vec<_> = (0..5).map(|i| seg(i, T + i * 2000 + (i % 2) * 3, 2000, false)).collect();
        let t = Timeline::from_segments(&segs);
        assert_eq!(t.runs.len(), 1);
        assert_eq!(t.duration_ms, 10_000);
        assert_eq!(t.offset_of(T + 7_250), 7_250);
        assert_eq!(t.offset_of(T - 5_000), 0, "before the recording: its start");
        assert_eq!(t.offset_of(T + 60_000), 10_000, "after it: its end");
        assert_eq!(t.wall_at(3_000), Some(T + 3_000));
    }

    #[test]
    fn a_restart_starts_a_new_run_and_the_gap_maps_to_its_start() {
        // 3 segments, the hub is down for 20 s, 2 more (a discontinuity and new numbers).
        let mut segs: Vec<_> = (0..3).map(|i| seg(i, T + i * 2000, 2000, false)).collect();
        segs.push(seg(3, T + 26_000, 2000, true));
        segs.push(seg(4, T + 28_000, 2000, false));
        let t = Timeline::from_segments(&segs);
        assert_eq!(t.runs, vec![Run { offset_ms: 0, pdt_ms: T, duration_ms: 6000 }, Run { offset_ms: 6000, pdt_ms: T + 26_000, duration_ms: 4000 }]);
        assert_eq!(t.offset_of(T + 10_000), 6000, "while nothing was recorded: where recording resumed");
        assert_eq!(t.offset_of(T + 27_000), 7000);
        assert_eq!(t.wall_at(7000), Some(T + 27_000));
    }

    #[test]
    fn a_camera_switch_discontinuity_without_a_gap_stays_in_the_run() {
        let segs = vec![seg(0, T, 2000, false), seg(1, T + 2000, 1800, true), seg(2, T + 3800, 2000, false)];
        assert_eq!(Timeline::from_segments(&segs).runs.len(), 1);
    }

    #[test]
    fn chapters_are_the_turns_the_recording_covers() {
        let segs: Vec<_> = (0..15).map(|i| seg(i, T + i * 2000, 2000, false)).collect();
        let t = Timeline::from_segments(&segs);
        let turn = |h: &str, s: u64, e: Option<u64>| Turn { holder: h.into(), name: h.to_uppercase(), start_ms: s, end_ms: e };
        let turns = [turn("early", T - 60_000, Some(T - 50_000)), turn("a", T - 1_000, Some(T + 12_000)), turn("b", T + 12_000, None)];
        let ch = chapters(&turns, &t);
        assert_eq!(ch.iter().map(|c| c.holder.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((ch[0].offset_ms, ch[0].duration_ms), (0, 12_000), "a turn begun before the recording starts at its start");
        assert_eq!((ch[1].offset_ms, ch[1].duration_ms), (12_000, 18_000), "an open turn runs to the end");
        assert_eq!(clock(ch[1].offset_ms), "0:12");
        assert_eq!(clock(3_725_000), "1:02:05");
    }

    #[test]
    fn the_record_names_the_recording_with_its_chapters() {
        let segs: Vec<_> = (0..3).map(|i| seg(i, T + i * 2000, 2000, false)).collect();
        let turns = [Turn { holder: "member:a".into(), name: "甲".into(), start_ms: T + 1000, end_ms: None }];
        let info = RecordingInfo::new("demo", &segs, true, &turns).unwrap();
        assert_eq!((info.replay_url.as_str(), info.playlist_url.as_str()), ("/replay/demo", "/hls/demo/recording.m3u8"));
        assert_eq!((info.start_ms, info.duration_ms, info.segments, info.runs, info.ended), (T, 6000, 3, 1, true));
        assert_eq!((info.chapters[0].offset_ms, info.chapters[0].duration_ms), (1000, 5000));
        assert_eq!(RecordingInfo::new("demo", &[], false, &turns), None, "nothing recorded: nothing to name");
    }

    proptest! {
        /// Whatever the segments: runs tile the VOD, offsets are monotonic in wall time and
        /// never beyond the end.
        #[test]
        fn offsets_are_monotonic_and_within_the_recording(
            parts in proptest::collection::vec((1u64..2500, 0u64..30_000, any::<bool>()), 1..40),
            probes in proptest::collection::vec(0u64..2_000_000, 1..50),
        ) {
            let mut pdt = T;
            let segs: Vec<_> = parts.iter().enumerate().map(|(i, &(d, gap, disc))| {
                pdt += if gap > 25_000 { gap } else { 0 };
                let s = seg(i as u64, pdt, d, disc);
                pdt += d;
                s
            }).collect();
            let t = Timeline::from_segments(&segs);
            prop_assert_eq!(t.duration_ms, segs.iter().map(|s| s.duration_us / 1000).sum::<u64>());
            let mut at = 0;
            for r in &t.runs {
                prop_assert_eq!(r.offset_ms, at);
                at += r.duration_ms;
            }
            let mut probes = probes;
            probes.sort();
            let mut last = 0;
            for p in probes {
                let o = t.offset_of(T + p);
                prop_assert!(o >= last && o <= t.duration_ms);
                last = o;
            }
        }
    }
}
