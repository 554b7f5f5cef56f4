//! The media path: one ingest task per published track, one forwarder task per outgoing track
//! of a subscriber leg, one RTCP reader per outgoing track.
//!
//! ```text
//! TrackRemote::poll ─ ingest ─► broadcast (one per published track, 512 slots)
//!                                   ├─► forwarder (subscriber A) ─► TrackLocalStaticRTP::write_rtp
//!                                   └─► forwarder (subscriber B) ─► ...
//! TrackLocal::poll (PLI/FIR/RR) ─ rtcp reader ─► FwdCmd to its forwarder ─► PLI upstream (throttled)
//! ```
//!
//! Each forwarder has its own lagging receiver, so a slow subscriber loses packets (counted)
//! instead of stalling the publisher or the other subscribers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use tokio::sync::{broadcast, mpsc};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;

use crate::rewrite::{LayerDecision, LayerSelector, PliThrottle, SeqRewriter, TsRewriter, is_keyframe, rid_rank};
use crate::room::{Fwd, Gates, PublishedTrack, Room, PLI_INTERVAL};
use crate::speaker::parse_audio_level;
use crate::{Counters, MediaKind, TaskGuard, TrackId};

/// Commands to one forwarder.
#[derive(Debug)]
pub(crate) enum FwdCmd {
    /// Forward from this published track from now on (`None`: pause).
    Source(Option<Arc<PublishedTrack>>),
    /// Simulcast layer wanted by the subscriber (0 = lowest).
    Layer(usize),
    /// Loss reported by the subscriber (RTCP RR fraction lost).
    Loss(u8),
    /// The subscriber asked for a keyframe (PLI/FIR).
    Keyframe,
}

impl std::fmt::Debug for PublishedTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublishedTrack({:?}, {})", self.id, self.participant)
    }
}

/// Everything a forwarder needs about its outgoing track.
pub(crate) struct Outgoing {
    pub track: Arc<TrackLocalStaticRTP>,
    pub sender: Arc<dyn RtpSender>,
    pub ssrc: u32,
    pub codec: RTCRtpCodec,
    pub connected: Arc<AtomicBool>,
}

fn seed(x: u64) -> u32 {
    // splitmix64: distinct, well-spread SSRCs / initial sequence numbers without a rand dependency.
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// A fresh pseudo-random 32-bit value (SSRC, initial sequence number, timestamp).
pub(crate) fn random_u32() -> u32 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    seed(t ^ N.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x2545_F491_4F6C_DD1D)).max(1)
}

/// Run one forwarder until its command channel closes.
pub(crate) async fn run_forwarder(
    out: Outgoing,
    mut cmds: mpsc::Receiver<FwdCmd>,
    counters: Arc<Counters>,
    initial_layer: usize,
) {
    let _guard = TaskGuard::new(&counters);
    let mut seq = SeqRewriter::new(random_u32() as u16);
    let mut ts = TsRewriter::new(out.codec.clock_rate, random_u32());
    let mut source: Option<(Arc<PublishedTrack>, broadcast::Receiver<Fwd>)> = None;
    let mut selector = LayerSelector::new(1, initial_layer);
    let mut target_layer = initial_layer;
    let mut pt: Option<u8> = None;
    let mut gate_was_open = true;
    let mut was_connected = false;
    let out_mime = out.codec.mime_type.to_ascii_lowercase();
    loop {
        let next = match &mut source {
            Some((_, rx)) => tokio::select! {
                biased;
                c = cmds.recv() => Err(c),
                r = rx.recv() => Ok(r),
            },
            None => Err(cmds.recv().await),
        };
        match next {
            Err(None) => break,
            Err(Some(cmd)) => match cmd {
                FwdCmd::Source(s) => {
                    let same = matches!((&source, &s), (Some((a, _)), Some(b)) if a.id == b.id);
                    if !same {
                        source = s.map(|t| {
                            let rx = t.tx.subscribe();
                            (t, rx)
                        });
                        seq.handle_switch();
                        ts.handle_switch();
                        if let Some((t, _)) = &source {
                            selector = LayerSelector::new(t.layer_count.load(Ordering::Relaxed), target_layer);
                            t.request_keyframe().await;
                        }
                    }
                }
                FwdCmd::Layer(l) => {
                    target_layer = l;
                    selector.handle_set_target(l);
                    if selector.wants_keyframe()
                        && let Some((t, _)) = &source
                    {
                        t.request_keyframe().await;
                    }
                }
                FwdCmd::Loss(f) => {
                    let before = selector.effective_target();
                    selector.handle_loss(f);
                    if selector.effective_target() != before
                        && let Some((t, _)) = &source
                    {
                        t.request_keyframe().await;
                    }
                }
                FwdCmd::Keyframe => {
                    if let Some((t, _)) = &source {
                        t.request_keyframe().await;
                    }
                }
            },
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                counters.lagged.fetch_add(n, Ordering::Relaxed);
                if let Some((t, _)) = &source {
                    t.request_keyframe().await;
                }
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                source = None;
                seq.handle_switch();
                ts.handle_switch();
            }
            Ok(Ok(p)) => {
                let Some((t, _)) = &source else { continue };
                if !out.connected.load(Ordering::Relaxed) {
                    continue;
                }
                if !was_connected {
                    // DTLS just completed: whatever keyframe went by before is lost to us.
                    was_connected = true;
                    selector = LayerSelector::new(t.layer_count.load(Ordering::Relaxed), target_layer);
                    t.request_keyframe().await;
                }
                let open = t.gate.load(Ordering::Relaxed);
                if !open {
                    gate_was_open = false;
                    continue;
                }
                if !gate_was_open {
                    // The floor came back: restart on a keyframe, continuing the sequence.
                    gate_was_open = true;
                    selector = LayerSelector::new(t.layer_count.load(Ordering::Relaxed), target_layer);
                    seq.handle_switch();
                    ts.handle_switch();
                    t.request_keyframe().await;
                }
                let layers = t.layer_count.load(Ordering::Relaxed);
                selector.handle_layers(layers);
                match selector.handle_packet(p.layer as usize, p.keyframe) {
                    LayerDecision::Drop => {
                        if selector.wants_keyframe() {
                            t.poll_deferred_keyframe().await;
                        }
                        continue;
                    }
                    LayerDecision::SwitchAndForward => {
                        seq.handle_switch();
                        ts.handle_switch();
                    }
                    LayerDecision::Forward => {}
                }
                if !t.codec.mime_type.eq_ignore_ascii_case(&out_mime) {
                    continue; // the subscriber leg negotiated another codec; cannot transcode
                }
                if pt.is_none() {
                    pt = negotiated_pt(&out.sender, &out_mime).await;
                }
                let Some(pt) = pt else { continue };
                let Some(out_seq) = seq.rewrite(p.seq) else { continue };
                let out_ts = ts.rewrite(p.ts, Instant::now());
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        marker: p.marker,
                        payload_type: pt,
                        sequence_number: out_seq,
                        timestamp: out_ts,
                        ssrc: out.ssrc,
                        ..Default::default()
                    },
                    payload: p.payload,
                };
                if out.track.write_rtp(packet).await.is_ok() {
                    counters.forwarded.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The payload type the subscriber leg negotiated for `mime` (lower-case), once negotiated.
async fn negotiated_pt(sender: &Arc<dyn RtpSender>, mime: &str) -> Option<u8> {
    let params = sender.get_parameters().await.ok()?;
    params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.to_ascii_lowercase() == mime)
        .map(|c| c.payload_type)
}

/// Read the subscriber's RTCP about one outgoing track and turn it into forwarder commands.
pub(crate) async fn run_rtcp_reader(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    fwd: mpsc::Sender<FwdCmd>,
    counters: Arc<Counters>,
) {
    use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::receiver_report::ReceiverReport;
    let _guard = TaskGuard::new(&counters);
    while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                counters.keyframe_requests_in.fetch_add(1, Ordering::Relaxed);
                let _ = fwd.try_send(FwdCmd::Keyframe);
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                for r in rr.reports.iter().filter(|r| r.ssrc == ssrc) {
                    let _ = fwd.try_send(FwdCmd::Loss(r.fraction_lost));
                }
            }
        }
    }
}

/// Context of one publisher connection, shared by its ingest tasks.
#[derive(Clone)]
pub(crate) struct IngestCtx {
    pub room: Arc<Room>,
    pub participant: String,
    pub gates: Gates,
    pub audio_level_id: Option<u8>,
    pub rids: Vec<String>,
    pub counters: Arc<Counters>,
    pub next_track_id: Arc<std::sync::atomic::AtomicU64>,
    pub published: Arc<std::sync::Mutex<Vec<TrackId>>>,
}

/// Read one remote track and publish it into the room until it ends.
pub(crate) async fn run_ingest(track: Arc<dyn TrackRemote>, ctx: IngestCtx) {
    let _guard = TaskGuard::new(&ctx.counters);
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    let mut published: Option<Arc<PublishedTrack>> = None;
    let mut ssrc_layers: Vec<(u32, u8)> = Vec::new();
    let mut mime = String::new();
    while let Some(ev) = track.poll().await {
        match ev {
            TrackRemoteEvent::OnOpen(init) => {
                let layer = init.rid.as_ref().map_or(0, |r| rid_rank(r.as_ref(), &ctx.rids)) as u8;
                ssrc_layers.retain(|(s, _)| *s != init.ssrc);
                ssrc_layers.push((init.ssrc, layer));
                if published.is_none() {
                    let Some(codec) = track.codec(init.ssrc).await else { continue };
                    mime = codec.mime_type.to_ascii_lowercase();
                    let id = TrackId(ctx.next_track_id.fetch_add(1, Ordering::Relaxed));
                    let t = Arc::new(PublishedTrack {
                        id,
                        participant: ctx.participant.clone(),
                        kind,
                        codec,
                        remote: Arc::clone(&track),
                        layers: Default::default(),
                        rids: if kind == MediaKind::Video { ctx.rids.clone() } else { Vec::new() },
                        layer_count: (ctx.rids.len().max(1) * usize::from(kind == MediaKind::Video)).max(1).into(),
                        tx: broadcast::channel(512).0,
                        pli: std::sync::Mutex::new(PliThrottle::new(PLI_INTERVAL)),
                        gate: Arc::clone(if kind == MediaKind::Audio { &ctx.gates.audio } else { &ctx.gates.video }),
                    });
                    ctx.published.lock().expect("published").push(id);
                    ctx.room.publish(Arc::clone(&t));
                    published = Some(t);
                }
                if let Some(t) = &published {
                    *t.layers.lock().expect("layers") = ssrc_layers.clone();
                }
            }
            TrackRemoteEvent::OnRtpPacket(pkt) => {
                let Some(t) = &published else { continue };
                // Only media SSRCs we saw open; RTX/FEC streams are not forwarded (NOTES).
                let Some(&(_, layer)) = ssrc_layers.iter().find(|(s, _)| *s == pkt.header.ssrc) else { continue };
                ctx.counters.ingested.fetch_add(1, Ordering::Relaxed);
                if kind == MediaKind::Audio
                    && let Some(id) = ctx.audio_level_id
                    && let Some(e) = pkt.header.extensions.iter().find(|e| e.id == id)
                    && let Some((_, level)) = parse_audio_level(&e.payload)
                {
                    ctx.room.handle_audio_level(&ctx.participant, level, Instant::now());
                }
                let keyframe = is_keyframe(&mime, &pkt.payload);
                let _ = t.tx.send(Fwd {
                    layer,
                    seq: pkt.header.sequence_number,
                    ts: pkt.header.timestamp,
                    marker: pkt.header.marker,
                    keyframe,
                    payload: pkt.payload,
                });
            }
            TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError => break,
            _ => {}
        }
    }
    if let Some(t) = published {
        ctx.published.lock().expect("published").retain(|id| *id != t.id);
        ctx.room.unpublish(t.id);
    }
}
