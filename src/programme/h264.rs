//! H.264 over RTP (RFC 6184) into access units, and what the programme needs to know about a
//! stream's parameter sets.
//!
//! ```text
//! d.handle_packet(rtp, now_us)            // any order: a reorder buffer sits in front
//! d.handle_tick(now_us)                   // at d.poll_timeout(): a hole is given up
//! while let Some(out) = d.poll() {
//!     Depacketized::Frame(au)             // a complete access unit, NAL units without start codes
//!     Depacketized::KeyframeNeeded        // something was lost: frames are dropped until the
//! }                                       // next IDR; ask the publisher for one
//! ```
//!
//! Packetization mode 1 (what WebRTC uses): single NAL unit packets, STAP-A and FU-A. Anything
//! else (STAP-B, MTAP, FU-B) is counted as a broken frame. After a loss nothing is handed on
//! until an access unit with an IDR slice: a decoder fed a frame whose references are missing
//! shows corruption until the next keyframe anyway, and the programme must not record it.
//!
//! Why not `rtc`'s `H264Packet` depacketizer: it concatenates FU-A fragments without looking at
//! sequence numbers or the start bit, so a lost middle fragment yields a silently corrupt NAL
//! unit. Loss handling is the point here, so the (short) parsing is ours.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::reorder::{Released, Reorder};
use super::RtpPacket;

/// NAL unit types used here (ITU-T H.264 Table 7-1, RFC 6184 §5.4).
pub mod nal {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture: a keyframe.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
    /// Filler data.
    pub const FILLER: u8 = 12;
    /// RTP aggregation packet (RFC 6184 §5.7.1).
    pub const STAP_A: u8 = 24;
    /// RTP fragmentation unit (RFC 6184 §5.8).
    pub const FU_A: u8 = 28;
}

/// The type of a NAL unit from its first byte.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// The largest access unit accepted (a 4K intra frame at a high bitrate stays well below).
pub const MAX_ACCESS_UNIT_BYTES: usize = 4 << 20;
/// The most NAL units one access unit may hold.
pub const MAX_NALUS: usize = 256;

/// One complete access unit (one video frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// The RTP timestamp (90 kHz) shared by its packets.
    pub rtp_ts: u32,
    /// When its first packet arrived, in microseconds since the Unix epoch.
    pub arrival_us: u64,
    /// Its NAL units (no start codes), without SPS, PPS, AUD and filler.
    pub nalus: Vec<Bytes>,
    /// It holds an IDR slice.
    pub keyframe: bool,
    /// The SPS it carried, if any.
    pub sps: Option<Bytes>,
    /// The PPS it carried, if any.
    pub pps: Option<Bytes>,
}

impl AccessUnit {
    /// Bytes of the sample in AVCC form (4-byte big-endian length before each NAL unit).
    pub fn avcc_len(&self) -> usize {
        self.nalus.iter().map(|n| 4 + n.len()).sum()
    }

    /// Appends the sample in AVCC form to `out`.
    pub fn write_avcc(&self, out: &mut Vec<u8>) {
        for n in &self.nalus {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
    }
}

/// What the depacketizer hands on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Depacketized {
    /// A complete frame that can be decoded (a keyframe, or a frame after one with nothing lost).
    Frame(AccessUnit),
    /// Something was lost or broken; frames are dropped until the next keyframe.
    KeyframeNeeded,
}

/// Counters of one depacketizer (for status and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Frames handed on.
    pub frames: u64,
    /// Frames dropped because they were broken or followed a loss.
    pub dropped_frames: u64,
    /// Packets reported lost by the reorder buffer.
    pub lost_packets: u64,
}

#[derive(Debug)]
struct Partial {
    ts: u32,
    arrival_us: u64,
    nalus: Vec<Bytes>,
    bytes: usize,
    /// An FU-A in progress: its reconstructed NAL unit so far.
    fu: Option<BytesMut>,
    broken: bool,
}

/// RTP → access units for one H.264 stream.
#[derive(Debug)]
pub struct H264Depacketizer {
    reorder: Reorder<RtpPacket>,
    current: Option<Partial>,
    /// Drop frames until an IDR (at the start and after any loss).
    waiting_for_keyframe: bool,
    out: VecDeque<Depacketized>,
    stats: DepacketizerStats,
    /// Parameter sets that came in a frame of their own, for the next frame.
    carry: Vec<Bytes>,
}

impl Default for H264Depacketizer {
    fn default() -> Self {
        Self::new()
    }
}

impl H264Depacketizer {
    /// A depacketizer that waits for the first keyframe.
    pub fn new() -> Self {
        Self {
            reorder: Reorder::new(),
            current: None,
            waiting_for_keyframe: true,
            out: VecDeque::new(),
            stats: DepacketizerStats::default(),
            carry: Vec::new(),
        }
    }

    /// One RTP packet of the stream, in arrival order.
    pub fn handle_packet(&mut self, p: RtpPacket, now_us: u64) {
        self.reorder.handle_packet(p.seq, p, now_us);
        self.pump(now_us);
    }

    /// Time passed: a hole that waited long enough is given up.
    pub fn handle_tick(&mut self, now_us: u64) {
        self.pump(now_us);
    }

    /// When [`handle_tick`](Self::handle_tick) has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.reorder.poll_timeout()
    }

    /// The next output.
    pub fn poll(&mut self) -> Option<Depacketized> {
        self.out.pop_front()
    }

    /// Counters so far.
    pub fn stats(&self) -> DepacketizerStats {
        DepacketizerStats { lost_packets: self.stats.lost_packets, ..self.stats }
    }

    fn pump(&mut self, now_us: u64) {
        while let Some(r) = self.reorder.poll(now_us) {
            match r {
                Released::Lost(n) => {
                    self.stats.lost_packets += n;
                    if let Some(c) = self.current.as_mut() {
                        c.broken = true;
                    }
                    self.lose();
                }
                Released::Packet(p) => self.handle_in_order(p),
            }
        }
    }

    /// Enter (or stay in) "wait for a keyframe", saying so once per loss.
    fn lose(&mut self) {
        self.waiting_for_keyframe = true;
        if self.out.back() != Some(&Depacketized::KeyframeNeeded) {
            self.out.push_back(Depacketized::KeyframeNeeded);
        }
    }

    fn handle_in_order(&mut self, p: RtpPacket) {
        if self.current.as_ref().is_some_and(|c| c.ts != p.ts) {
            // The marker of the previous frame went missing without a sequence gap: the sender
            // did not set it. Finish the frame as it is (broken if an FU-A is open).
            self.finish();
        }
        let carry = &mut self.carry;
        let c = self.current.get_or_insert_with(|| Partial {
            ts: p.ts,
            arrival_us: p.arrival_us,
            nalus: std::mem::take(carry),
            bytes: 0,
            fu: None,
            broken: false,
        });
        parse_payload(c, &p.payload);
        if c.bytes > MAX_ACCESS_UNIT_BYTES || c.nalus.len() > MAX_NALUS {
            c.broken = true;
        }
        if p.marker {
            self.finish();
        }
    }

    fn finish(&mut self) {
        let Some(c) = self.current.take() else { return };
        if c.broken || c.fu.is_some() || c.nalus.is_empty() {
            self.stats.dropped_frames += 1;
            self.lose();
            return;
        }
        let mut au = AccessUnit { rtp_ts: c.ts, arrival_us: c.arrival_us, nalus: Vec::with_capacity(c.nalus.len()), keyframe: false, sps: None, pps: None };
        for n in c.nalus {
            match nal_type(n[0]) {
                nal::SPS => au.sps = Some(n),
                nal::PPS => au.pps = Some(n),
                nal::AUD | nal::FILLER => {}
                t => {
                    au.keyframe |= t == nal::IDR;
                    au.nalus.push(n);
                }
            }
        }
        if au.nalus.is_empty() {
            // Parameter sets alone (some senders put them in a packet of their own with the
            // marker set): keep them for the next frame rather than drop them.
            self.carry = au.sps.into_iter().chain(au.pps).collect();
            return;
        }
        if self.waiting_for_keyframe && !au.keyframe {
            self.stats.dropped_frames += 1;
            return;
        }
        self.waiting_for_keyframe = false;
        self.stats.frames += 1;
        self.out.push_back(Depacketized::Frame(au));
    }
}

/// Adds the NAL units of one RTP payload to the frame being assembled.
fn parse_payload(c: &mut Partial, payload: &Bytes) {
    let Some(&b0) = payload.first() else {
        c.broken = true;
        return;
    };
    match nal_type(b0) {
        1..=23 => {
            if c.fu.take().is_some() {
                c.broken = true; // an FU-A never ended
            }
            c.bytes += payload.len();
            c.nalus.push(payload.clone());
        }
        nal::STAP_A => {
            if c.fu.take().is_some() {
                c.broken = true;
            }
            let mut at = 1;
            while at < payload.len() {
                if at + 2 > payload.len() {
                    c.broken = true;
                    return;
                }
                let n = u16::from_be_bytes([payload[at], payload[at + 1]]) as usize;
                at += 2;
                if n == 0 || at + n > payload.len() {
                    c.broken = true;
                    return;
                }
                c.bytes += n;
                c.nalus.push(payload.slice(at..at + n));
                at += n;
            }
        }
        nal::FU_A => {
            if payload.len() < 3 {
                c.broken = true;
                return;
            }
            let fu = payload[1];
            let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
            if start {
                if c.fu.is_some() {
                    c.broken = true;
                }
                let mut nalu = BytesMut::with_capacity(payload.len() * 4);
                nalu.extend_from_slice(&[(b0 & 0xe0) | (fu & 0x1f)]);
                c.fu = Some(nalu);
            }
            let Some(buf) = c.fu.as_mut() else {
                // A middle or end fragment without its start.
                c.broken = true;
                return;
            };
            buf.extend_from_slice(&payload[2..]);
            c.bytes += payload.len() - 2;
            if end {
                let nalu = c.fu.take().expect("present").freeze();
                c.nalus.push(nalu);
            }
        }
        _ => c.broken = true,
    }
}

/// What the programme needs from an SPS: the picture size and the codec identification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    /// Width in pixels after cropping.
    pub width: u32,
    /// Height in pixels after cropping.
    pub height: u32,
    /// `profile_idc`.
    pub profile: u8,
    /// The constraint flags byte (`profile_compatibility` in avcC).
    pub compatibility: u8,
    /// `level_idc`.
    pub level: u8,
}

impl SpsInfo {
    /// Parses an SPS NAL unit (with its header byte), with `h264-reader`.
    pub fn parse(sps: &[u8]) -> Result<SpsInfo, String> {
        use h264_reader::nal::sps::SeqParameterSet;
        use h264_reader::rbsp::{BitReader, decode_nal};
        if sps.len() < 4 || nal_type(sps[0]) != nal::SPS {
            return Err("not an SPS".into());
        }
        let rbsp = decode_nal(sps).map_err(|e| format!("SPS: {e}"))?;
        let parsed = SeqParameterSet::from_bits(BitReader::new(&*rbsp)).map_err(|e| format!("SPS: {e:?}"))?;
        let (width, height) = parsed.pixel_dimensions().map_err(|e| format!("SPS dimensions: {e:?}"))?;
        Ok(SpsInfo { width, height, profile: sps[1], compatibility: sps[2], level: sps[3] })
    }

    /// The RFC 6381 codec string (`avc1.42e01f`).
    pub fn codec_string(&self) -> String {
        format!("avc1.{:02x}{:02x}{:02x}", self.profile, self.compatibility, self.level)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 640x360 constrained-baseline SPS and a PPS (from an x264 stream).
    pub const SPS_640X360: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48];
    pub const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    /// A 320x240 constrained-baseline SPS (x264).
    pub const SPS_320X240: &[u8] = &[0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80];

    pub fn rtp(seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> RtpPacket {
        RtpPacket { seq, ts, marker, payload: Bytes::from(payload), arrival_us: 1_000 }
    }

    /// Packetizes one frame of NAL units as a WebRTC sender would: parameter sets in a STAP-A,
    /// NAL units over `mtu` bytes as FU-A.
    pub fn packetize(nalus: &[Vec<u8>], seq: &mut u16, ts: u32, mtu: usize) -> Vec<RtpPacket> {
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let (params, rest): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = nalus.iter().partition(|n| matches!(nal_type(n[0]), nal::SPS | nal::PPS));
        if !params.is_empty() {
            let mut stap = vec![0x78];
            for n in params {
                stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                stap.extend_from_slice(n);
            }
            payloads.push(stap);
        }
        for n in rest {
            if n.len() <= mtu {
                payloads.push(n.clone());
                continue;
            }
            let body = &n[1..];
            let chunks: Vec<&[u8]> = body.chunks(mtu - 2).collect();
            for (i, ch) in chunks.iter().enumerate() {
                let mut fu = vec![(n[0] & 0xe0) | nal::FU_A, n[0] & 0x1f];
                if i == 0 {
                    fu[1] |= 0x80;
                }
                if i + 1 == chunks.len() {
                    fu[1] |= 0x40;
                }
                fu.extend_from_slice(ch);
                payloads.push(fu);
            }
        }
        let n = payloads.len();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let s = *seq;
                *seq = seq.wrapping_add(1);
                rtp(s, ts, i + 1 == n, p)
            })
            .collect()
    }

    pub fn idr(len: usize, tag: u8) -> Vec<u8> {
        let mut v = vec![0x65, tag];
        v.resize(len, tag);
        v
    }

    pub fn slice(len: usize, tag: u8) -> Vec<u8> {
        let mut v = vec![0x41, tag];
        v.resize(len, tag);
        v
    }

    fn frames(d: &mut H264Depacketizer) -> Vec<Depacketized> {
        std::iter::from_fn(|| d.poll()).collect()
    }

    #[test]
    fn sps_gives_the_picture_size_and_the_codec_string() {
        let info = SpsInfo::parse(SPS_640X360).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.codec_string(), "avc1.42c01e");
        let small = SpsInfo::parse(SPS_320X240).unwrap();
        assert_eq!((small.width, small.height), (320, 240));
        assert!(SpsInfo::parse(PPS).is_err());
        assert!(SpsInfo::parse(&[0x67, 0x42]).is_err());
    }

    #[test]
    fn stap_a_and_fu_a_frames_are_reassembled_with_parameter_sets_split_off() {
        let mut d = H264Depacketizer::new();
        let mut seq = 100;
        let key = vec![SPS_640X360.to_vec(), PPS.to_vec(), idr(3000, 7)];
        for p in packetize(&key, &mut seq, 9000, 1200) {
            d.handle_packet(p, 0);
        }
        for p in packetize(&[slice(500, 8)], &mut seq, 12000, 1200) {
            d.handle_packet(p, 0);
        }
        let out = frames(&mut d);
        assert_eq!(out.len(), 2, "{out:?}");
        let Depacketized::Frame(k) = &out[0] else { panic!("{out:?}") };
        assert!(k.keyframe);
        assert_eq!(k.sps.as_deref(), Some(SPS_640X360));
        assert_eq!(k.pps.as_deref(), Some(PPS));
        assert_eq!(k.nalus, vec![Bytes::from(idr(3000, 7))]);
        let Depacketized::Frame(p) = &out[1] else { panic!() };
        assert!(!p.keyframe);
        assert_eq!(p.rtp_ts, 12000);
        let mut avcc = Vec::new();
        p.write_avcc(&mut avcc);
        assert_eq!(&avcc[..4], &500u32.to_be_bytes());
        assert_eq!(avcc.len(), p.avcc_len());
    }

    #[test]
    fn nothing_before_the_first_keyframe_is_handed_on() {
        let mut d = H264Depacketizer::new();
        let mut seq = 1;
        for p in packetize(&[slice(100, 1)], &mut seq, 0, 1200) {
            d.handle_packet(p, 0);
        }
        assert_eq!(frames(&mut d), vec![]);
        for p in packetize(&[idr(100, 2)], &mut seq, 3000, 1200) {
            d.handle_packet(p, 0);
        }
        assert!(matches!(frames(&mut d).as_slice(), [Depacketized::Frame(f)] if f.keyframe));
    }

    #[test]
    fn a_lost_fragment_drops_frames_until_the_next_keyframe() {
        let mut d = H264Depacketizer::new();
        let mut seq = 1;
        let mut packets = packetize(&[idr(100, 1)], &mut seq, 0, 1200);
        let mut broken = packetize(&[slice(5000, 2)], &mut seq, 3000, 1200);
        broken.remove(2); // a middle FU-A fragment
        packets.extend(broken);
        packets.extend(packetize(&[slice(100, 3)], &mut seq, 6000, 1200));
        packets.extend(packetize(&[idr(100, 4)], &mut seq, 9000, 1200));
        for p in packets {
            d.handle_packet(p, 0);
        }
        d.handle_tick(super::super::reorder::MAX_WAIT_US);
        let out = frames(&mut d);
        let kinds: Vec<String> = out
            .iter()
            .map(|o| match o {
                Depacketized::Frame(f) => format!("{}{}", if f.keyframe { "K" } else { "P" }, f.rtp_ts),
                Depacketized::KeyframeNeeded => "need".into(),
            })
            .collect();
        assert_eq!(kinds, ["K0", "need", "K9000"]);
        assert_eq!(d.stats().lost_packets, 1);
    }

    #[test]
    fn a_fragment_without_its_start_breaks_the_frame() {
        let mut d = H264Depacketizer::new();
        let mut seq = 1;
        for p in packetize(&[idr(100, 1)], &mut seq, 0, 1200) {
            d.handle_packet(p, 0);
        }
        // FU-A end fragment with no start, then a valid frame of another timestamp.
        d.handle_packet(rtp(seq, 3000, true, vec![0x7c, 0x41, 1, 2, 3]), 0);
        let out = frames(&mut d);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], Depacketized::KeyframeNeeded);
    }

    #[test]
    fn malformed_stap_a_lengths_are_refused_not_read_past_the_end() {
        let mut d = H264Depacketizer::new();
        d.handle_packet(rtp(1, 0, true, vec![0x78, 0x00, 0x40, 0x65, 0x01]), 0);
        assert_eq!(frames(&mut d), vec![Depacketized::KeyframeNeeded]);
    }

    proptest! {
        /// Frames survive any reordering within the reorder window: each comes out exactly once,
        /// complete and in order.
        #[test]
        fn reordered_packets_give_the_same_frames(
            sizes in proptest::collection::vec(1usize..6000, 1..12),
            swaps in proptest::collection::vec((0usize..200, 1usize..4), 0..30),
        ) {
            let mut seq = 40_000u16;
            let mut packets = Vec::new();
            let mut expected = Vec::new();
            for (i, s) in sizes.iter().enumerate() {
                let n = if i == 0 { idr(*s + 2, i as u8) } else { slice(*s + 2, i as u8) };
                expected.push(n.clone());
                packets.extend(packetize(&[n], &mut seq, i as u32 * 3000, 1100));
            }
            for (i, d) in swaps {
                // The first packet stays first: it is what the stream starts from.
                if i >= 1 && i + d < packets.len() { packets.swap(i, i + d); }
            }
            let mut d = H264Depacketizer::new();
            for p in packets { d.handle_packet(p, 0); }
            d.handle_tick(1);
            let got: Vec<Vec<u8>> = frames(&mut d).into_iter().map(|f| match f {
                Depacketized::Frame(f) => f.nalus[0].to_vec(),
                other => panic!("{other:?}"),
            }).collect();
            prop_assert_eq!(got, expected);
        }

        /// Arbitrary payloads never panic and never produce a frame before a keyframe.
        #[test]
        fn arbitrary_payloads_never_panic(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40)) {
            let mut d = H264Depacketizer::new();
            for (i, p) in payloads.into_iter().enumerate() {
                d.handle_packet(rtp(i as u16, (i / 3) as u32, i % 3 == 2, p), 0);
            }
            d.handle_tick(u64::MAX / 2);
            let mut seen_key = false;
            while let Some(o) = d.poll() {
                if let Depacketized::Frame(f) = o {
                    seen_key |= f.keyframe;
                    prop_assert!(seen_key);
                }
            }
        }
    }
}
