//! LL-HLS media playlists (RFC 8216bis with Apple's low-latency extensions): the live window a
//! player polls with blocking reloads, and the VOD form of a whole recording.
//!
//! ```text
//! window.handle_part(&part) / window.handle_segment(&segment) / window.handle_end()
//! window.render()                         // the live playlist, rendered once per change
//! window.satisfies(msn, part)             // may a blocked `_HLS_msn/_HLS_part` reload answer now?
//! window.check_request(msn, part)         // 400 for a request too far beyond the live edge
//! render_vod(&segments, target)           // the recording, EXT-X-ENDLIST
//! ```
//!
//! Names are relative: `init-{epoch}.mp4`, `{msn}.m4s`, `{msn}.{part}.m4s`. They are also the
//! file names in the store, so a directory of a recording can be served by any static server.

use std::collections::VecDeque;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The timing of the programme's playlists.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaylistConfig {
    /// `EXT-X-TARGETDURATION`, seconds: no segment is longer than this (rounded).
    pub target_duration_s: u32,
    /// `PART-TARGET`, microseconds.
    pub part_target_us: u64,
    /// Complete segments kept in the live playlist.
    pub window_segments: usize,
    /// Of those, the newest ones listed with their parts too (the rest as whole segments).
    pub part_segments: usize,
}

impl Default for PlaylistConfig {
    fn default() -> Self {
        Self { target_duration_s: 2, part_target_us: 500_000, window_segments: 8, part_segments: 3 }
    }
}

impl PlaylistConfig {
    /// `PART-HOLD-BACK`: three part targets, the minimum the spec allows.
    pub fn part_hold_back_s(&self) -> f64 {
        3.0 * self.part_target_us as f64 / 1e6
    }
}

/// One part as the playlist lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Its index within the segment, from 0.
    pub index: u32,
    /// Its duration in microseconds.
    pub duration_us: u64,
    /// It starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// One media segment as the playlists (and the store's index) describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Media sequence number.
    pub msn: u64,
    /// The init segment it needs (`init-{epoch}.mp4`).
    pub epoch: u32,
    /// Its duration in microseconds (the sum of its parts).
    pub duration_us: u64,
    /// Wall-clock time of its first sample, milliseconds since the Unix epoch.
    pub pdt_ms: u64,
    /// The parameters changed before it (`EXT-X-DISCONTINUITY`).
    pub discontinuity: bool,
    /// Its parts (the live playlist lists them for recent segments).
    pub parts: Vec<PartEntry>,
    /// Whose camera it shows, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_source: Option<String>,
}

/// The header of a segment that is being written, known from its first part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStart {
    /// Media sequence number.
    pub msn: u64,
    /// Its init segment.
    pub epoch: u32,
    /// Wall-clock time of its first sample, ms.
    pub pdt_ms: u64,
    /// Discontinuity before it.
    pub discontinuity: bool,
}

/// Why a blocking reload is refused at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `_HLS_msn` is more than two segments beyond the live edge (RFC 8216bis §6.2.5.2).
    #[error("_HLS_msn {msn} is too far beyond the live edge ({edge})")]
    TooFarAhead {
        /// Asked.
        msn: u64,
        /// The newest segment.
        edge: u64,
    },
    /// `_HLS_part` without `_HLS_msn`, or a part index no segment can have.
    #[error("invalid _HLS_part")]
    BadPart,
}

/// The live playlist's window.
#[derive(Clone, Debug, Default)]
pub struct LiveWindow {
    cfg: PlaylistConfig,
    segments: VecDeque<SegmentEntry>,
    current: Option<(SegmentStart, Vec<PartEntry>)>,
    /// Discontinuities that slid out of the window (`EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_sequence: u64,
    ended: bool,
    version: u64,
    /// The first segment's number (a restarted programme continues its recording's numbering):
    /// the live edge while nothing is written yet.
    first_msn: u64,
}

fn secs(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

/// RFC 3339 UTC time with milliseconds for `EXT-X-PROGRAM-DATE-TIME`.
pub fn format_pdt(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, ms % 1000)
}

impl LiveWindow {
    /// An empty window.
    pub fn new(cfg: PlaylistConfig) -> Self {
        Self { cfg, ..Default::default() }
    }

    /// An empty window whose first segment will be `first_msn`: until it is written, blocking
    /// requests up to two segments beyond it wait instead of being refused (players that were
    /// watching before a hub restart ask for the numbers that follow).
    pub fn starting_at(cfg: PlaylistConfig, first_msn: u64) -> Self {
        Self { cfg, first_msn, ..Default::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &PlaylistConfig {
        &self.cfg
    }

    /// A part was written: the first part of a segment opens it.
    pub fn handle_part(&mut self, seg: &SegmentStart, part: PartEntry) {
        match &mut self.current {
            Some((s, parts)) if s.msn == seg.msn => parts.push(part),
            _ => self.current = Some((seg.clone(), vec![part])),
        }
        self.version += 1;
    }

    /// A segment is complete.
    pub fn handle_segment(&mut self, seg: SegmentEntry) {
        if self.current.as_ref().is_some_and(|(s, _)| s.msn == seg.msn) {
            self.current = None;
        }
        self.segments.push_back(seg);
        while self.segments.len() > self.cfg.window_segments {
            if let Some(old) = self.segments.pop_front()
                && old.discontinuity
            {
                self.discontinuity_sequence += 1;
            }
        }
        // Discontinuity count: the front segment's own tag is still listed; only removed ones count.
        self.version += 1;
    }

    /// The programme ended: the playlist gets `EXT-X-ENDLIST` and no preload hint.
    pub fn handle_end(&mut self) {
        self.ended = true;
        self.current = None;
        self.version += 1;
    }

    /// Changes so far (grows with every handled input).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the programme ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Complete segments in the window, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentEntry> {
        self.segments.iter()
    }

    /// The segment being written and its parts so far.
    pub fn current(&self) -> Option<(&SegmentStart, &[PartEntry])> {
        self.current.as_ref().map(|(s, p)| (s, p.as_slice()))
    }

    /// Nothing to play yet: no complete segment.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The media sequence number of the newest segment listed (complete or in progress).
    pub fn edge_msn(&self) -> Option<u64> {
        self.current.as_ref().map(|(s, _)| s.msn).or_else(|| self.segments.back().map(|s| s.msn))
    }

    /// The next part to be written: `(msn, part)` of the preload hint.
    pub fn next_part(&self) -> Option<(u64, u32)> {
        if self.ended {
            return None;
        }
        match &self.current {
            Some((s, parts)) => Some((s.msn, parts.len() as u32)),
            None => self.segments.back().map(|s| (s.msn + 1, 0)),
        }
    }

    /// Refuses a blocking request that can never be served soon (RFC 8216bis §6.2.5.2).
    pub fn check_request(&self, msn: Option<u64>, part: Option<u32>) -> Result<(), RequestError> {
        let Some(msn) = msn else {
            return if part.is_some() { Err(RequestError::BadPart) } else { Ok(()) };
        };
        if part.is_some_and(|p| p > 1000) {
            return Err(RequestError::BadPart);
        }
        let edge = self.edge_msn().unwrap_or(self.first_msn);
        if msn > edge + 2 {
            return Err(RequestError::TooFarAhead { msn, edge });
        }
        Ok(())
    }

    /// Whether the playlist holds what a reload blocked on `_HLS_msn=msn` (and `_HLS_part=part`)
    /// waits for: that segment complete, or that part of it (or anything later). An ended
    /// programme satisfies everything (there is nothing more to wait for).
    pub fn satisfies(&self, msn: u64, part: Option<u32>) -> bool {
        if self.ended {
            return true;
        }
        let newest_complete = self.segments.back().map(|s| s.msn);
        match part {
            None => newest_complete.is_some_and(|m| m >= msn),
            Some(p) => {
                if newest_complete.is_some_and(|m| m > msn) {
                    return true;
                }
                // The segment is complete and lists the part (its last parts come with the
                // segment's end): waiting for the next segment's first part would hold the
                // answer a part duration too long.
                if self.segments.back().is_some_and(|s| s.msn == msn && s.parts.len() as u32 > p) {
                    return true;
                }
                match &self.current {
                    Some((s, parts)) => s.msn > msn || (s.msn == msn && parts.len() as u32 > p),
                    None => false,
                }
            }
        }
    }

    /// Whether a part file `msn.part` is (or was) listed, or will be the next one written: the
    /// preload hint's target may be requested before it exists and is then waited for.
    pub fn part_state(&self, msn: u64, part: u32) -> PartState {
        if self.current.as_ref().is_some_and(|(s, parts)| s.msn == msn && (part as usize) < parts.len())
            || self.segments.iter().any(|s| s.msn == msn && (part as usize) < s.parts.len())
        {
            return PartState::Listed;
        }
        match self.next_part() {
            Some(next) if next == (msn, part) => PartState::Next,
            // Part 0 of the segment after the one being written is close enough to wait for:
            // a hint may race the last part of a segment.
            Some((m, _)) if msn == m + 1 && part == 0 => PartState::Next,
            _ => PartState::Unknown,
        }
    }

    /// The live playlist.
    pub fn render(&self) -> String {
        let cfg = &self.cfg;
        let mut out = String::with_capacity(4096);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", cfg.target_duration_s);
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},HOLD-BACK={:.3}",
            cfg.part_hold_back_s(),
            3.0 * cfg.target_duration_s as f64
        );
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs(cfg.part_target_us));
        let first = self.segments.front().map(|s| s.msn).or_else(|| self.current.as_ref().map(|(s, _)| s.msn)).unwrap_or(0);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuity_sequence);
        let with_parts_from = self.segments.len().saturating_sub(cfg.part_segments);
        let mut epoch: Option<u32> = None;
        for (i, s) in self.segments.iter().enumerate() {
            let start = SegmentStart { msn: s.msn, epoch: s.epoch, pdt_ms: s.pdt_ms, discontinuity: s.discontinuity };
            segment_header(&mut out, &start, &mut epoch, i == 0);
            if i >= with_parts_from {
                for p in &s.parts {
                    part_line(&mut out, s.msn, p);
                }
            }
            let _ = writeln!(out, "#EXTINF:{},\n{}.m4s", secs(s.duration_us), s.msn);
        }
        if let Some((s, parts)) = &self.current {
            segment_header(&mut out, s, &mut epoch, self.segments.is_empty());
            for p in parts {
                part_line(&mut out, s.msn, p);
            }
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        } else if let Some((msn, part)) = self.next_part() {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{msn}.{part}.m4s\"");
        }
        out
    }
}

/// What the window knows about a part file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartState {
    /// Listed in the playlist: it exists (or existed and slid out of memory).
    Listed,
    /// The next one to be written (the preload hint): wait for it.
    Next,
    /// Neither: 404.
    Unknown,
}

fn segment_header(out: &mut String, s: &SegmentStart, epoch: &mut Option<u32>, first: bool) {
    if s.discontinuity && !first {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *epoch != Some(s.epoch) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"init-{}.mp4\"", s.epoch);
        *epoch = Some(s.epoch);
    }
    let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(s.pdt_ms));
}

fn part_line(out: &mut String, msn: u64, p: &PartEntry) {
    let _ = write!(out, "#EXT-X-PART:DURATION={},URI=\"{msn}.{}.m4s\"", secs(p.duration_us), p.index);
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
}

/// The VOD playlist of a recording: every segment, whole, then `EXT-X-ENDLIST`.
/// `EXT-X-TARGETDURATION` is the longest segment rounded up.
pub fn render_vod(segments: &[SegmentEntry], ended: bool) -> String {
    let target = segments.iter().map(|s| s.duration_us.div_ceil(1_000_000)).max().unwrap_or(1).max(1);
    let mut out = String::with_capacity(64 + segments.len() * 96);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{}", if ended { "VOD" } else { "EVENT" });
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", segments.first().map_or(0, |s| s.msn));
    let mut epoch = None;
    for (i, s) in segments.iter().enumerate() {
        let start = SegmentStart { msn: s.msn, epoch: s.epoch, pdt_ms: s.pdt_ms, discontinuity: s.discontinuity };
        segment_header(&mut out, &start, &mut epoch, i == 0);
        let _ = writeln!(out, "#EXTINF:{},\n{}.m4s", secs(s.duration_us), s.msn);
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::{MediaPlaylist, Playlist};
    use proptest::prelude::*;

    fn part(index: u32, ms: u64, independent: bool) -> PartEntry {
        PartEntry { index, duration_us: ms * 1000, independent }
    }

    /// Feeds `n` segments of 4 parts of 480 ms (the first independent), the epoch changing at
    /// the segments in `epochs_at`.
    fn window(n: u64, epochs_at: &[u64]) -> LiveWindow {
        let mut w = LiveWindow::new(PlaylistConfig::default());
        let mut epoch = 0;
        for msn in 100..100 + n {
            let disc = epochs_at.contains(&msn);
            if disc {
                epoch += 1;
            }
            let start = SegmentStart { msn, epoch, pdt_ms: 1_726_800_000_000 + (msn - 100) * 1920, discontinuity: disc };
            let parts: Vec<PartEntry> = (0..4).map(|i| part(i, 480, i == 0)).collect();
            for p in &parts {
                w.handle_part(&start, p.clone());
            }
            w.handle_segment(SegmentEntry { msn, epoch, duration_us: 1_920_000, pdt_ms: start.pdt_ms, discontinuity: disc, parts, video_source: None });
        }
        w
    }

    fn parse(text: &str) -> MediaPlaylist {
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(Playlist::MediaPlaylist(p)) => p,
            other => panic!("not a media playlist: {other:?}\n{text}"),
        }
    }

    fn tags(p: &MediaPlaylist) -> Vec<String> {
        p.segments.iter().flat_map(|s| s.unknown_tags.iter().map(|t| format!("{}:{}", t.tag, t.rest.clone().unwrap_or_default()))).collect()
    }

    #[test]
    fn pdt_is_rfc3339_utc_with_milliseconds() {
        assert_eq!(format_pdt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_pdt(1_726_800_000_123), "2024-09-20T02:40:00.123Z");
        assert_eq!(format_pdt(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn live_playlist_has_the_ll_hls_tags_and_parses_with_m3u8_rs() {
        let mut w = window(3, &[]);
        let start = SegmentStart { msn: 103, epoch: 0, pdt_ms: 1_726_800_005_760, discontinuity: false };
        w.handle_part(&start, part(0, 480, true));
        let text = w.render();
        for needle in [
            "#EXT-X-VERSION:9",
            "#EXT-X-TARGETDURATION:2",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500",
            "#EXT-X-PART-INF:PART-TARGET=0.500",
            "#EXT-X-MEDIA-SEQUENCE:100",
            "#EXT-X-MAP:URI=\"init-0.mp4\"",
            "#EXT-X-PROGRAM-DATE-TIME:2024-09-20T02:40:00.000Z",
            "#EXT-X-PART:DURATION=0.480,URI=\"103.0.m4s\",INDEPENDENT=YES",
            "#EXT-X-PART:DURATION=0.480,URI=\"100.1.m4s\"\n",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"103.1.m4s\"",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("ENDLIST"));
        let p = parse(&text);
        assert_eq!(p.media_sequence, 100);
        assert_eq!(p.target_duration, 2);
        let uris: Vec<&str> = p.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["100.m4s", "101.m4s", "102.m4s"]);
        assert!(p.segments.iter().all(|s| (s.duration - 1.92).abs() < 1e-6));
    }

    #[test]
    fn an_epoch_change_brings_a_discontinuity_and_a_new_map() {
        let text = window(4, &[102]).render();
        let disc = text.find("#EXT-X-DISCONTINUITY\n").expect("discontinuity");
        let map1 = text.find("init-1.mp4").expect("new map");
        let seg102 = text.find("\n102.m4s").unwrap();
        assert!(disc < map1 && map1 < seg102, "{text}");
        let p = parse(&text);
        assert!(p.segments[2].discontinuity);
        assert_eq!(p.segments[2].map.as_ref().unwrap().uri, "init-1.mp4");
    }

    #[test]
    fn old_segments_slide_out_and_count_their_discontinuities() {
        let w = window(12, &[101]);
        let text = w.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:104"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"), "{text}");
        // Only the newest three segments list their parts.
        assert!(!text.contains("\"108.0.m4s\""));
        assert!(text.contains("\"109.0.m4s\""));
        assert_eq!(parse(&text).segments.len(), 8);
        // The first segment listed carries its MAP even though the epoch began earlier.
        assert!(text.find("#EXT-X-MAP:URI=\"init-1.mp4\"").unwrap() < text.find("104.m4s").unwrap());
    }

    #[test]
    fn blocking_reload_conditions_follow_the_parts() {
        let mut w = window(2, &[]);
        assert!(w.satisfies(101, None));
        assert!(!w.satisfies(102, None));
        assert!(!w.satisfies(102, Some(0)));
        let start = SegmentStart { msn: 102, epoch: 0, pdt_ms: 0, discontinuity: false };
        w.handle_part(&start, part(0, 480, true));
        assert!(w.satisfies(102, Some(0)));
        assert!(!w.satisfies(102, Some(1)));
        assert!(!w.satisfies(102, None));
        assert_eq!(w.part_state(102, 0), PartState::Listed);
        assert_eq!(w.part_state(102, 1), PartState::Next);
        assert_eq!(w.part_state(103, 0), PartState::Next);
        assert_eq!(w.part_state(102, 5), PartState::Unknown);
        assert_eq!(w.part_state(100, 3), PartState::Listed);
        assert_eq!(w.check_request(Some(104), Some(0)), Ok(()));
        assert_eq!(w.check_request(Some(105), None), Err(RequestError::TooFarAhead { msn: 105, edge: 102 }));
        assert_eq!(w.check_request(None, Some(1)), Err(RequestError::BadPart));
        let fresh = LiveWindow::starting_at(PlaylistConfig::default(), 500);
        assert_eq!(fresh.check_request(Some(501), Some(0)), Ok(()), "a restarted programme's next numbers wait");
        assert!(fresh.check_request(Some(503), None).is_err());
        // The segment ends with its last part: a reload for that part is answered at once, one
        // for the part after it waits for the next segment's first part.
        for i in 1..4 {
            w.handle_part(&start, part(i, 480, false));
        }
        assert!(!w.satisfies(102, Some(4)));
        w.handle_segment(SegmentEntry { msn: 102, epoch: 0, duration_us: 1_920_000, pdt_ms: 0, discontinuity: false, parts: (0..4).map(|i| part(i, 480, i == 0)).collect(), video_source: None });
        assert!(w.satisfies(102, Some(3)), "the segment's last part is listed");
        assert!(w.satisfies(102, None));
        assert!(!w.satisfies(102, Some(4)), "no part 4: the next segment's part 0 answers it");
        w.handle_end();
        assert!(w.satisfies(1_000, Some(3)));
        let text = w.render();
        assert!(text.ends_with("#EXT-X-ENDLIST\n") && !text.contains("PRELOAD-HINT"), "{text}");
    }

    #[test]
    fn vod_playlist_lists_every_segment_and_ends() {
        let w = window(5, &[103]);
        let segs: Vec<SegmentEntry> = w.segments().cloned().collect();
        let text = render_vod(&segs, true);
        let p = parse(&text);
        assert!(p.end_list);
        assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert_eq!(p.segments.len(), 5);
        assert!(p.segments[3].discontinuity);
        assert!(tags(&p).iter().all(|t| !t.contains("PART")));
        assert!(!text.contains("EXT-X-PART"));
    }

    proptest! {
        /// Whatever the sequence of parts and segments, the live playlist parses, its media
        /// sequence numbers are consecutive, every part listed belongs to a listed segment, and
        /// the preload hint names the next part.
        #[test]
        fn live_playlist_invariants(parts_per_segment in proptest::collection::vec(1usize..6, 1..20), open in 0usize..4, disc in proptest::collection::vec(any::<bool>(), 20)) {
            let mut w = LiveWindow::new(PlaylistConfig::default());
            let mut epoch = 0;
            for (i, n) in parts_per_segment.iter().enumerate() {
                let msn = i as u64;
                let d = i > 0 && disc[i];
                epoch += u32::from(d);
                let start = SegmentStart { msn, epoch, pdt_ms: msn * 2000, discontinuity: d };
                let parts: Vec<PartEntry> = (0..*n as u32).map(|k| part(k, 400, k == 0)).collect();
                for p in &parts { w.handle_part(&start, p.clone()); }
                w.handle_segment(SegmentEntry { msn, epoch, duration_us: 400_000 * *n as u64, pdt_ms: start.pdt_ms, discontinuity: d, parts, video_source: None });
            }
            let next = parts_per_segment.len() as u64;
            let start = SegmentStart { msn: next, epoch, pdt_ms: next * 2000, discontinuity: false };
            for k in 0..open as u32 { w.handle_part(&start, part(k, 400, k == 0)); }
            let text = w.render();
            let p = parse(&text);
            prop_assert!(p.segments.len() <= 8);
            let msns: Vec<u64> = p.segments.iter().map(|s| s.uri.trim_end_matches(".m4s").parse().unwrap()).collect();
            prop_assert!(msns.windows(2).all(|w| w[1] == w[0] + 1));
            prop_assert_eq!(msns.first().copied(), Some(p.media_sequence));
            let hint = format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}.{}.m4s\"", next, open);
            prop_assert!(text.contains(&hint), "{}", text);
            for line in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
                let uri = line.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
                let seg: u64 = uri.split('.').next().unwrap().parse().unwrap();
                prop_assert!(msns.contains(&seg) || seg == next);
            }
        }
    }
}
