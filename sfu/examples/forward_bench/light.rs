//! Light receivers for the bench, so that N viewers cost the bench process little and the SFU
//! (not the bots) is what saturates.
//!
//! * [`SrtpViewer`]: a real WebRTC viewer on the sans-I/O `rtc` core — ICE (full agent, it
//!   keeps consent alive), DTLS, SRTP keys — with its own UDP socket, one task. STUN, DTLS and
//!   SRTCP go into the connection; SRTP media datagrams are only counted, not decrypted (what
//!   is measured is that the SFU delivered them, not the bot's AES).
//! * [`count_datagrams`]: the plain floor's receiver: a UDP socket, datagrams counted.
//!
//! Both receive through `quinn-udp` (recvmmsg, GRO on), the same path for the SFU and the floor.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use quinn_udp::{RecvMeta, UdpSocketState};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::io::Interest;

/// A UDP socket on loopback with quinn-udp state (GRO on where the kernel has it).
pub fn socket() -> (tokio::net::UdpSocket, UdpSocketState) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a viewer socket");
    s.set_nonblocking(true).unwrap();
    let state = UdpSocketState::new((&s).into()).expect("udp state");
    (tokio::net::UdpSocket::from_std(s).unwrap(), state)
}

/// A receive buffer set for quinn-udp.
pub struct RecvBufs {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl RecvBufs {
    pub fn new(state: &UdpSocketState) -> Self {
        let n = 8;
        Self { bufs: vec![vec![0; 2048 * state.gro_segments().max(1)]; n], meta: vec![RecvMeta::default(); n] }
    }

    /// One recvmmsg; calls `f(from, datagram)` for every datagram. False when nothing was queued.
    pub fn recv(&mut self, sock: &tokio::net::UdpSocket, state: &UdpSocketState, mut f: impl FnMut(SocketAddr, &[u8])) -> bool {
        let Self { bufs, meta } = self;
        let mut iovs: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let n = match sock.try_io(Interest::READABLE, || state.recv(sock.into(), &mut iovs, meta)) {
            Ok(n) => n,
            Err(_) => return false,
        };
        for (m, b) in meta[..n].iter().zip(bufs.iter()) {
            for d in b[..m.len].chunks(m.stride.max(1)) {
                f(m.addr, d);
            }
        }
        true
    }
}

/// Count every datagram arriving on `sock` into `received` until `stop`.
pub async fn count_datagrams(sock: tokio::net::UdpSocket, state: UdpSocketState, received: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut bufs = RecvBufs::new(&state);
    while !stop.load(Ordering::Relaxed) {
        if tokio::time::timeout(Duration::from_millis(200), sock.readable()).await.is_err() {
            continue;
        }
        while bufs.recv(&sock, &state, |_, _| {
            received.fetch_add(1, Ordering::Relaxed);
        }) {}
    }
}

/// Whether a datagram is SRTP media (RFC 7983 128..=191, and not an RTCP packet type).
fn is_srtp_media(d: &[u8]) -> bool {
    d.len() >= 12 && (128..=191).contains(&d[0]) && !(192..=223).contains(&d[1])
}

/// A receive-only WebRTC viewer on the sans-I/O core.
pub struct SrtpViewer {
    pc: RTCPeerConnection,
    sock: tokio::net::UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
}

impl SrtpViewer {
    /// A viewer with an audio and a video receive-only section; returns it and its offer.
    pub fn new() -> (Self, String) {
        let (sock, state) = socket();
        let local = sock.local_addr().unwrap();
        let mut me = MediaEngine::default();
        me.register_default_codecs().unwrap();
        let se = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_setting_engine(se)
            .build(Instant::now())
            .unwrap();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(kind, Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() })).unwrap();
        }
        let host = CandidateHostConfig {
            base_config: CandidateConfig { network: "udp".into(), address: local.ip().to_string(), port: local.port(), component: 1, ..Default::default() },
            ..Default::default()
        }
        .new_candidate_host()
        .unwrap();
        pc.add_local_candidate(RTCIceCandidate::from(&host).to_json().unwrap()).unwrap();
        pc.add_local_candidate(RTCIceCandidateInit::default()).unwrap();
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(Instant::now(), offer).unwrap();
        let sdp = pc.local_description().unwrap().sdp;
        (Self { pc, sock, state, local }, sdp)
    }

    /// Apply the SFU's answer and run until `stop`: connects, then counts SRTP media datagrams
    /// into `received`. `connected` is set once DTLS is up.
    pub async fn run(mut self, answer: String, received: Arc<AtomicU64>, connected: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
        self.pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(answer).unwrap()).unwrap();
        let mut bufs = RecvBufs::new(&self.state);
        let mut feed: Vec<(SocketAddr, BytesMut)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            while let Some(w) = self.pc.poll_write() {
                let _ = self.sock.try_send_to(&w.message, w.transport.peer_addr);
            }
            while let Some(ev) = self.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                    match s {
                        RTCPeerConnectionState::Connected => connected.store(true, Ordering::SeqCst),
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => return,
                        _ => {}
                    }
                }
            }
            while self.pc.poll_read().is_some() {}
            let now = Instant::now();
            let deadline = self.pc.poll_timeout().unwrap_or(now + Duration::from_millis(200)).max(now + Duration::from_millis(1));
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
                r = self.sock.readable() => {
                    if r.is_err() {
                        return;
                    }
                    let mut media = 0;
                    while bufs.recv(&self.sock, &self.state, |from, d| {
                        if is_srtp_media(d) {
                            media += 1;
                        } else {
                            feed.push((from, BytesMut::from(d)));
                        }
                    }) {}
                    received.fetch_add(media, Ordering::Relaxed);
                    let now = Instant::now();
                    for (from, message) in feed.drain(..) {
                        let transport = TransportContext { local_addr: self.local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP };
                        let _ = self.pc.handle_read(TaggedBytesMut { now, transport, message });
                    }
                }
            }
        }
        let _ = self.pc.close();
        while let Some(w) = self.pc.poll_write() {
            let _ = self.sock.try_send_to(&w.message, w.transport.peer_addr);
        }
    }
}
