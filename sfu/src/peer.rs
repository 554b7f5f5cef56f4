//! Building one `webrtc` 0.21 peer connection the way the SFU needs it, and the event handler
//! that turns callbacks into channel messages (never doing work on the driver task).
//!
//! Every choice here answers an item of `WEBRTC-NOTES.md`: mDNS disabled, explicit UDP bind,
//! an interceptor that hands PLI/FIR/RR to the application, callbacks that only `send`.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use rtc::sansio::Protocol;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateType, RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry,
    SettingEngineBuilder, register_default_interceptors,
};

use crate::SfuError;

/// The RFC 6464 client-to-mixer audio level header extension.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// What a peer connection's callbacks report, in order, to the task that owns the connection.
pub(crate) enum PcEvent {
    State(RTCPeerConnectionState),
    Candidate(crate::IceCandidate),
    Track(Arc<dyn TrackRemote>),
}

/// Forwards callbacks into channels. Runs on the connection's driver task, so it only sends.
struct Handler {
    events: mpsc::UnboundedSender<PcEvent>,
    gathered: watch::Sender<bool>,
    accept_tracks: bool,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered.send_replace(state == RTCIceGatheringState::Complete);
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.events.send(PcEvent::Candidate(crate::IceCandidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
            }));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PcEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Never poll here: the handler runs on the driver, polling would deadlock it.
        if self.accept_tracks {
            let _ = self.events.send(PcEvent::Track(track));
        }
    }
}

/// Passes inbound keyframe requests (PLI, FIR) and receiver reports to the application, after
/// every other interceptor has seen them (the crate's `rtcp-processing` example, plus RR for
/// loss-driven layer choice). Everything else stops at the end of the chain as usual.
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
            let kept: Vec<Box<dyn rtc::rtcp::Packet>> =
                packets.iter().filter(|p| wanted_by_app(p.as_ref())).cloned().collect();
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

/// A built connection plus the channels its callbacks feed.
pub(crate) struct BuiltPc {
    pub pc: Arc<dyn PeerConnection>,
    pub events: mpsc::UnboundedReceiver<PcEvent>,
    pub gathered: watch::Receiver<bool>,
    pub port: u16,
}

/// Which UDP port the next connection binds. `(0, 0)` means "let the OS pick".
pub(crate) struct PortPool {
    lo: u16,
    hi: u16,
    next: u16,
    used: std::collections::HashSet<u16>,
}

impl PortPool {
    pub fn new((lo, hi): (u16, u16)) -> Self {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        Self { lo, hi, next: lo, used: Default::default() }
    }

    fn ephemeral(&self) -> bool {
        self.lo == 0 && self.hi == 0
    }

    /// A free port of the range (round robin, so a just-freed port is not reused at once).
    pub fn take(&mut self) -> Option<u16> {
        if self.ephemeral() {
            return Some(0);
        }
        let n = (self.hi - self.lo) as u32 + 1;
        for _ in 0..n {
            let p = self.next;
            self.next = if self.next >= self.hi { self.lo } else { self.next + 1 };
            if self.used.insert(p) {
                return Some(p);
            }
        }
        None
    }

    pub fn give_back(&mut self, port: u16) {
        self.used.remove(&port);
    }
}

fn media_engine() -> Result<MediaEngine, SfuError> {
    let mut me = MediaEngine::default();
    me.register_default_codecs().map_err(SfuError::webrtc)?;
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
        RtpCodecKind::Audio,
        None,
    )
    .map_err(SfuError::webrtc)?;
    Ok(me)
}

/// Build a connection bound to `bind_ip:port` (port from the pool; retried on a taken port).
pub(crate) async fn build_pc(
    bind_ip: IpAddr,
    announced_ip: Option<IpAddr>,
    ports: &std::sync::Mutex<PortPool>,
    accept_tracks: bool,
) -> Result<BuiltPc, SfuError> {
    let mut last_err = None;
    for _attempt in 0..8 {
        let port = ports.lock().expect("port pool").take().ok_or(SfuError::NoPorts)?;
        match build_on(bind_ip, announced_ip, port, accept_tracks).await {
            Ok(mut built) => {
                built.port = port;
                return Ok(built);
            }
            Err(e) => {
                // Most likely the port is held by another process: keep it marked used for a
                // while would be kinder, but simply moving on is enough for a retry.
                ports.lock().expect("port pool").give_back(port);
                last_err = Some(e);
                if port == 0 {
                    break;
                }
            }
        }
    }
    Err(last_err.unwrap_or(SfuError::NoPorts))
}

async fn build_on(
    bind_ip: IpAddr,
    announced_ip: Option<IpAddr>,
    port: u16,
    accept_tracks: bool,
) -> Result<BuiltPc, SfuError> {
    let mut me = media_engine()?;
    let registry = register_default_interceptors(Registry::new(), &mut me).map_err(SfuError::webrtc)?;
    let registry = registry.with(Slot::from(14_000), RtcpToApp { read_queue: VecDeque::new(), write_queue: VecDeque::new() });
    let mut se = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled);
    if let Some(ip) = announced_ip {
        se = se.with_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (gtx, grx) = watch::channel(false);
    let handler = Arc::new(Handler { events: tx, gathered: gtx, accept_tracks });
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_setting_engine(se.build())
        .with_interceptor_registry(registry)
        .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
        .with_udp_addrs(vec![SocketAddr::new(bind_ip, port)])
        .build()
        .await
        .map_err(SfuError::webrtc)?;
    Ok(BuiltPc { pc: Arc::new(pc), events: rx, gathered: grx, port })
}

/// Wait for ICE gathering to complete (host candidates only: milliseconds), bounded.
pub(crate) async fn wait_gathered(gathered: &mut watch::Receiver<bool>) -> Result<(), SfuError> {
    match tokio::time::timeout(Duration::from_secs(15), gathered.wait_for(|g| *g)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(SfuError::Closed),
        Err(_) => Err(SfuError::Timeout("ICE gathering")),
    }
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

/// The rids a publisher offers to send (`a=rid:<id> send`), in SDP order.
pub(crate) fn offered_rids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("a=rid:")?;
            let mut it = rest.split_whitespace();
            let id = it.next()?;
            (it.next()? == "send").then(|| id.to_owned())
        })
        .collect()
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

    const SDP: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rid:q send\r\na=rid:f send\r\nm=application 9 x\r\n";

    #[test]
    fn sdp_helpers_read_extmap_rids_and_directions() {
        assert_eq!(extmap_id(SDP, AUDIO_LEVEL_URI), Some(1));
        assert_eq!(extmap_id(SDP, "urn:x"), None);
        assert_eq!(offered_rids(SDP), vec!["q", "f"]);
        assert_eq!(
            media_directions(SDP),
            vec![("audio", "sendonly"), ("video", "recvonly"), ("application", "sendrecv")]
        );
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
    fn port_pool_hands_out_each_port_once() {
        let mut p = PortPool::new((5000, 5001));
        assert_eq!(p.take(), Some(5000));
        assert_eq!(p.take(), Some(5001));
        assert_eq!(p.take(), None);
        p.give_back(5000);
        assert_eq!(p.take(), Some(5000));
    }
}
