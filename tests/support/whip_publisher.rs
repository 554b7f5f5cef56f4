//! A real stage publisher for the programme's tests: H.264 and Opus encoded by Debian's ffmpeg
//! (libx264, libopus) into files, sent over WebRTC (webrtc 0.21) by WHIP to the hub, in real
//! time, looping. The H.264 stream has a keyframe every half second (the file cannot answer
//! keyframe requests), so switching and segmenting find one soon enough.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp::packetizer::Payloader;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::watch;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};

/// Encoded media: access units (Annex B, one frame each) and Opus packets (20 ms each).
pub struct Media {
    pub frames: Vec<Bytes>,
    pub opus: Vec<Bytes>,
}

/// Encodes `seconds` of `source` (an ffmpeg lavfi video source such as `testsrc2=size=640x360`)
/// at 30 fps and a sine tone of `tone_hz`, with ffmpeg.
pub fn encode(dir: &Path, name: &str, source: &str, tone_hz: u32, seconds: u32) -> Media {
    let h264 = dir.join(format!("{name}.h264"));
    let ogg = dir.join(format!("{name}.opus"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ffmpeg").args(args).output().expect("ffmpeg (apt-get install ffmpeg)");
        assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let t = seconds.to_string();
    run(&[
        "-v", "error", "-y", "-f", "lavfi", "-i", &format!("{source}:rate=30"), "-t", &t, "-c:v", "libx264", "-profile:v", "baseline", "-tune",
        "zerolatency", "-bf", "0", "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-f", "h264",
        h264.to_str().unwrap(),
    ]);
    run(&[
        "-v", "error", "-y", "-f", "lavfi", "-i", &format!("sine=frequency={tone_hz}:sample_rate=48000"), "-t", &t, "-c:a", "libopus",
        "-b:a", "32k", "-frame_duration", "20", "-f", "ogg", ogg.to_str().unwrap(),
    ]);
    Media { frames: access_units(&std::fs::read(&h264).unwrap()), opus: ogg_packets(&std::fs::read(&ogg).unwrap()) }
}

/// Splits an Annex B stream into access units: a new one begins with a parameter set, SEI or
/// AUD after a slice, or with a slice whose `first_mb_in_slice` is 0 after a slice (frames may
/// have several slices).
fn access_units(data: &[u8]) -> Vec<Bytes> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut aus = Vec::new();
    let mut au: Vec<u8> = Vec::new();
    let mut has_slice = false;
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1; // the extra zero of a 4-byte start code
        }
        let nal = &data[s..end];
        let is_slice = matches!(nal[0] & 0x1f, 1 | 5);
        let starts_frame = if is_slice { nal.get(1).is_some_and(|b| b & 0x80 != 0) } else { matches!(nal[0] & 0x1f, 6..=9) };
        if has_slice && starts_frame {
            aus.push(Bytes::from(std::mem::take(&mut au)));
            has_slice = false;
        }
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(nal);
        has_slice |= is_slice;
    }
    if has_slice {
        aus.push(Bytes::from(au));
    }
    aus
}

/// The audio packets of an Ogg Opus file (its two header packets skipped).
fn ogg_packets(data: &[u8]) -> Vec<Bytes> {
    let mut packets = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut at = 0;
    while at + 27 <= data.len() && &data[at..at + 4] == b"OggS" {
        let n = data[at + 26] as usize;
        let table = &data[at + 27..at + 27 + n];
        let mut body = at + 27 + n;
        for &len in table {
            partial.extend_from_slice(&data[body..body + len as usize]);
            body += len as usize;
            if len < 255 {
                packets.push(Bytes::from(std::mem::take(&mut partial)));
            }
        }
        at = body;
    }
    packets.retain(|p| !p.starts_with(b"OpusHead") && !p.starts_with(b"OpusTags"));
    packets
}

struct Handler {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        self.gathered.send_replace(s == RTCIceGatheringState::Complete);
    }
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        self.state.send_replace(s);
    }
}

fn track(kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("pub-{ssrc}"),
        format!("pub-track-{ssrc}"),
        format!("pub-track-{ssrc}"),
        kind,
        vec![RTCRtpEncodingParameters { rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() }, codec, ..Default::default() }],
    )))
}

/// A WHIP publisher sending `media` in real time until stopped.
pub struct WhipPublisher {
    pub pc: Arc<dyn PeerConnection>,
    pub location: String,
    pub frames_sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl WhipPublisher {
    /// Publishes onto `base/whip/{activity}` with `token`.
    pub async fn start(base: &str, activity: &str, token: &str, media: Arc<Media>, ssrc_base: u32) -> WhipPublisher {
        let mut me = MediaEngine::default();
        me.register_default_codecs().unwrap();
        let reg = register_default_interceptors(Registry::new(), &mut me).unwrap();
        let (g, mut gathered) = watch::channel(false);
        let (s, mut state) = watch::channel(RTCPeerConnectionState::New);
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(me)
                .with_setting_engine(SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build())
                .with_interceptor_registry(reg)
                .with_handler(Arc::new(Handler { gathered: g, state: s }) as Arc<dyn PeerConnectionEventHandler>)
                .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
                .build()
                .await
                .unwrap(),
        );
        let h264 = RTCRtpCodec {
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
            rtcp_feedback: vec![],
        };
        let opus = RTCRtpCodec { mime_type: "audio/opus".into(), clock_rate: 48_000, channels: 2, sdp_fmtp_line: "minptime=10;useinbandfec=1".into(), rtcp_feedback: vec![] };
        let video = track(RtpCodecKind::Video, h264, ssrc_base + 1);
        let audio = track(RtpCodecKind::Audio, opus, ssrc_base + 2);
        let vs = pc.add_track(Arc::clone(&video) as Arc<dyn TrackLocal>).await.unwrap();
        let as_ = pc.add_track(Arc::clone(&audio) as Arc<dyn TrackLocal>).await.unwrap();
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), gathered.wait_for(|g| *g)).await.unwrap().unwrap();
        let offer = pc.local_description().await.unwrap().sdp;
        let resp = reqwest::Client::new()
            .post(format!("{base}/whip/{activity}"))
            .header("content-type", "application/sdp")
            .header("authorization", format!("Bearer {token}"))
            .body(offer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "WHIP: {:?}", resp.text().await);
        let location = resp.headers().get("location").unwrap().to_str().unwrap().to_owned();
        let answer = resp.text().await.unwrap();
        pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| *s == RTCPeerConnectionState::Connected)).await.expect("connected").unwrap();
        let pt = |p: rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters, mime: &str| {
            p.rtp_parameters.codecs.iter().find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime)).unwrap().payload_type
        };
        let (vpt, apt) = (pt(vs.get_parameters().await.unwrap(), "video/H264"), pt(as_.get_parameters().await.unwrap(), "audio/opus"));
        let stop = Arc::new(AtomicBool::new(false));
        let frames_sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (Arc::clone(&stop), Arc::clone(&frames_sent));
        tokio::spawn(async move {
            let mut payloader = rtc::rtp::codec::h264::H264Payloader::default();
            let (mut vseq, mut aseq) = (1u16, 1u16);
            let start = Instant::now();
            let (mut frame, mut packet) = (0u64, 0u64);
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !stop2.load(Ordering::SeqCst) {
                tick.tick().await;
                let elapsed = start.elapsed();
                while (frame as u128) * 1_000_000 / 30 <= elapsed.as_micros() {
                    let au = &media.frames[frame as usize % media.frames.len()];
                    let payloads = payloader.payload(1200, au).unwrap();
                    let n = payloads.len();
                    for (i, p) in payloads.into_iter().enumerate() {
                        let pkt = rtp::Packet {
                            header: rtp::header::Header { version: 2, payload_type: vpt, sequence_number: vseq, timestamp: (frame * 3000) as u32, ssrc: ssrc_base + 1, marker: i + 1 == n, ..Default::default() },
                            payload: p,
                        };
                        vseq = vseq.wrapping_add(1);
                        if video.write_rtp(pkt).await.is_err() {
                            return;
                        }
                    }
                    frame += 1;
                    sent2.store(frame, Ordering::Relaxed);
                }
                while packet as u128 * 20_000 <= elapsed.as_micros() {
                    let pkt = rtp::Packet {
                        header: rtp::header::Header { version: 2, payload_type: apt, sequence_number: aseq, timestamp: (packet * 960) as u32, ssrc: ssrc_base + 2, ..Default::default() },
                        payload: media.opus[packet as usize % media.opus.len()].clone(),
                    };
                    aseq = aseq.wrapping_add(1);
                    if audio.write_rtp(pkt).await.is_err() {
                        return;
                    }
                    packet += 1;
                }
            }
        });
        WhipPublisher { pc, location, frames_sent, stop }
    }

    pub async fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.pc.close().await;
    }
}
