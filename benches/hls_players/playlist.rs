//! What a player reads from the hub's live playlist: the parts and segments with the wall-clock
//! time of their first frame (the segment's `EXT-X-PROGRAM-DATE-TIME` plus the durations of the
//! parts before it), the init segment each needs, and the preload hint. Hand-parsed: the hub's
//! playlist has one shape (`src/programme/playlist.rs`), and 10,000 players parse one every
//! part, so this stays a single pass over the lines.

/// A position in the programme: `(msn, part)`; a whole segment is `(msn, WHOLE)`.
pub type Pos = (u64, u32);

/// Stands for "every part of the segment".
pub const WHOLE: u32 = u32::MAX;

/// A part or a whole segment listed in the playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct Media {
    pub pos: Pos,
    pub uri: String,
    /// Wall-clock time of its first frame, µs since the Unix epoch (0 if the playlist gave none).
    pub pdt_us: u64,
    pub dur_us: u64,
    /// The init segment it needs (`EXT-X-MAP`).
    pub map: String,
}

/// One live playlist.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Parts in playlist order.
    pub parts: Vec<Media>,
    /// Complete segments in playlist order.
    pub segments: Vec<Media>,
    pub hint: Option<Pos>,
    pub ended: bool,
}

impl Parsed {
    /// The first part or segment after `pos` a player needs next, in order: parts while the
    /// playlist still lists the part after `pos`, else the whole segments after `pos`'s segment
    /// (a player that fell out of the part window catches up by segments), then parts again.
    pub fn after(&self, pos: Pos) -> Vec<&Media> {
        let mut out = Vec::new();
        let mut at = pos;
        // The parts list still reaches back to `pos`'s segment or the next one: go on with parts
        // (at a segment boundary a tail part of `pos`'s segment may be missed: the window lists
        // whole segments' parts, so only a player a segment behind meets that).
        if self.parts.first().is_some_and(|o| o.pos.0 > pos.0 + 1) {
            for s in self.segments.iter().filter(|s| s.pos.0 > pos.0) {
                out.push(s);
                at = s.pos;
            }
        }
        out.extend(self.parts.iter().filter(|p| p.pos > at));
        out
    }

    /// The newest part listed.
    pub fn newest_part(&self) -> Option<&Media> {
        self.parts.last()
    }
}

fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    let rest = &line[at..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(',').next()
    }
}

fn secs_us(v: &str) -> u64 {
    v.trim().parse::<f64>().map(|s| (s * 1e6).round() as u64).unwrap_or(0)
}

/// `M.P.m4s` → `(M, P)`; `M.m4s` → `(M, WHOLE)`.
fn pos_of(uri: &str) -> Option<Pos> {
    let stem = uri.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some((m.parse().ok()?, p.parse().ok()?)),
        None => Some((stem.parse().ok()?, WHOLE)),
    }
}

/// Days from 1970-01-01 to a civil date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-09-20T02:40:00.123Z` → µs since the Unix epoch (the hub writes UTC with milliseconds).
pub fn parse_pdt(s: &str) -> Option<u64> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let frac_us = format!("{frac:0<6}")[..6].parse::<i64>().ok()?;
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs * 1_000_000 + frac_us).ok()
}

/// Parses a live playlist of the hub.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut map = String::new();
    let mut seg_pdt = 0u64;
    let mut offset = 0u64;
    let mut extinf = 0u64;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:") {
            map = attr(rest, "URI=").unwrap_or_default().to_owned();
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            seg_pdt = parse_pdt(rest).unwrap_or(0);
            offset = 0;
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attr(rest, "URI=").unwrap_or_default();
            let dur = attr(rest, "DURATION=").map(secs_us).unwrap_or(0);
            if let Some(pos) = pos_of(uri) {
                out.parts.push(Media { pos, uri: uri.to_owned(), pdt_us: if seg_pdt > 0 { seg_pdt + offset } else { 0 }, dur_us: dur, map: map.clone() });
            }
            offset += dur;
        } else if let Some(rest) = line.strip_prefix("#EXTINF:") {
            extinf = secs_us(rest.split(',').next().unwrap_or(""));
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            out.hint = attr(rest, "URI=").and_then(pos_of);
        } else if line.starts_with("#EXT-X-ENDLIST") {
            out.ended = true;
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            if let Some(pos) = pos_of(line.trim()) {
                out.segments.push(Media { pos, uri: line.trim().to_owned(), pdt_us: seg_pdt, dur_us: extinf, map: map.clone() });
            }
            // The next segment's date-time, if the playlist omitted it.
            seg_pdt = if seg_pdt > 0 { seg_pdt + extinf } else { 0 };
            offset = 0;
        }
    }
    out
}

/// The parser's own checks, run at start-up (a `harness = false` bench runs no `#[test]`).
pub fn self_check() {
    parts_carry_their_date_time_map_and_position();
    a_player_continues_with_parts_or_catches_up_by_segments();
    date_times_are_utc_microseconds();
}

const TEXT: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n\
#EXT-X-MAP:URI=\"init-0.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2024-09-20T02:40:00.000Z\n\
#EXT-X-PART:DURATION=0.480,URI=\"100.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.480,URI=\"100.1.m4s\"\n#EXTINF:0.960,\n100.m4s\n\
#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2024-09-20T02:40:00.960Z\n\
#EXT-X-PART:DURATION=0.500,URI=\"101.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.500,URI=\"101.1.m4s\"\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"101.2.m4s\"\n";

fn parts_carry_their_date_time_map_and_position() {
    let p = parse(TEXT);
    let base = 1_726_800_000_000_000u64;
    assert_eq!(p.parts.len(), 4);
    assert_eq!(p.parts[1].pos, (100, 1));
    assert_eq!(p.parts[1].pdt_us, base + 480_000);
    assert_eq!(p.parts[3].pdt_us, base + 960_000 + 500_000);
    assert_eq!(p.parts[3].map, "init-1.mp4");
    assert_eq!(p.segments[0].pos, (100, WHOLE));
    assert_eq!(p.hint, Some((101, 2)));
    assert!(!p.ended);
}

fn a_player_continues_with_parts_or_catches_up_by_segments() {
    let p = parse(TEXT);
    let uris = |v: Vec<&Media>| v.into_iter().map(|m| m.uri.clone()).collect::<Vec<_>>();
    assert_eq!(uris(p.after((101, 0))), ["101.1.m4s"]);
    assert_eq!(uris(p.after((100, 1))), ["101.0.m4s", "101.1.m4s"]);
    assert_eq!(uris(p.after((100, 0))), ["100.1.m4s", "101.0.m4s", "101.1.m4s"]);
    // Its last part slid out of the list: the whole segments after it, then the parts.
    assert_eq!(uris(p.after((98, 3))), ["100.m4s", "101.0.m4s", "101.1.m4s"]);
    assert_eq!(uris(p.after((98, WHOLE))), ["100.m4s", "101.0.m4s", "101.1.m4s"]);
    assert_eq!(uris(p.after((99, 3))), ["100.0.m4s", "100.1.m4s", "101.0.m4s", "101.1.m4s"]);
    assert_eq!(uris(p.after((100, WHOLE))), ["101.0.m4s", "101.1.m4s"]);
    assert!(p.after((101, 1)).is_empty());
}

fn date_times_are_utc_microseconds() {
    assert_eq!(parse_pdt("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(parse_pdt("2024-09-20T02:40:00.123Z"), Some(1_726_800_000_123_000));
    assert_eq!(parse_pdt("2000-02-29T00:00:00.000Z"), Some(951_782_400_000_000));
    assert_eq!(parse_pdt("garbage"), None);
}
