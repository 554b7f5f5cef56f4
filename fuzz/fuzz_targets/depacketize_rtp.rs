//! Any sequence of RTP packets (reordered, lost, malformed): the H.264 and Opus depacketizers
//! and the SPS parser never panic, and no H.264 frame comes out before a keyframe.
//! Input: repeated records `[len: u8][seq: u16][ts: u16][marker: u8][payload: len bytes]`.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shangliang::programme::RtpPacket;
use shangliang::programme::h264::{Depacketized, H264Depacketizer, SpsInfo};
use shangliang::programme::opus::OpusDepacketizer;

fuzz_target!(|data: &[u8]| {
    let mut h264 = H264Depacketizer::new();
    let mut opus = OpusDepacketizer::new();
    let mut at = 0;
    let mut now = 0u64;
    while at + 6 <= data.len() {
        let len = data[at] as usize;
        let seq = u16::from_be_bytes([data[at + 1], data[at + 2]]);
        let ts = u16::from_be_bytes([data[at + 3], data[at + 4]]) as u32 * 3000;
        let marker = data[at + 5] & 1 == 1;
        at += 6;
        let end = (at + len).min(data.len());
        let payload = Bytes::copy_from_slice(&data[at..end]);
        at = end;
        now += 10_000;
        let _ = SpsInfo::parse(&payload);
        let p = RtpPacket { seq, ts, marker, payload, arrival_us: now };
        h264.handle_packet(p.clone(), now);
        opus.handle_packet(p, now);
    }
    h264.handle_tick(now + 1_000_000);
    opus.handle_tick(now + 1_000_000);
    let mut key = false;
    while let Some(out) = h264.poll() {
        if let Depacketized::Frame(f) = out {
            key |= f.keyframe;
            assert!(key, "a frame before any keyframe");
        }
    }
    while opus.poll().is_some() {}
});
