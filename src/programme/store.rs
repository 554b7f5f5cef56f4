//! The segment store: a programme's init segments, parts and segments as files, and an
//! append-only index that makes the directory a recording.
//!
//! ```text
//! {data}/recordings/{activity}/
//!     index.jsonl        one JSON object per line: start, init, segment, end (append-only)
//!     init-{epoch}.mp4   init segments
//!     {msn}.m4s          complete segments
//!     {msn}.{part}.m4s   parts of the newest segments (pruned as segments complete)
//! ```
//!
//! Every file is written to `*.tmp` and renamed, so a reader never sees half a file; a segment
//! is synced and renamed *before* its index line is appended (and the index synced), so after
//! `kill -9` (or a power cut) the index lists only segments that are whole on disk: the loss is
//! at most the segment in progress. A torn last index line is skipped on reading.
//!
//! The index carries everything a replay needs — durations, wall-clock times, discontinuities,
//! init per epoch, whose camera each segment shows — so `render_vod` over [`Recording`] is the
//! whole-session VOD playlist, and chapters can be cut from the record's floor turns by time.
//! A restarted programme continues the numbering (`next_msn`, `next_epoch`), so one activity has
//! one recording however often the hub restarts.
//!
//! This is the one module of `programme/` that does I/O: blocking `std::fs`, called from the
//! server's writer thread, never from an async task.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::packager::{InitOut, PartOut, SegmentOut};
use super::playlist::{self, SegmentEntry};

/// The index file of a recording.
pub const INDEX: &str = "index.jsonl";
/// Index lines longer than this are not read (a damaged file must not take the memory).
pub const MAX_INDEX_LINE: usize = 64 * 1024;
/// Parts are kept on disk for this many of the newest segments.
pub const KEEP_PART_SEGMENTS: u64 = 4;

/// One line of the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum IndexLine {
    /// The programme (re)started.
    Start {
        /// Wall-clock ms.
        at_ms: u64,
    },
    /// An init segment was written.
    Init {
        /// Its epoch.
        epoch: u32,
        /// RFC 6381 codecs.
        codecs: String,
        /// Picture size, if it has video.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolution: Option<(u32, u32)>,
    },
    /// A segment is complete on disk.
    Segment(SegmentEntry),
    /// The livestream ended.
    End {
        /// Wall-clock ms.
        at_ms: u64,
    },
}

/// An init segment as the index lists it: (epoch, RFC 6381 codecs, picture size).
pub type InitEntry = (u32, String, Option<(u32, u32)>);

/// What a recording's index says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// Init segments: (epoch, codecs, resolution).
    pub inits: Vec<InitEntry>,
    /// Segments in order.
    pub segments: Vec<SegmentEntry>,
    /// Whether the livestream ended (the last line is `end`).
    pub ended: bool,
    /// Index lines that could not be read (a torn last line after a crash).
    pub skipped_lines: usize,
}

impl Recording {
    /// The media sequence number the next segment takes.
    pub fn next_msn(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.msn + 1)
    }

    /// The epoch the next init segment takes.
    pub fn next_epoch(&self) -> u32 {
        self.inits.iter().map(|i| i.0 + 1).max().unwrap_or(0)
    }

    /// Total duration in microseconds.
    pub fn duration_us(&self) -> u64 {
        self.segments.iter().map(|s| s.duration_us).sum()
    }

    /// The VOD (or, while live, EVENT) playlist of the whole recording.
    pub fn playlist(&self) -> String {
        playlist::render_vod(&self.segments, self.ended)
    }

    /// Reads the index of the recording in `dir` (empty if there is none).
    pub fn read(dir: &Path) -> io::Result<Recording> {
        let file = match File::open(dir.join(INDEX)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recording::default()),
            Err(e) => return Err(e),
        };
        let mut rec = Recording::default();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = io::Read::take(&mut reader, MAX_INDEX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_INDEX_LINE {
                rec.skipped_lines += 1;
                // Skip the rest of an overlong line.
                let mut rest = Vec::new();
                reader.read_until(b'\n', &mut rest)?;
                continue;
            }
            match serde_json::from_slice::<IndexLine>(line.trim_ascii()) {
                Ok(IndexLine::Start { .. }) => rec.ended = false,
                Ok(IndexLine::Init { epoch, codecs, resolution }) => rec.inits.push((epoch, codecs, resolution)),
                Ok(IndexLine::Segment(s)) => {
                    // Numbering only grows; anything else is a damaged line.
                    if rec.segments.last().is_none_or(|l| s.msn > l.msn) {
                        rec.segments.push(s);
                    } else {
                        rec.skipped_lines += 1;
                    }
                }
                Ok(IndexLine::End { .. }) => rec.ended = true,
                Err(_) if line.trim_ascii().is_empty() => {}
                Err(_) => rec.skipped_lines += 1,
            }
        }
        Ok(rec)
    }
}

/// The directory of `activity`'s recording under the data directory.
pub fn recording_dir(data_dir: &Path, activity: &str) -> PathBuf {
    data_dir.join("recordings").join(activity)
}

/// Whether a file name is one the store writes (and the HLS routes may serve from it).
pub fn is_media_name(name: &str) -> bool {
    let stem = if let Some(s) = name.strip_suffix(".m4s") {
        s
    } else if let Some(e) = name.strip_prefix("init-").and_then(|s| s.strip_suffix(".mp4")) {
        return !e.is_empty() && e.len() <= 10 && e.bytes().all(|b| b.is_ascii_digit());
    } else {
        return false;
    };
    let mut it = stem.splitn(2, '.');
    let ok = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    it.next().is_some_and(ok) && it.next().is_none_or(ok)
}

/// Writes one programme's files (see the module docs for the guarantees).
#[derive(Debug)]
pub struct SegmentStore {
    dir: PathBuf,
    index: File,
}

impl SegmentStore {
    /// Opens (creating) the recording in `dir`, removes leftovers of a crash (`*.tmp`, parts)
    /// and appends a `start` line. Returns the store and what the recording held so far.
    pub fn open(dir: &Path, now_ms: u64) -> io::Result<(SegmentStore, Recording)> {
        fs::create_dir_all(dir)?;
        let rec = Recording::read(dir)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_part = name.strip_suffix(".m4s").is_some_and(|s| s.contains('.'));
            if name.ends_with(".tmp") || is_part {
                let _ = fs::remove_file(entry.path());
            }
        }
        let mut index = OpenOptions::new().create(true).read(true).append(true).open(dir.join(INDEX))?;
        // A line torn by a crash has no newline: end it, so the next line stands on its own.
        let len = index.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            index.seek(SeekFrom::Start(len - 1))?;
            index.read_exact(&mut last)?;
            if last[0] != b'\n' {
                index.write_all(b"\n")?;
            }
        }
        let mut store = SegmentStore { dir: dir.to_owned(), index };
        store.append(&IndexLine::Start { at_ms: now_ms })?;
        Ok((store, rec))
    }

    /// The recording's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_file(&self, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_data()?;
        }
        drop(f);
        fs::rename(&tmp, self.dir.join(name))
    }

    fn append(&mut self, line: &IndexLine) -> io::Result<()> {
        let mut text = serde_json::to_vec(line).map_err(io::Error::other)?;
        text.push(b'\n');
        // One write per line: with O_APPEND it lands whole or (on a crash) torn at the end.
        self.index.write_all(&text)?;
        self.index.sync_data()?;
        Ok(())
    }

    /// Writes an init segment and indexes it.
    pub fn write_init(&mut self, init: &InitOut) -> io::Result<()> {
        self.write_file(&format!("init-{}.mp4", init.epoch), &init.bytes, true)?;
        self.append(&IndexLine::Init { epoch: init.epoch, codecs: init.codecs.clone(), resolution: init.resolution })
    }

    /// Writes a part (not synced: the segment is what survives a crash).
    pub fn write_part(&mut self, part: &PartOut) -> io::Result<()> {
        self.write_file(&format!("{}.{}.m4s", part.segment.msn, part.part.index), &part.bytes, false)
    }

    /// Writes a complete segment, then its index line; prunes parts of older segments.
    pub fn write_segment(&mut self, seg: &SegmentOut) -> io::Result<()> {
        let msn = seg.entry.msn;
        self.write_file(&format!("{msn}.m4s"), &seg.bytes, true)?;
        self.append(&IndexLine::Segment(seg.entry.clone()))?;
        if let Some(old) = msn.checked_sub(KEEP_PART_SEGMENTS) {
            for i in 0..64 {
                if fs::remove_file(self.dir.join(format!("{old}.{i}.m4s"))).is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Marks the recording ended.
    pub fn write_end(&mut self, now_ms: u64) -> io::Result<()> {
        self.append(&IndexLine::End { at_ms: now_ms })
    }
}

/// Whether a recording last written at `last_write_ms` is past its retention at `now_ms`
/// (`retention_ms: None` keeps recordings forever).
pub fn expired(last_write_ms: u64, now_ms: u64, retention_ms: Option<u64>) -> bool {
    retention_ms.is_some_and(|r| now_ms.saturating_sub(last_write_ms) > r)
}

/// Removes the recordings under `data_dir/recordings` whose index was last written more than
/// `retention_ms` before `now_ms`, except those in `keep` (live ones). Returns the removed names.
pub fn prune(data_dir: &Path, now_ms: u64, retention_ms: Option<u64>, keep: &dyn Fn(&str) -> bool) -> io::Result<Vec<String>> {
    let root = data_dir.join("recordings");
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(&root) else { return Ok(removed) };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            continue;
        }
        let modified = fs::metadata(entry.path().join(INDEX)).and_then(|m| m.modified()).or_else(|_| entry.metadata().and_then(|m| m.modified()));
        let Ok(modified) = modified else { continue };
        let ms = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        if expired(ms, now_ms, retention_ms) {
            fs::remove_dir_all(entry.path())?;
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::playlist::{PartEntry, SegmentStart};
    use bytes::Bytes;

    fn seg(msn: u64, epoch: u32) -> SegmentOut {
        SegmentOut {
            entry: SegmentEntry { msn, epoch, duration_us: 2_000_000, pdt_ms: 1000 + msn * 2000, discontinuity: false, parts: vec![PartEntry { index: 0, duration_us: 2_000_000, independent: true }], video_source: Some("wang".into()) },
            bytes: Bytes::from(vec![msn as u8; 100]),
        }
    }

    fn init(epoch: u32) -> InitOut {
        InitOut { epoch, bytes: Bytes::from_static(b"init"), codecs: "avc1.42c01e,opus".into(), resolution: Some((640, 360)) }
    }

    #[test]
    fn a_recording_reads_back_and_a_restart_continues_its_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rec) = SegmentStore::open(dir.path(), 1).unwrap();
        assert_eq!(rec, Recording::default());
        s.write_init(&init(0)).unwrap();
        for msn in 0..6 {
            let start = SegmentStart { msn, epoch: 0, pdt_ms: 0, discontinuity: false };
            s.write_part(&PartOut { segment: start, part: PartEntry { index: 0, duration_us: 1, independent: true }, bytes: Bytes::from_static(b"p") }).unwrap();
            s.write_segment(&seg(msn, 0)).unwrap();
        }
        assert!(dir.path().join("5.0.m4s").is_file());
        assert!(!dir.path().join("1.0.m4s").exists(), "parts of old segments are pruned");
        drop(s);
        let (_s, rec) = SegmentStore::open(dir.path(), 2).unwrap();
        assert_eq!(rec.segments.len(), 6);
        assert_eq!((rec.next_msn(), rec.next_epoch()), (6, 1));
        assert_eq!(rec.duration_us(), 12_000_000);
        assert!(!dir.path().join("5.0.m4s").exists(), "parts are leftovers after a restart");
        assert_eq!(fs::read(dir.path().join("3.m4s")).unwrap(), vec![3u8; 100]);
        assert!(rec.playlist().contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
    }

    #[test]
    fn a_torn_index_line_and_a_half_written_file_after_a_crash_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = SegmentStore::open(dir.path(), 1).unwrap();
        s.write_init(&init(0)).unwrap();
        s.write_segment(&seg(0, 0)).unwrap();
        s.write_segment(&seg(1, 0)).unwrap();
        drop(s);
        // What kill -9 in the middle of segment 2 leaves: its temp file and a torn line.
        fs::write(dir.path().join("2.m4s.tmp"), b"half").unwrap();
        let mut idx = OpenOptions::new().append(true).open(dir.path().join(INDEX)).unwrap();
        idx.write_all(b"{\"t\":\"segment\",\"msn\":2,\"epo").unwrap();
        drop(idx);
        let rec = Recording::read(dir.path()).unwrap();
        assert_eq!(rec.segments.iter().map(|s| s.msn).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(rec.skipped_lines, 1);
        let (mut s, rec) = SegmentStore::open(dir.path(), 2).unwrap();
        assert_eq!(rec.next_msn(), 2);
        assert!(!dir.path().join("2.m4s.tmp").exists());
        // The torn line has no newline; the next line must still be readable.
        s.write_segment(&seg(2, 0)).unwrap();
        s.write_end(3).unwrap();
        let rec = Recording::read(dir.path()).unwrap();
        assert_eq!(rec.segments.len(), 3);
        assert!(rec.ended);
        assert!(rec.playlist().ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn media_names_are_the_stores_and_nothing_else() {
        for ok in ["init-0.mp4", "12.m4s", "12.3.m4s"] {
            assert!(is_media_name(ok), "{ok}");
        }
        for bad in ["index.jsonl", "../x.m4s", "1.2.3.m4s", ".m4s", "init-.mp4", "init-a.mp4", "12.m4s.tmp", "1/2.m4s"] {
            assert!(!is_media_name(bad), "{bad}");
        }
    }

    #[test]
    fn retention_removes_old_recordings_but_keeps_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        for a in ["old", "live"] {
            let (mut s, _) = SegmentStore::open(&recording_dir(dir.path(), a), 1).unwrap();
            s.write_segment(&seg(0, 0)).unwrap();
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(prune(dir.path(), now, None, &|_| false).unwrap().is_empty(), "no retention: keep all");
        let removed = prune(dir.path(), now + 10 * 86_400_000, Some(86_400_000), &|a| a == "live").unwrap();
        assert_eq!(removed, ["old"]);
        assert!(recording_dir(dir.path(), "live").join("0.m4s").is_file());
        assert!(!expired(1000, 2000, Some(5000)) && expired(1000, 7000, Some(5000)));
    }
}
