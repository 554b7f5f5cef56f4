//! Building one sans-I/O `rtc` 0.21 peer connection the way the SFU needs it, and the SDP
//! helpers the sessions use.
//!
//! Every connection of the node is an ICE-lite agent (RFC 8445 §2.5) with the node's local
//! candidates only, the shared UDP socket and (if configured) the passive ICE-TCP listener, added before any description is created so every
//! offer and answer carries it (gathering is complete at once: there is nothing to gather).
//! mDNS is off (the agent would otherwise send multicast queries from our socket). An
//! interceptor hands PLI/FIR/RR from subscribers to the driver (the default chain consumes
//! them; `WEBRTC-NOTES.md`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{
    Attribute, Interceptor, NackGeneratorBuilder, NackResponderBuilder, Packet, ReceiverReportBuilder, Registry, SenderReportBuilder, Slot, StreamInfo,
    TaggedPacket,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{configure_simulcast_extension_headers, configure_twcc_receiver_only};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind};
use rtc::sansio::Protocol;

use crate::SfuError;

/// The RFC 6464 client-to-mixer audio level header extension.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Passes inbound keyframe requests (PLI, FIR) and receiver reports to the application, after
/// every other interceptor has seen them (the `rtc` crate's `rtcp-processing` example, plus RR
/// for loss-driven layer choice). Everything else stops at the end of the chain as usual.
struct RtcpToApp {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

fn wanted_by_app(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() || any.is::<ReceiverReport>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpToApp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let kept: Vec<Box<dyn rtc::rtcp::Packet>> = packets.iter().filter(|p| wanted_by_app(p.as_ref())).cloned().collect();
            if kept.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(kept);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for RtcpToApp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Builds the node's peer connections: codecs, interceptors, ICE-lite and the node's candidates.
pub(crate) struct PcFactory {
    media_engine: MediaEngine,
    candidates: Vec<RTCIceCandidateInit>,
}

impl PcFactory {
    /// Connections whose host candidates are `candidate` (the announced address of the shared
    /// UDP socket) and, if given, `tcp` (the node's ICE-TCP listener, a passive TCP candidate,
    /// RFC 6544; its priority is below the UDP one's, so a client that can use both prefers UDP).
    pub fn new(candidate: SocketAddr, tcp: Option<SocketAddr>) -> Result<Self, SfuError> {
        let mut me = MediaEngine::default();
        me.register_default_codecs().map_err(SfuError::webrtc)?;
        me.register_header_extension(RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() }, RtpCodecKind::Audio, None)
            .map_err(SfuError::webrtc)?;
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: candidate.ip().to_string(),
                port: candidate.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(SfuError::webrtc)?;
        let mut candidates = vec![RTCIceCandidate::from(&host).to_json().map_err(SfuError::webrtc)?];
        if let Some(tcp) = tcp {
            let passive = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "tcp".to_owned(),
                    address: tcp.ip().to_string(),
                    port: tcp.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type: rtc::ice::tcp_type::TcpType::Passive,
            }
            .new_candidate_host()
            .map_err(SfuError::webrtc)?;
            candidates.push(RTCIceCandidate::from(&passive).to_json().map_err(SfuError::webrtc)?);
        }
        Ok(Self { media_engine: me, candidates })
    }

    /// A new connection for media flowing `dir`, its candidate added and gathering complete.
    pub fn build(&self, dir: Direction, now: Instant) -> Result<RTCPeerConnection, SfuError> {
        let mut me = self.media_engine.clone();
        let registry = interceptors(&mut me, dir)?;
        let se = SettingEngineBuilder::new().with_lite(true).with_multicast_dns_mode(MulticastDnsMode::Disabled).build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_setting_engine(se)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(SfuError::webrtc)?;
        for c in &self.candidates {
            pc.add_local_candidate(c.clone()).map_err(SfuError::webrtc)?;
        }
        // End of candidates: gathering is complete, every description carries the candidate.
        pc.add_local_candidate(RTCIceCandidateInit::default()).map_err(SfuError::webrtc)?;
        Ok(pc)
    }
}

/// Packets a subscriber leg keeps per outgoing stream to answer NACKs: at 150 video packets a
/// second about 1.7 s, plenty for a retransmission round trip. (`rtc`'s default is 1024, which
/// costs ~100 KiB per stream per viewer.)
const NACK_BUFFER: u16 = 256;

/// Which way media flows on a connection: it decides the interceptor chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The SFU sends (WHEP viewers, members' subscriber legs).
    Send,
    /// The SFU receives (WHIP ingest, members' publisher legs).
    Receive,
}

/// `rtc`'s default interceptors (`register_default_interceptors`) split by direction, because
/// every interceptor costs a queue move per packet and the forwarded packets cross the sending
/// chain once per viewer:
///
/// * sending: the NACK responder (smaller buffer), sender reports (A/V sync, RTT) and the tap
///   that hands subscribers' PLI/FIR/RR to the SFU;
/// * receiving: the NACK generator, TWCC feedback and receiver reports.
///
/// Both register the same codecs, feedback and mid/rid extensions, so SDPs are unchanged but for
/// the transport-cc extension, offered only where the SFU receives.
fn interceptors(me: &mut MediaEngine, dir: Direction) -> Result<Registry, SfuError> {
    for parameter in ["", "pli"] {
        me.register_feedback(RTCPFeedback { typ: "nack".to_owned(), parameter: parameter.to_owned() }, RtpCodecKind::Video);
    }
    configure_simulcast_extension_headers(me).map_err(SfuError::webrtc)?;
    Ok(match dir {
        Direction::Send => Registry::new()
            .with(Slot::NackResponder, NackResponderBuilder::new().with_size(NACK_BUFFER).build())
            .with(Slot::SenderReport, SenderReportBuilder::new().build())
            .with(Slot::from(14_000), RtcpToApp { read_queue: VecDeque::new(), write_queue: VecDeque::new() }),
        Direction::Receive => {
            let registry = Registry::new().with(Slot::NackGenerator, NackGeneratorBuilder::new().build());
            configure_twcc_receiver_only(registry, me).map_err(SfuError::webrtc)?.with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        }
    })
}

/// The payload type a leg negotiated for a source's codec: the same MIME type, preferring the
/// same `a=fmtp` line, then (H.264) the same packetization mode, then any. `None` if the leg did
/// not negotiate that codec (an SFU does not transcode).
pub(crate) fn payload_type_for(negotiated: &[RTCRtpCodecParameters], source: &RTCRtpCodec) -> Option<u8> {
    let same: Vec<&RTCRtpCodecParameters> = negotiated.iter().filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&source.mime_type)).collect();
    let mode = |fmtp: &str| fmtp.split(';').find_map(|kv| kv.trim().strip_prefix("packetization-mode=").map(|v| v.trim().to_owned())).unwrap_or_else(|| "0".into());
    same.iter()
        .find(|c| c.rtp_codec.sdp_fmtp_line == source.sdp_fmtp_line)
        .or_else(|| same.iter().find(|c| mode(&c.rtp_codec.sdp_fmtp_line) == mode(&source.sdp_fmtp_line)))
        .or_else(|| same.first())
        .map(|c| c.payload_type)
}

/// The `a=ice-ufrag` of an SDP (the first; BUNDLE makes them all equal).
pub(crate) fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:")).map(str::trim)
}

/// The `a=extmap` id of `uri` in an SDP, if negotiated.
pub(crate) fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=extmap:")?;
        let (id, tail) = rest.split_once(' ')?;
        let id = id.split('/').next()?.parse().ok()?;
        (tail.split_whitespace().next()? == uri).then_some(id)
    })
}

/// The rids a publisher offers to send (`a=rid:<id> send`) in each media section, by the
/// section's `a=mid`, in SDP order. A camera and a screen share may both be simulcast with the
/// same rids: each section is its own set of layers.
pub(crate) fn offered_rids(sdp: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for l in sdp.lines().map(str::trim) {
        if l.starts_with("m=") {
            out.extend(current.take().filter(|(_, r)| !r.is_empty()));
            current = Some((String::new(), Vec::new()));
        } else if let Some((mid, rids)) = current.as_mut() {
            if let Some(m) = l.strip_prefix("a=mid:") {
                *mid = m.trim().to_owned();
            } else if let Some(rest) = l.strip_prefix("a=rid:") {
                let mut it = rest.split_whitespace();
                if let (Some(id), Some("send")) = (it.next(), it.next()) {
                    rids.push(id.to_owned());
                }
            }
        }
    }
    out.extend(current.filter(|(_, r)| !r.is_empty()));
    out
}

/// The offer with each video section's payload types reordered so that H.264 comes first
/// (packetization mode 1, what WebRTC senders use, before mode 0), then the RTX formats of those,
/// then everything else in the offer's order. The answer follows the offer's order and a
/// sender sends the answer's first format, so a publisher able to send H.264 does; one that
/// cannot (no H.264 in its offer) is unchanged and negotiates VP8 as before.
pub(crate) fn prefer_h264(sdp: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.split(eol).collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if !line.starts_with("m=video ") {
            out.push(line.to_owned());
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len()).find(|&j| lines[j].starts_with("m=")).unwrap_or(lines.len());
        let section = &lines[i + 1..end];
        out.push(reorder_video_mline(line, section));
        out.extend(section.iter().map(|l| (*l).to_owned()));
        i = end;
    }
    out.join(eol)
}

fn reorder_video_mline(mline: &str, section: &[&str]) -> String {
    let mut parts = mline.split(' ');
    let head: Vec<&str> = parts.by_ref().take(3).collect();
    let pts: Vec<&str> = parts.collect();
    let attr = |prefix: &str, pt: &str| {
        section.iter().find_map(|l| l.strip_prefix(prefix).and_then(|r| r.strip_prefix(pt)).and_then(|r| r.strip_prefix(' ')).map(str::to_owned))
    };
    let is_h264 = |pt: &str| attr("a=rtpmap:", pt).is_some_and(|m| m.to_ascii_lowercase().starts_with("h264/"));
    let mode1 = |pt: &str| attr("a=fmtp:", pt).is_some_and(|f| f.replace(' ', "").contains("packetization-mode=1"));
    let apt = |pt: &str| {
        attr("a=fmtp:", pt).and_then(|f| f.split(';').find_map(|kv| kv.trim().strip_prefix("apt=").map(|v| v.trim().to_owned())))
    };
    let mut h264: Vec<&str> = pts.iter().copied().filter(|p| is_h264(p) && mode1(p)).collect();
    h264.extend(pts.iter().copied().filter(|p| is_h264(p) && !mode1(p)));
    if h264.is_empty() {
        return mline.to_owned();
    }
    let mut order: Vec<&str> = h264.clone();
    for target in &h264 {
        order.extend(pts.iter().copied().filter(|p| apt(p).as_deref() == Some(*target)));
    }
    order.extend(pts.iter().copied().filter(|p| !order.contains(p)).collect::<Vec<_>>());
    let mut all = head;
    all.extend(order);
    all.join(" ")
}

/// The direction attributes of the media sections of an SDP.
pub(crate) fn media_directions(sdp: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut kind: Option<&str> = None;
    let mut dir = "sendrecv";
    for l in sdp.lines().map(str::trim) {
        if let Some(m) = l.strip_prefix("m=") {
            if let Some(k) = kind.take() {
                out.push((k, dir));
            }
            kind = m.split_whitespace().next();
            dir = "sendrecv";
        } else if kind.is_some()
            && let Some(d) = l.strip_prefix("a=")
            && matches!(d, "sendrecv" | "sendonly" | "recvonly" | "inactive")
        {
            dir = d;
        }
    }
    if let Some(k) = kind {
        out.push((k, dir));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\na=ice-ufrag:abcd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\na=rid:q send\r\na=rid:f send\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=rid:q send\r\na=rid:h send\r\na=rid:f send\r\nm=application 9 x\r\n";

    #[test]
    fn sdp_helpers_read_ufrag_extmap_rids_and_directions() {
        assert_eq!(ice_ufrag(SDP), Some("abcd"));
        assert_eq!(extmap_id(SDP, AUDIO_LEVEL_URI), Some(1));
        assert_eq!(extmap_id(SDP, "urn:x"), None);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(offered_rids(SDP), vec![("1".to_string(), s(&["q", "f"])), ("2".to_string(), s(&["q", "h", "f"]))], "per section");
        assert_eq!(media_directions(SDP), vec![("audio", "sendonly"), ("video", "recvonly"), ("video", "sendrecv"), ("application", "sendrecv")]);
    }

    #[test]
    fn a_source_codec_maps_to_the_legs_payload_type_by_mime_fmtp_and_packetization_mode() {
        let c = |mime: &str, fmtp: &str, pt| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec { mime_type: mime.into(), clock_rate: 90_000, channels: 0, sdp_fmtp_line: fmtp.into(), rtcp_feedback: vec![] },
            payload_type: pt,
        };
        let leg = [
            c("video/VP8", "", 96),
            c("video/H264", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f", 102),
            c("video/H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 104),
            c("video/H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 106),
        ];
        let src = |mime: &str, fmtp: &str| c(mime, fmtp, 0).rtp_codec;
        assert_eq!(payload_type_for(&leg, &src("video/vp8", "")), Some(96));
        assert_eq!(payload_type_for(&leg, &src("video/H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f")), Some(106));
        assert_eq!(payload_type_for(&leg, &src("video/H264", "packetization-mode=1;profile-level-id=640c1f")), Some(104), "same mode");
        assert_eq!(payload_type_for(&leg, &src("video/H264", "profile-level-id=42001f")), Some(102), "mode 0 by default");
        assert_eq!(payload_type_for(&leg, &src("video/AV1", "")), None, "not negotiated: no transcoding");
    }

    #[test]
    fn h264_is_moved_first_in_video_sections_with_its_rtx() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 45\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\na=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:105 rtx/90000\r\na=fmtp:105 apt=104\r\na=rtpmap:45 AV1/90000\r\n";
        let out = prefer_h264(offer);
        assert!(out.contains("\r\nm=video 9 UDP/TLS/RTP/SAVPF 104 102 105 103 96 97 45\r\n"), "{out}");
        assert!(out.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
        assert_eq!(out.len(), offer.len());
        let vp8_only = "v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\na=rtpmap:96 VP8/90000\na=rtpmap:97 rtx/90000\n";
        assert_eq!(prefer_h264(vp8_only), vp8_only);
    }

    #[test]
    fn a_built_connection_offers_ice_lite_with_the_shared_candidate() {
        let f = PcFactory::new("127.0.0.1:40123".parse().unwrap(), None).unwrap();
        let mut pc = f.build(Direction::Send, Instant::now()).unwrap();
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, None).unwrap();
        let offer = pc.create_offer(None).unwrap();
        assert!(offer.sdp.contains("a=ice-lite"), "{}", offer.sdp);
        assert!(offer.sdp.contains("127.0.0.1 40123 typ host"), "{}", offer.sdp);
        assert!(!offer.sdp.contains(" tcp "), "no ICE-TCP unless configured: {}", offer.sdp);
    }

    #[test]
    fn with_an_ice_tcp_port_the_offer_carries_a_passive_tcp_candidate_below_the_udp_one() {
        let f = PcFactory::new("127.0.0.1:40123".parse().unwrap(), Some("127.0.0.1:40124".parse().unwrap())).unwrap();
        let mut pc = f.build(Direction::Send, Instant::now()).unwrap();
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, None).unwrap();
        let offer = pc.create_offer(None).unwrap();
        let cands: Vec<&str> = offer.sdp.lines().filter(|l| l.starts_with("a=candidate:")).collect();
        let tcp = cands.iter().find(|l| l.contains("127.0.0.1 40124 typ host tcptype passive")).unwrap_or_else(|| panic!("{cands:?}"));
        let udp = cands.iter().find(|l| l.contains("127.0.0.1 40123 typ host")).unwrap();
        let prio = |l: &str| l.split_whitespace().nth(3).unwrap().parse::<u32>().unwrap();
        assert!(prio(udp) > prio(tcp), "UDP preferred: {cands:?}");
    }
}
