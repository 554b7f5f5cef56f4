//! RTP header rewriting state, one instance per (subscriber leg, outgoing track).
//!
//! A subscriber sees one continuous stream per outgoing track even though the packets come from
//! different sources over time (another publisher on the stage, another simulcast layer). The
//! calling contract:
//!
//! ```text
//! on a source change:   seq.handle_switch(); ts.handle_switch(now)
//! for every packet:     out_seq = seq.rewrite(in_seq)?; out_ts = ts.rewrite(in_ts, now)
//! ```
//!
//! Gaps inside one source are kept as gaps (so the subscriber's NACKs and loss statistics stay
//! truthful); across a switch the output continues at `last + 1`. Pure: no I/O, time is an argument.

use std::time::Instant;

/// Whether `a` is newer than `b` in 16-bit serial arithmetic (RFC 1982).
fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// Whether `a` is newer than `b` in 32-bit serial arithmetic.
fn ts_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// Rewrites RTP sequence numbers so the output is continuous across source switches.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    /// `out = in + offset` (wrapping) for the current source.
    offset: u16,
    /// Newest output sequence number so far.
    last_out: u16,
    /// First input sequence number of the current source; older packets belong to the previous one.
    source_first_in: u16,
    /// Newest input sequence number of the current source.
    highest_in: u16,
    /// The next packet starts a new source.
    pending_switch: bool,
    started: bool,
}

impl SeqRewriter {
    /// A rewriter whose first output sequence number is `first_out`.
    pub fn new(first_out: u16) -> Self {
        Self {
            offset: 0,
            last_out: first_out.wrapping_sub(1),
            source_first_in: 0,
            highest_in: 0,
            pending_switch: true,
            started: false,
        }
    }

    /// The next packet comes from a different source (publisher or simulcast layer).
    pub fn handle_switch(&mut self) {
        self.pending_switch = true;
    }

    /// The output sequence number for `in_seq`, or `None` for a late packet of a previous source
    /// (forwarding it would collide with sequence numbers already used).
    pub fn rewrite(&mut self, in_seq: u16) -> Option<u16> {
        if self.pending_switch {
            self.pending_switch = false;
            self.started = true;
            let out = self.last_out.wrapping_add(1);
            self.offset = out.wrapping_sub(in_seq);
            self.source_first_in = in_seq;
            self.highest_in = in_seq;
            self.last_out = out;
            return Some(out);
        }
        if seq_newer(self.source_first_in, in_seq) {
            return None; // from before this source began
        }
        let out = in_seq.wrapping_add(self.offset);
        if seq_newer(in_seq, self.highest_in) {
            self.highest_in = in_seq;
            self.last_out = out;
        }
        Some(out)
    }

    /// The newest output sequence number, if any packet was rewritten.
    pub fn last_out(&self) -> Option<u16> {
        self.started.then_some(self.last_out)
    }
}

/// Rewrites RTP timestamps so the output clock advances by wall time across source switches.
#[derive(Debug, Clone)]
pub struct TsRewriter {
    clock_rate: u32,
    offset: u32,
    last_out: u32,
    last_out_at: Option<Instant>,
    highest_in: u32,
    pending_switch: bool,
}

impl TsRewriter {
    /// A rewriter for a stream with `clock_rate` Hz whose first output timestamp is `first_out`.
    pub fn new(clock_rate: u32, first_out: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            offset: 0,
            last_out: first_out,
            last_out_at: None,
            highest_in: 0,
            pending_switch: true,
        }
    }

    /// The next packet comes from a different source.
    pub fn handle_switch(&mut self) {
        self.pending_switch = true;
    }

    /// The output timestamp for `in_ts` at wall time `now`.
    pub fn rewrite(&mut self, in_ts: u32, now: Instant) -> u32 {
        if self.pending_switch {
            self.pending_switch = false;
            let out = match self.last_out_at {
                None => self.last_out,
                Some(at) => {
                    // Advance by the wall time since the last packet, at least one tick, so the
                    // receiver's jitter buffer sees time move forward.
                    let elapsed = now.saturating_duration_since(at);
                    let ticks = (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000)
                        .clamp(1, u32::MAX as u64 / 2) as u32;
                    self.last_out.wrapping_add(ticks)
                }
            };
            self.offset = out.wrapping_sub(in_ts);
            self.highest_in = in_ts;
            self.last_out = out;
            self.last_out_at = Some(now);
            return out;
        }
        let out = in_ts.wrapping_add(self.offset);
        if ts_newer(in_ts, self.highest_in) || in_ts == self.highest_in {
            self.highest_in = in_ts;
            self.last_out = out;
            self.last_out_at = Some(now);
        }
        out
    }
}

/// Throttles keyframe requests (PLI) towards one publisher track.
///
/// Requests inside the interval are not dropped but remembered: `poll_due` reports one deferred
/// request once the interval has passed, so a subscriber that joined just after another still
/// gets its keyframe.
#[derive(Debug, Clone)]
pub struct PliThrottle {
    min_interval: std::time::Duration,
    last_sent: Option<Instant>,
    deferred: bool,
}

impl PliThrottle {
    /// At most one PLI per `min_interval`.
    pub fn new(min_interval: std::time::Duration) -> Self {
        Self { min_interval, last_sent: None, deferred: false }
    }

    /// A keyframe was requested at `now`; true when a PLI should be sent right away.
    pub fn handle_request(&mut self, now: Instant) -> bool {
        if self.allowed(now) {
            self.last_sent = Some(now);
            self.deferred = false;
            true
        } else {
            self.deferred = true;
            false
        }
    }

    /// True when a deferred request is now due (and marks it sent).
    pub fn poll_due(&mut self, now: Instant) -> bool {
        if self.deferred && self.allowed(now) {
            self.deferred = false;
            self.last_sent = Some(now);
            true
        } else {
            false
        }
    }

    fn allowed(&self, now: Instant) -> bool {
        self.last_sent.is_none_or(|t| now.saturating_duration_since(t) >= self.min_interval)
    }
}

/// What to do with one packet of a simulcast track for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerDecision {
    /// Not the layer this subscriber is on (or waiting for a keyframe): skip it.
    Drop,
    /// Forward it.
    Forward,
    /// Forward it; it is the first packet of a new layer (rewriters must `handle_switch`).
    SwitchAndForward,
}

/// Per-subscriber simulcast layer choice. Layers are indices, 0 the lowest quality.
///
/// The subscriber stays on its current layer until a keyframe of the target layer arrives, so
/// the decoder never sees a delta frame it has no reference for.
#[derive(Debug, Clone)]
pub struct LayerSelector {
    current: Option<usize>,
    target: usize,
    /// Highest layer the subscriber may be given (lowered on loss).
    cap: usize,
    layers: usize,
}

impl LayerSelector {
    /// A selector over `layers` layers (1 for a non-simulcast track) aiming at `target`.
    pub fn new(layers: usize, target: usize) -> Self {
        let layers = layers.max(1);
        Self { current: None, target: target.min(layers - 1), cap: layers - 1, layers }
    }

    /// The subscriber (or policy) asks for another layer.
    pub fn handle_set_target(&mut self, target: usize) {
        self.target = target.min(self.layers - 1);
    }

    /// The publisher's layer count changed (a layer appeared).
    pub fn handle_layers(&mut self, layers: usize) {
        let grow_cap = self.cap + 1 == self.layers;
        self.layers = layers.max(1);
        if grow_cap {
            self.cap = self.layers - 1;
        }
        self.cap = self.cap.min(self.layers - 1);
        self.target = self.target.min(self.layers - 1);
    }

    /// Loss reported by the subscriber's receiver report (`fraction_lost` / 256). Above 10 % the
    /// cap drops one layer; below 2 % it rises one layer again.
    pub fn handle_loss(&mut self, fraction_lost: u8) {
        if fraction_lost > 25 && self.cap > 0 {
            self.cap -= 1;
        } else if fraction_lost < 5 && self.cap + 1 < self.layers {
            self.cap += 1;
        }
    }

    /// The layer packets should come from once the switch completes.
    pub fn effective_target(&self) -> usize {
        self.target.min(self.cap)
    }

    /// The layer currently forwarded, if any.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// True while waiting for a keyframe of the effective target (a PLI is worth sending).
    pub fn wants_keyframe(&self) -> bool {
        self.current != Some(self.effective_target())
    }

    /// Decide for one packet of `layer`; `keyframe` when it starts a keyframe.
    pub fn handle_packet(&mut self, layer: usize, keyframe: bool) -> LayerDecision {
        let want = self.effective_target();
        if self.current == Some(layer) {
            if layer != want && keyframe {
                // Still on the old layer; keep forwarding it until the target's keyframe comes.
            }
            return LayerDecision::Forward;
        }
        if layer == want && keyframe {
            self.current = Some(layer);
            return LayerDecision::SwitchAndForward;
        }
        LayerDecision::Drop
    }
}

/// Rank simulcast rids from lowest to highest quality.
///
/// Chromium and the WHIP clients use either `q`/`h`/`f` (quarter, half, full) or `l`/`m`/`h`
/// (low, mid, high); `h` is ambiguous between the two, so the scheme is chosen from the set.
pub fn rid_rank(rid: &str, all: &[String]) -> usize {
    let qhf = all.iter().any(|r| r == "f" || r == "q");
    let order: &[&str] = if qhf { &["q", "h", "f"] } else { &["l", "m", "h"] };
    order.iter().position(|r| *r == rid).unwrap_or_else(|| {
        // Unknown names: order by their position in `all` sorted alphabetically.
        let mut sorted: Vec<&String> = all.iter().collect();
        sorted.sort();
        sorted.iter().position(|r| *r == rid).unwrap_or(0)
    })
}

/// Whether a VP8 RTP payload starts a keyframe (RFC 7741 payload descriptor + VP8 frame tag).
pub fn vp8_is_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else { return false };
    let start_of_partition = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    if !start_of_partition || pid != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = payload.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let Some(&p) = payload.get(i) else { return false };
            i += if p & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    // VP8 frame tag: bit 0 is the inverse key frame flag.
    payload.get(i).is_some_and(|tag| tag & 0x01 == 0)
}

/// Whether an H.264 RTP payload carries an IDR slice or SPS (RFC 6184).
pub fn h264_is_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else { return false };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            // STAP-A: 16-bit sizes followed by NAL units.
            let mut i = 1;
            while i + 2 < payload.len() {
                let size = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                if let Some(nal) = payload.get(i + 2)
                    && matches!(nal & 0x1f, 5 | 7)
                {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => payload.get(1).is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, 5 | 7)),
        _ => false,
    }
}

/// Whether `payload` of codec `mime_type` starts a keyframe. Audio is always "key".
pub fn is_keyframe(mime_type: &str, payload: &[u8]) -> bool {
    let m = mime_type;
    if m.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("audio/")) {
        true
    } else if m.eq_ignore_ascii_case("video/vp8") {
        vp8_is_keyframe(payload)
    } else if m.eq_ignore_ascii_case("video/h264") {
        h264_is_keyframe(payload)
    } else {
        // VP9/AV1 parsing not done: treat every packet as a possible start (no gating).
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn seq_starts_at_base_and_keeps_gaps_inside_one_source() {
        let mut r = SeqRewriter::new(1000);
        assert_eq!(r.rewrite(50), Some(1000));
        assert_eq!(r.rewrite(51), Some(1001));
        assert_eq!(r.rewrite(54), Some(1004)); // loss of 52, 53 stays visible
        assert_eq!(r.rewrite(52), Some(1002)); // retransmission/reorder keeps its slot
        assert_eq!(r.last_out(), Some(1004));
    }

    #[test]
    fn seq_continues_after_switch_and_drops_late_packets_of_old_source() {
        let mut r = SeqRewriter::new(65534);
        assert_eq!(r.rewrite(10), Some(65534));
        assert_eq!(r.rewrite(11), Some(65535));
        r.handle_switch();
        assert_eq!(r.rewrite(40000), Some(0));
        assert_eq!(r.rewrite(40001), Some(1));
        assert_eq!(r.rewrite(39990), None);
    }

    #[test]
    fn ts_advances_by_wall_time_across_switch() {
        let t0 = Instant::now();
        let mut r = TsRewriter::new(90_000, 5000);
        assert_eq!(r.rewrite(100, t0), 5000);
        assert_eq!(r.rewrite(3100, t0 + Duration::from_millis(33)), 8000);
        r.handle_switch();
        let out = r.rewrite(777_777, t0 + Duration::from_millis(66));
        assert_eq!(out, 8000 + 2970);
        assert_eq!(r.rewrite(777_777 + 3000, t0 + Duration::from_millis(99)), 8000 + 2970 + 3000);
    }

    #[test]
    fn pli_throttle_defers_and_releases_one_request() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(500));
        assert!(p.handle_request(t0));
        assert!(!p.handle_request(t0 + Duration::from_millis(100)));
        assert!(!p.handle_request(t0 + Duration::from_millis(200)));
        assert!(!p.poll_due(t0 + Duration::from_millis(400)));
        assert!(p.poll_due(t0 + Duration::from_millis(500)));
        assert!(!p.poll_due(t0 + Duration::from_millis(2000)));
    }

    #[test]
    fn layer_switch_waits_for_a_keyframe_of_the_target() {
        let mut s = LayerSelector::new(3, 2);
        assert_eq!(s.handle_packet(2, false), LayerDecision::Drop);
        assert_eq!(s.handle_packet(0, true), LayerDecision::Drop);
        assert_eq!(s.handle_packet(2, true), LayerDecision::SwitchAndForward);
        assert_eq!(s.handle_packet(2, false), LayerDecision::Forward);
        s.handle_set_target(0);
        assert!(s.wants_keyframe());
        assert_eq!(s.handle_packet(0, false), LayerDecision::Drop);
        assert_eq!(s.handle_packet(2, false), LayerDecision::Forward);
        assert_eq!(s.handle_packet(0, true), LayerDecision::SwitchAndForward);
        assert_eq!(s.handle_packet(2, true), LayerDecision::Drop);
    }

    #[test]
    fn loss_lowers_the_layer_cap_and_recovery_raises_it() {
        let mut s = LayerSelector::new(3, 2);
        s.handle_loss(60);
        assert_eq!(s.effective_target(), 1);
        s.handle_loss(60);
        s.handle_loss(60);
        assert_eq!(s.effective_target(), 0);
        s.handle_loss(0);
        assert_eq!(s.effective_target(), 1);
    }

    #[test]
    fn rids_rank_in_both_naming_schemes() {
        let qhf: Vec<String> = ["f", "h", "q"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rid_rank("q", &qhf), 0);
        assert_eq!(rid_rank("h", &qhf), 1);
        assert_eq!(rid_rank("f", &qhf), 2);
        let lmh: Vec<String> = ["h", "l", "m"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rid_rank("h", &lmh), 2);
        assert_eq!(rid_rank("l", &lmh), 0);
    }

    #[test]
    fn vp8_keyframe_detection() {
        // S=1, PID=0, no extension; frame tag with P=0 (key).
        assert!(vp8_is_keyframe(&[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        // P=1: interframe.
        assert!(!vp8_is_keyframe(&[0x10, 0x01]));
        // Not a partition start.
        assert!(!vp8_is_keyframe(&[0x00, 0x00]));
        // X=1, I=1 with 15-bit picture id.
        assert!(vp8_is_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x00]));
    }

    proptest! {
        /// Whatever the sources' sequence numbers, a switch never leaves a gap or a repeat in the
        /// output when each source is delivered without loss.
        #[test]
        fn rewritten_sequence_numbers_are_continuous_across_switches(
            base in any::<u16>(),
            segments in proptest::collection::vec((any::<u16>(), 1usize..60), 1..20),
        ) {
            let mut r = SeqRewriter::new(base);
            let mut expected = base;
            for (i, (start, len)) in segments.iter().enumerate() {
                if i > 0 { r.handle_switch(); }
                for k in 0..*len {
                    let out = r.rewrite(start.wrapping_add(k as u16));
                    prop_assert_eq!(out, Some(expected));
                    expected = expected.wrapping_add(1);
                }
            }
        }

        /// Reordering inside a source maps each input to a distinct output, and never to one
        /// used before the switch.
        #[test]
        fn reordered_packets_keep_distinct_slots(
            start in any::<u16>(),
            perm in Just((0u16..20).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let mut r = SeqRewriter::new(100);
            r.rewrite(7);
            r.rewrite(8);
            r.handle_switch();
            r.rewrite(start);
            let mut seen = std::collections::HashSet::new();
            for d in perm {
                if let Some(out) = r.rewrite(start.wrapping_add(1 + d)) {
                    prop_assert!(seen.insert(out));
                    prop_assert!(out != 100 && out != 101);
                }
            }
        }
    }
}
