//! Test bots: webrtc 0.21 clients in the test process, on loopback.
#![allow(dead_code, missing_docs)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use shangliang_sfu::{SessionId, Sfu, SfuConfig};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};

pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// A node for one test on its own ephemeral UDP port (every peer connection shares it).
pub fn sfu(max_participants: usize, max_viewers: usize) -> Sfu {
    Sfu::new(SfuConfig {
        max_participants_per_room: max_participants,
        max_viewers_per_node: max_viewers,
        ..SfuConfig::default()
    })
}

struct KeyframeToApp(VecDeque<TaggedPacket>, VecDeque<TaggedPacket>);

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeToApp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;
    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let kept: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>())
                .cloned()
                .collect();
            if kept.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(kept);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.0.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.0.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.1.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.1.pop_front()
    }
}

impl Interceptor for KeyframeToApp {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

struct BotHandler {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for BotHandler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        self.gathered.send_replace(s == RTCIceGatheringState::Complete);
    }
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        self.state.send_replace(s);
    }
    async fn on_track(&self, t: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(t);
    }
}

pub struct Bot {
    pub pc: Arc<dyn PeerConnection>,
    pub gathered: watch::Receiver<bool>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    pub tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

pub async fn bot() -> Bot {
    bot_on(false).await
}

/// A bot whose only candidates are ICE-TCP (active, RFC 6544): as a client on a network that
/// blocks UDP.
pub async fn tcp_bot() -> Bot {
    bot_on(true).await
}

async fn bot_on(tcp_only: bool) -> Bot {
    let mut me = MediaEngine::default();
    me.register_default_codecs().unwrap();
    me.register_header_extension(
        rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
        RtpCodecKind::Audio,
        None,
    )
    .unwrap();
    let reg = register_default_interceptors(Registry::new(), &mut me).unwrap();
    let reg = reg.with(Slot::from(14_000), KeyframeToApp(VecDeque::new(), VecDeque::new()));
    let (g, gathered) = watch::channel(false);
    let (s, state) = watch::channel(RTCPeerConnectionState::New);
    let (t, tracks) = mpsc::unbounded_channel();
    let mut se = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled);
    if tcp_only {
        se = se.with_network_types(vec![rtc::ice::network_type::NetworkType::Tcp4]);
    }
    let b = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_setting_engine(se.build())
        .with_interceptor_registry(reg)
        .with_handler(Arc::new(BotHandler { gathered: g, state: s, tracks: t }) as Arc<dyn PeerConnectionEventHandler>);
    let b = if tcp_only {
        b.with_tcp_addrs(vec!["127.0.0.1:0".to_owned()]).with_udp_addrs(Vec::<String>::new())
    } else {
        b.with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
    };
    let pc = b.build().await.unwrap();
    Bot { pc: Arc::new(pc), gathered, state, tracks }
}

impl Bot {
    /// Create an offer with gathering complete.
    pub async fn offer(&mut self) -> String {
        let o = self.pc.create_offer(None).await.unwrap();
        self.pc.set_local_description(o).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.gathered.wait_for(|g| *g)).await.unwrap().unwrap();
        self.pc.local_description().await.unwrap().sdp
    }

    pub async fn accept_answer(&self, sdp: String) {
        self.pc.set_remote_description(RTCSessionDescription::answer(sdp).unwrap()).await.unwrap();
    }

    pub async fn wait_connected(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), self.state.wait_for(|s| *s == RTCPeerConnectionState::Connected))
            .await
            .expect("connected in time")
            .unwrap();
    }

    pub async fn recv_only(&self, kind: RtpCodecKind) {
        self.pc
            .add_transceiver_from_kind(kind, Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }))
            .await
            .unwrap();
    }
}

pub fn vp8() -> RTCRtpCodec {
    RTCRtpCodec { mime_type: "video/VP8".into(), clock_rate: 90_000, channels: 0, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] }
}

pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

pub fn local_track(kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("bot-{ssrc}"),
        format!("bot-track-{ssrc}"),
        format!("bot-track-{ssrc}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    )))
}

/// How a publishing bot reaches the SFU.
pub enum Signal<'a> {
    Whip(&'a Sfu, &'a str, &'a str),
    Member(&'a shangliang_sfu::ParticipantHandle),
    /// Any offer→answer function (e.g. an SFU in another process).
    Remote(&'a Answerer),
}

/// Offer in, (session, answer) out.
pub type Answerer = dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = (SessionId, String)> + Send>> + Send + Sync;

/// A publishing bot: synthetic VP8 (keyframe at start and on PLI) and Opus-like audio.
pub struct Publisher {
    pub bot: Bot,
    pub session: SessionId,
    pub video_ssrc: u32,
    pub audio_ssrc: u32,
    pub plis: Arc<AtomicU64>,
    pub sent_video: Arc<AtomicU64>,
    pub sent_audio: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    /// While set, the publisher keeps its connection but sends nothing (the bench's floor phase).
    pub pause: Arc<AtomicBool>,
}

pub const VIDEO_SSRC: u32 = 0x1111_0001;
pub const AUDIO_SSRC: u32 = 0x2222_0002;

/// Payload of synthetic VP8 packet `idx` of frame `frame`: a valid payload descriptor
/// (S bit on the first packet) and frame tag, then the frame and packet numbers.
pub fn vp8_payload(frame: u32, idx: u16, key: bool, size: usize) -> Bytes {
    let mut v = Vec::with_capacity(size.max(12));
    v.push(if idx == 0 { 0x10 } else { 0x00 });
    v.push(if key { 0x00 } else { 0x01 });
    v.extend_from_slice(&frame.to_be_bytes());
    v.extend_from_slice(&idx.to_be_bytes());
    v.resize(size.max(12), 0xab);
    Bytes::from(v)
}

/// Payload of synthetic H.264 packet `idx` of frame `frame`: an IDR slice NAL unit (type 5) to
/// start a keyframe, a non-IDR slice (type 1) otherwise, then the frame and packet numbers.
pub fn h264_payload(frame: u32, idx: u16, key: bool, size: usize) -> Bytes {
    let mut v = vec![if key && idx == 0 { 0x65 } else { 0x41 }, 0x88];
    v.extend_from_slice(&frame.to_be_bytes());
    v.extend_from_slice(&idx.to_be_bytes());
    v.resize(size.max(12), 0xcd);
    Bytes::from(v)
}

/// H.264 constrained baseline, packetization mode 1, as browsers offer it.
pub fn h264() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/H264".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
        rtcp_feedback: vec![],
    }
}

pub fn is_key_start(payload: &[u8]) -> bool {
    payload.len() > 2 && payload[0] & 0x10 != 0 && payload[1] & 0x01 == 0
}

impl Publisher {
    /// Connect to `sfu` by WHIP and start sending `pkts_per_frame` video packets per frame at
    /// `fps`, and 50 audio packets per second.
    pub async fn start(sfu: &Sfu, room: &str, participant: &str, fps: u32, pkts_per_frame: u16, pkt_size: usize) -> Publisher {
        Self::start_via(Signal::Whip(sfu, room, participant), fps, pkts_per_frame, pkt_size).await
    }

    /// Like [`start`](Self::start), signaling through WHIP or a member's publisher connection.
    pub async fn start_via(sig: Signal<'_>, fps: u32, pkts_per_frame: u16, pkt_size: usize) -> Publisher {
        Self::start_codec_via(sig, vp8(), fps, pkts_per_frame, pkt_size).await
    }

    /// Like [`start_via`](Self::start_via) with another video codec: VP8, or H.264 (an IDR
    /// slice NAL unit first in a keyframe, non-IDR slices otherwise; enough for an SFU).
    pub async fn start_codec_via(sig: Signal<'_>, codec: RTCRtpCodec, fps: u32, pkts_per_frame: u16, pkt_size: usize) -> Publisher {
        let h264 = codec.mime_type.eq_ignore_ascii_case("video/H264");
        let mime = codec.mime_type.clone();
        let mut bot = bot().await;
        let video = local_track(RtpCodecKind::Video, codec, VIDEO_SSRC);
        let audio = local_track(RtpCodecKind::Audio, opus(), AUDIO_SSRC);
        let vs = bot.pc.add_track(Arc::clone(&video) as Arc<dyn TrackLocal>).await.unwrap();
        let as_ = bot.pc.add_track(Arc::clone(&audio) as Arc<dyn TrackLocal>).await.unwrap();
        let offer = bot.offer().await;
        let (session, answer) = match sig {
            Signal::Whip(sfu, room, participant) => sfu.whip(room, participant, &offer).await.expect("whip"),
            Signal::Member(h) => (h.id(), h.publish_offer(&offer).await.expect("publish_offer")),
            Signal::Remote(f) => f(offer).await,
        };
        bot.accept_answer(answer).await;
        bot.wait_connected().await;
        let pt_of = |p: rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters, mime: &str| {
            p.rtp_parameters.codecs.iter().find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime)).unwrap().payload_type
        };
        let vpt = pt_of(vs.get_parameters().await.unwrap(), &mime);
        let aparams = as_.get_parameters().await.unwrap();
        let level_id = aparams.rtp_parameters.header_extensions.iter().find(|e| e.uri == AUDIO_LEVEL_URI).map(|e| e.id as u8);
        let apt = pt_of(aparams, "audio/opus");
        let plis = Arc::new(AtomicU64::new(0));
        let sent_video = Arc::new(AtomicU64::new(0));
        let sent_audio = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        let want_key = Arc::new(AtomicBool::new(true));
        {
            let (video, plis, want_key) = (Arc::clone(&video), Arc::clone(&plis), Arc::clone(&want_key));
            tokio::spawn(async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(_)) = video.poll().await {
                    plis.fetch_add(1, Ordering::SeqCst);
                    want_key.store(true, Ordering::SeqCst);
                }
            });
        }
        {
            let (stop, pause, sent_video, sent_audio) = (Arc::clone(&stop), Arc::clone(&pause), Arc::clone(&sent_video), Arc::clone(&sent_audio));
            tokio::spawn(async move {
                let mut seq: u16 = 1000;
                let mut aseq: u16 = 7000;
                let mut frame: u32 = 0;
                let frame_dur = Duration::from_micros(1_000_000 / fps as u64);
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let start = Instant::now();
                let mut next_frame = start;
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let now = Instant::now();
                    if pause.load(Ordering::Relaxed) {
                        next_frame = now;
                        continue;
                    }
                    // audio: one packet per 20 ms
                    let ts = (now - start).as_millis() as u32 * 48;
                    let mut header = rtp::header::Header { version: 2, payload_type: apt, sequence_number: aseq, timestamp: ts, ssrc: AUDIO_SSRC, marker: false, ..Default::default() };
                    if let Some(id) = level_id {
                        // RFC 6464: voice activity, -20 dBov (speaking).
                        header.set_extension(id, Bytes::from_static(&[0x80 | 20])).unwrap();
                    }
                    let pkt = rtp::Packet { header, payload: Bytes::from_static(&[0xfc, 0xff, 0xfe]) };
                    aseq = aseq.wrapping_add(1);
                    if audio.write_rtp(pkt).await.is_err() {
                        break;
                    }
                    sent_audio.fetch_add(1, Ordering::Relaxed);
                    while next_frame <= now {
                        let key = want_key.swap(false, Ordering::SeqCst);
                        let vts = (next_frame - start).as_micros() as u64 * 90 / 1000;
                        for idx in 0..pkts_per_frame {
                            let pkt = rtp::Packet {
                                header: rtp::header::Header {
                                    version: 2,
                                    payload_type: vpt,
                                    sequence_number: seq,
                                    timestamp: vts as u32,
                                    ssrc: VIDEO_SSRC,
                                    marker: idx + 1 == pkts_per_frame,
                                    ..Default::default()
                                },
                                payload: if h264 { h264_payload(frame, idx, key, pkt_size) } else { vp8_payload(frame, idx, key, pkt_size) },
                            };
                            seq = seq.wrapping_add(1);
                            if video.write_rtp(pkt).await.is_err() {
                                return;
                            }
                            sent_video.fetch_add(1, Ordering::Relaxed);
                        }
                        frame += 1;
                        next_frame += frame_dur;
                    }
                }
            });
        }
        Publisher { bot, session, video_ssrc: VIDEO_SSRC, audio_ssrc: AUDIO_SSRC, plis, sent_video, sent_audio, stop, pause }
    }

    pub async fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.bot.pc.close().await;
    }
}

/// One received packet, as a viewer saw it.
#[derive(Debug, Clone)]
pub struct Rx {
    pub video: bool,
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub pt: u8,
    pub payload: Bytes,
    pub at: Instant,
}

/// A receive-only viewer bot connected by WHEP; received packets arrive on `rx`.
pub struct Viewer {
    pub bot: Bot,
    pub session: SessionId,
    pub rx: mpsc::UnboundedReceiver<Rx>,
}

impl Viewer {
    pub async fn start(sfu: &Sfu, room: &str) -> Viewer {
        Self::start_with(sfu, room, bot().await).await
    }

    /// A viewer whose only candidates are ICE-TCP.
    pub async fn start_tcp(sfu: &Sfu, room: &str) -> Viewer {
        Self::start_with(sfu, room, tcp_bot().await).await
    }

    async fn start_with(sfu: &Sfu, room: &str, mut bot: Bot) -> Viewer {
        bot.recv_only(RtpCodecKind::Audio).await;
        bot.recv_only(RtpCodecKind::Video).await;
        let offer = bot.offer().await;
        let (session, answer) = sfu.whep(room, &offer).await.expect("whep");
        bot.accept_answer(answer.clone()).await;
        // webrtc 0.21 dials a passive TCP candidate only when it is trickled
        // (`add_ice_candidate`), not when it comes in the SDP: hand it the node's again.
        for line in answer.lines().filter(|l| l.contains(" tcp ") && l.contains("tcptype passive") && l.split_whitespace().nth(1) == Some("1")) {
            let init = webrtc::peer_connection::RTCIceCandidateInit { candidate: line.trim().trim_start_matches("a=").to_owned(), sdp_mid: Some("0".into()), sdp_mline_index: Some(0), ..Default::default() };
            bot.pc.add_ice_candidate(init).await.expect("the node's TCP candidate");
        }
        bot.wait_connected().await;
        let rx = collect_tracks(&mut bot);
        Viewer { bot, session, rx }
    }
}

/// Poll every remote track the bot gets (in spawned tasks) and report the packets.
pub fn collect_tracks(bot: &mut Bot) -> mpsc::UnboundedReceiver<Rx> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tracks = std::mem::replace(&mut bot.tracks, mpsc::unbounded_channel().1);
        tokio::spawn(async move {
            while let Some(t) = tracks.recv().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let video = t.kind().await == RtpCodecKind::Video;
                    while let Some(ev) = t.poll().await {
                        if let TrackRemoteEvent::OnRtpPacket(p) = ev {
                            let _ = tx.send(Rx {
                                video,
                                ssrc: p.header.ssrc,
                                seq: p.header.sequence_number,
                                ts: p.header.timestamp,
                                pt: p.header.payload_type,
                                payload: p.payload,
                                at: Instant::now(),
                            });
                        }
                    }
                });
            }
        });
        rx
}

impl Viewer {
    /// Collect packets for `d`.
    pub async fn collect(&mut self, d: Duration) -> Vec<Rx> {
        collect_for(&mut self.rx, d).await
    }
}

/// Collect packets from `rx` for `d`.
pub async fn collect_for(rx: &mut mpsc::UnboundedReceiver<Rx>, d: Duration) -> Vec<Rx> {
    let end = tokio::time::Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(Some(p)) = tokio::time::timeout_at(end, rx.recv()).await {
        out.push(p);
    }
    out
}

/// Number of open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}
