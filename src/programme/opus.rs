//! Opus over RTP (RFC 7587): one Opus packet per RTP packet, 48 kHz clock whatever the
//! encoder's internal rate. The payload goes into the fMP4 sample unchanged; its duration comes
//! from the TOC byte (RFC 6716 §3.1).
//!
//! ```text
//! d.handle_packet(rtp, now_us); d.handle_tick(now_us);
//! while let Some(frame) = d.poll() { ... }      // in order; a loss is a timestamp gap
//! ```
//!
//! Losses are not reported separately: the programme sees the gap in RTP timestamps and fills
//! it with silence, so the audio track stays continuous (a hole in an MSE audio buffer stalls
//! playback).

use std::collections::VecDeque;

use bytes::Bytes;

use super::reorder::{Released, Reorder};
use super::RtpPacket;

/// The RTP clock of Opus, and the timescale of the programme's audio track.
pub const CLOCK_RATE: u32 = 48_000;

/// A 20 ms Opus packet that decodes to silence (CELT, full band, mono, one frame; the
/// all-ones range-coder tail is the "no energy" frame encoders emit for digital silence).
pub const SILENCE_20MS: [u8; 3] = [0xf8, 0xff, 0xfe];
/// The duration of [`SILENCE_20MS`] in 48 kHz samples.
pub const SILENCE_SAMPLES: u32 = 960;

/// The largest Opus packet accepted (RFC 6716 allows 1275 bytes per frame, 120 ms at most).
pub const MAX_PACKET_BYTES: usize = 1275 * 6 + 8;

/// One Opus packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusFrame {
    /// Its RTP timestamp (48 kHz).
    pub rtp_ts: u32,
    /// When it arrived, microseconds since the Unix epoch.
    pub arrival_us: u64,
    /// The Opus packet.
    pub data: Bytes,
    /// Its duration in 48 kHz samples.
    pub samples: u32,
}

/// The duration of an Opus packet in 48 kHz samples, from its TOC byte; `None` if malformed.
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size in 1/400 s units (2.5 ms = 120 samples at 48 kHz).
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][(config % 4) as usize],
        12..=15 => [480, 960][(config % 2) as usize],
        _ => [120, 240, 480, 960][(config % 4) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3f) as u32,
    };
    let total = frame * frames;
    // RFC 6716 §3.2.5: at most 120 ms per packet; zero frames is malformed.
    (frames > 0 && total <= 5760).then_some(total)
}

/// RTP → Opus packets for one stream.
#[derive(Debug, Default)]
pub struct OpusDepacketizer {
    reorder: Reorder<RtpPacket>,
    out: VecDeque<OpusFrame>,
    /// Packets refused as malformed.
    pub malformed: u64,
}

impl OpusDepacketizer {
    /// An empty depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// One RTP packet, in arrival order.
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

    /// The next packet.
    pub fn poll(&mut self) -> Option<OpusFrame> {
        self.out.pop_front()
    }

    fn pump(&mut self, now_us: u64) {
        while let Some(r) = self.reorder.poll(now_us) {
            let Released::Packet(p) = r else { continue };
            if p.payload.len() > MAX_PACKET_BYTES {
                self.malformed += 1;
                continue;
            }
            // RFC 7587 §4.2: DTX may send empty-ish packets; a payload without a valid TOC is dropped.
            let Some(samples) = packet_samples(&p.payload) else {
                self.malformed += 1;
                continue;
            };
            self.out.push_back(OpusFrame { rtp_ts: p.ts, arrival_us: p.arrival_us, data: p.payload, samples });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn toc_durations_follow_rfc_6716() {
        assert_eq!(packet_samples(&SILENCE_20MS), Some(SILENCE_SAMPLES));
        assert_eq!(packet_samples(&[0x78]), Some(960)); // hybrid FB 20 ms (config 15), one frame
        assert_eq!(packet_samples(&[0x08 | 1]), Some(1920)); // SILK NB 20 ms, two frames
        assert_eq!(packet_samples(&[0x18, 0]), Some(2880)); // SILK NB 60 ms
        assert_eq!(packet_samples(&[0x18 | 3, 2]), Some(5760)); // two 60 ms frames = 120 ms
        assert_eq!(packet_samples(&[0x18 | 3, 3]), None); // 180 ms: too long
        assert_eq!(packet_samples(&[0x03]), None); // code 3 without its count byte
        assert_eq!(packet_samples(&[]), None);
    }

    #[test]
    fn packets_come_out_in_order_with_their_durations() {
        let mut d = OpusDepacketizer::new();
        for (seq, ts) in [(2u16, 960u32), (1, 0), (3, 1920)] {
            d.handle_packet(RtpPacket { seq, ts, marker: false, payload: Bytes::from_static(&SILENCE_20MS), arrival_us: 5 }, 0);
        }
        let got: Vec<u32> = std::iter::from_fn(|| d.poll()).map(|f| f.rtp_ts).collect();
        // Packet 2 arrived first and defines the start; 1 is late.
        assert_eq!(got, vec![960, 1920]);
    }

    proptest! {
        #[test]
        fn any_payload_has_a_bounded_duration_or_none(p in proptest::collection::vec(any::<u8>(), 0..8)) {
            if let Some(n) = packet_samples(&p) { prop_assert!(n > 0 && n <= 5760); }
        }
    }
}
