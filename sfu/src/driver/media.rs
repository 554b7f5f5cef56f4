//! The media path inside the driver: published tracks, the per-packet fan-out, keyframe
//! requests, subscriber RTCP, and wiring outgoing tracks to sources.
//!
//! ```text
//! publisher pc ─ poll_read RtpPacket ─ handle_ingest_message ─ forward_packet
//!     (layer by SSRC, RFC 6464 level, keyframe?, floor gate) ─► for each subscriber (pc, out):
//!         Forwarder::handle_packet → Decision ─ Forward{seq, ts}: header rewritten (SSRC, the
//!         leg's PT, no extensions) ─ RTCRtpSender::write_rtp        (encrypted at the flush)
//!                                             ─ request_keyframe: PliThrottle ─ PLI upstream
//! subscriber pc ─ poll_read RtcpPacket (PLI/FIR/RR) ─ handle_subscriber_message ─► same path
//! ```

use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};

use super::{Driver, In, Out, PcKey, mark, random_u32};
use crate::forward::{DropReason, Forwarder, PacketMeta, Source, Verdict};
use crate::rewrite::{PliThrottle, is_keyframe, rid_rank};
use crate::speaker::parse_audio_level;
use crate::tap::{StageEvent, TapCodec};
use crate::{MediaKind, SfuError, TrackId};

/// The default minimum interval between two PLIs to one publisher track.
const PLI_INTERVAL: std::time::Duration = std::time::Duration::from_millis(300);

/// A track a publisher sends into a room.
pub(crate) struct Published {
    pub id: TrackId,
    pub room: String,
    pub participant: String,
    pub kind: MediaKind,
    pub codec: RTCRtpCodec,
    mime: String,
    pc: PcKey,
    receiver: RTCRtpReceiverId,
    /// `(ssrc, layer)` of each simulcast layer seen so far.
    layers: Vec<(u32, u8)>,
    /// Layers the publisher announced (1 without simulcast).
    layer_count: usize,
    /// The publisher's simulcast rids (empty without simulcast).
    pub rids: Vec<String>,
    pli: PliThrottle,
    /// The floor lets this track through (mirrors the room's gate for the participant).
    pub gate: bool,
    /// The stage lets this track reach the public (mirrors the room's public gate).
    pub public: bool,
    /// Who receives it: `(subscriber pc, index of its outgoing track)`.
    subscribers: Vec<(PcKey, usize)>,
}

pub(crate) fn default_codec(kind: MediaKind) -> RTCRtpCodec {
    match kind {
        MediaKind::Audio => RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        MediaKind::Video => RTCRtpCodec { mime_type: "video/VP8".into(), clock_rate: 90_000, channels: 0, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] },
    }
}

impl Driver {
    /// Add an outgoing track of `kind`/`codec` to connection `key`; returns its index. With
    /// `any_codec` (a viewer's slot, which follows whoever is on stage) the leg negotiates every
    /// codec both sides have, and each source is sent with its own codec's payload type; without
    /// it (a member's copy of one published track) only `codec`.
    pub(super) fn add_outgoing(&mut self, key: PcKey, kind: MediaKind, codec: RTCRtpCodec, label: &str, layer: usize, any_codec: bool) -> Result<usize, SfuError> {
        let pc = self.pcs.get_mut(&key).ok_or(SfuError::Closed)?;
        let ssrc = random_u32();
        let rtp_kind = match kind {
            MediaKind::Audio => RtpCodecKind::Audio,
            MediaKind::Video => RtpCodecKind::Video,
        };
        let track = MediaStreamTrack::new(
            format!("sl-{label}"),
            format!("sl-{label}-{ssrc}"),
            format!("sl-{label}-{ssrc}"),
            rtp_kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: codec.clone(),
                ..Default::default()
            }],
        );
        let sender = pc.rtc.add_track(track).map_err(SfuError::webrtc)?;
        if any_codec {
            let ids: Vec<_> = pc.rtc.get_transceivers().collect();
            let transceiver = ids.into_iter().find(|t| pc.rtc.rtp_transceiver(*t).is_some_and(|x| x.sender() == Some(sender)));
            // An empty preference list is the media engine's codecs (`setCodecPreferences([])`).
            if let Some(t) = transceiver
                && let Some(mut x) = pc.rtc.rtp_transceiver(t)
            {
                x.set_codec_preferences(Vec::new()).map_err(SfuError::webrtc)?;
            }
        }
        let fwd = Forwarder::new(codec.clock_rate, random_u32() as u16, random_u32(), layer);
        pc.outs.push(Some(Out { sender, ssrc, pt: None, offered: false, ready: false, fwd }));
        Ok(pc.outs.len() - 1)
    }

    /// Point outgoing track `(key, idx)` at `source` (or nothing), moving its subscription.
    pub(super) fn set_source(&mut self, key: PcKey, idx: usize, source: Option<TrackId>, now: Instant) {
        let Some(old) = self.pcs.get(&key).and_then(|pc| pc.outs.get(idx)).and_then(|o| o.as_ref()).map(|o| o.fwd.source()) else {
            return;
        };
        if old == source {
            return;
        }
        if let Some(old) = old {
            self.unsubscribe(old, key, idx);
        }
        let src = source.and_then(|id| {
            let t = self.tracks.get_mut(&id)?;
            t.subscribers.push((key, idx));
            let pc = self.pcs.get_mut(&key)?;
            let sender = pc.outs.get(idx)?.as_ref()?.sender;
            let codecs = pc.rtc.rtp_sender(sender).map(|mut s| s.get_parameters().rtp_parameters.codecs.clone()).unwrap_or_default();
            Some(Source { id, layers: t.layer_count, codec_matches: crate::peer::payload_type_for(&codecs, &t.codec).is_some() })
        });
        let ask = match self.pcs.get_mut(&key).and_then(|pc| pc.outs.get_mut(idx)).and_then(|o| o.as_mut()) {
            Some(o) => o.fwd.handle_source(src),
            None => false,
        };
        if ask && let Some(id) = source {
            self.request_keyframe(id, now);
        }
    }

    /// Stop feeding `(key, idx)` from `track`.
    pub(super) fn unsubscribe(&mut self, track: TrackId, key: PcKey, idx: usize) {
        if let Some(t) = self.tracks.get_mut(&track) {
            t.subscribers.retain(|s| *s != (key, idx));
        }
    }

    /// A publishing connection opened a track (or another simulcast layer of one).
    pub(super) fn handle_track_open(&mut self, key: PcKey, init: rtc::peer_connection::event::RTCTrackEventInit, now: Instant) {
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        let Some(receiver) = pc.rtc.rtp_receiver(init.receiver_id) else { return };
        let track = receiver.track();
        let kind = match track.kind() {
            RtpCodecKind::Audio => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        let Some(codec) = track.codec(init.ssrc).cloned() else {
            tracing::debug!("track {} opened without a codec for ssrc {}", init.track_id, init.ssrc);
            return;
        };
        // The rids of this track's own media section (a camera and a screen may both be simulcast).
        let ids: Vec<_> = pc.rtc.get_transceivers().collect();
        let mid = ids.into_iter().find_map(|t| pc.rtc.rtp_transceiver(t).filter(|x| x.receiver() == Some(init.receiver_id)).and_then(|x| x.mid().clone()));
        let section_rids: Vec<String> = match &mid {
            Some(mid) => pc.rids.iter().find(|(m, _)| m == mid).map(|(_, r)| r.clone()).unwrap_or_default(),
            None => pc.rids.first().map(|(_, r)| r.clone()).unwrap_or_default(),
        };
        let layer = init.rid.as_ref().map_or(0, |r| rid_rank(r.as_ref(), &section_rids)) as u8;
        if let Some(t) = pc.ins.iter().find(|i| i.rtc_track == init.track_id).and_then(|i| self.tracks.get_mut(&i.track)) {
            t.layers.retain(|(s, _)| *s != init.ssrc);
            t.layers.push((init.ssrc, layer));
            return;
        }
        let session = pc.session;
        let Some((room, participant)) = self.sessions.get(&session).and_then(|s| s.publisher_of()) else { return };
        let rids = if kind == MediaKind::Video { section_rids } else { Vec::new() };
        let id = TrackId(self.next_track);
        self.next_track += 1;
        pc.ins.push(In { rtc_track: init.track_id.clone(), track: id });
        let gates = self.rooms.get(&room).map(|r| r.gates(&participant)).unwrap_or_default();
        let t = Published {
            id,
            room: room.clone(),
            participant: participant.clone(),
            kind,
            mime: codec.mime_type.to_ascii_lowercase(),
            codec,
            pc: key,
            receiver: init.receiver_id,
            layers: vec![(init.ssrc, layer)],
            layer_count: if kind == MediaKind::Video { rids.len().max(1) } else { 1 },
            rids,
            pli: PliThrottle::new(PLI_INTERVAL),
            gate: if kind == MediaKind::Audio { gates.audio } else { gates.video },
            public: gates.public,
            subscribers: Vec::new(),
        };
        self.tracks.insert(id, t);
        let added = self.stage_track_added(id);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.tracks.push(id);
            if let Some(ev) = added {
                r.taps.retain(|tap| tap.event(ev.clone()));
            }
        }
        self.room_changed(&room, super::session::RoomChange::Published { participant, track: id, kind }, now);
    }

    /// A track ended (its connection closed or the publisher stopped it).
    pub(super) fn unpublish(&mut self, id: TrackId) {
        let Some(t) = self.tracks.remove(&id) else { return };
        if let Some(pc) = self.pcs.get_mut(&t.pc) {
            pc.ins.retain(|i| i.track != id);
        }
        for (key, idx) in &t.subscribers {
            if let Some(o) = self.pcs.get_mut(key).and_then(|pc| pc.outs.get_mut(*idx)).and_then(|o| o.as_mut()) {
                o.fwd.handle_source(None);
            }
        }
        if let Some(r) = self.rooms.get_mut(&t.room) {
            r.tracks.retain(|x| *x != id);
        }
        let change = super::session::RoomChange::Unpublished { participant: t.participant.clone(), track: id, kind: t.kind };
        self.room_changed(&t.room, change, Instant::now());
    }

    /// Media from a publishing connection.
    pub(super) fn handle_ingest_message(&mut self, key: PcKey, m: TaggedRTCMessage) {
        let now = m.now;
        match m.message {
            RTCMessage::RtpPacket(rtc_track, pkt) => {
                let Some(id) = self.pcs.get(&key).and_then(|pc| pc.ins.iter().find(|i| i.rtc_track == rtc_track)).map(|i| i.track) else {
                    return;
                };
                self.forward_packet(id, key, pkt, now);
            }
            RTCMessage::RtcpPacket(..) => {} // sender reports: the interceptors used them
            _ => {}
        }
    }

    /// The tap event announcing track `id`.
    pub(super) fn stage_track_added(&self, id: TrackId) -> Option<StageEvent> {
        // Taps (the programme) see only public tracks.
        let t = self.tracks.get(&id).filter(|t| t.public)?;
        let codec = TapCodec { mime_type: t.codec.mime_type.clone(), clock_rate: t.codec.clock_rate, channels: t.codec.channels, fmtp: t.codec.sdp_fmtp_line.clone() };
        Some(StageEvent::TrackAdded { track: id, participant: t.participant.clone(), kind: t.kind, codec })
    }

    /// One publisher packet to every subscriber of its track (and the room's taps).
    fn forward_packet(&mut self, id: TrackId, from: PcKey, pkt: rtp::Packet, now: Instant) {
        let Self { tracks, pcs, dirty, counters, rooms, woke, .. } = self;
        let woke = *woke;
        let Some(t) = tracks.get_mut(&id) else { return };
        // Only media SSRCs that opened: RTX/FEC streams are not forwarded.
        let Some(&(_, layer)) = t.layers.iter().find(|(s, _)| *s == pkt.header.ssrc) else { return };
        counters.ingested.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let level = if t.kind == MediaKind::Audio {
            pcs.get(&from)
                .and_then(|pc| pc.audio_level_id)
                .and_then(|ext| pkt.header.extensions.iter().find(|e| e.id == ext))
                .and_then(|e| parse_audio_level(&e.payload))
                .map(|(_, level)| level)
        } else {
            None
        };
        let meta = PacketMeta {
            source: id,
            layer,
            layers: t.layer_count,
            seq: pkt.header.sequence_number,
            ts: pkt.header.timestamp,
            keyframe: is_keyframe(&t.mime, &pkt.payload),
            gate_open: t.gate,
        };
        // The stage taps: every packet as the publisher sent it (a simulcast track reduced to
        // one layer by each tap).
        let mut tap_wants_key = false;
        if let Some(r) = rooms.get_mut(&t.room)
            && !r.taps.is_empty()
            && t.public
        {
            r.taps.retain_mut(|tap| {
                // Stamped with the wake-up, not `now` (this packet's own read): connections are
                // drained one after the other, so a later connection's packets read earlier in
                // the same wake-up would reach the tap after a newer packet of the first.
                let (alive, want) = tap.media(&meta, t.codec.clock_rate, pkt.header.marker, &pkt.payload, woke);
                tap_wants_key |= want;
                alive
            });
        }
        let mut want_key = tap_wants_key;
        let mut awaiting = false;
        let mut forwarded = 0u64;
        for &(skey, idx) in &t.subscribers {
            let Some(pc) = pcs.get_mut(&skey) else { continue };
            let Some(Some(out)) = pc.outs.get_mut(idx) else { continue };
            let d = out.fwd.handle_packet(&meta, now);
            want_key |= d.request_keyframe;
            let (seq, ts) = match d.verdict {
                Verdict::Forward { seq, ts, .. } => (seq, ts),
                Verdict::Drop(DropReason::AwaitingKeyframe) => {
                    awaiting = true;
                    continue;
                }
                Verdict::Drop(_) => continue,
            };
            let pt = match out.pt {
                Some((src, pt)) if src == id => pt,
                _ => {
                    let Some(pt) = pc.rtc.rtp_sender(out.sender).and_then(|mut s| crate::peer::payload_type_for(&s.get_parameters().rtp_parameters.codecs, &t.codec)) else {
                        continue;
                    };
                    out.pt = Some((id, pt));
                    pt
                }
            };
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: pkt.header.marker,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc: out.ssrc,
                    ..Default::default()
                },
                payload: pkt.payload.clone(),
            };
            let Some(mut sender) = pc.rtc.rtp_sender(out.sender) else { continue };
            match sender.write_rtp(now, packet) {
                Ok(()) => forwarded += 1,
                Err(e) => tracing::trace!("write_rtp: {e}"),
            }
            mark(dirty, skey, pc);
        }
        if forwarded > 0 {
            counters.forwarded.fetch_add(forwarded, std::sync::atomic::Ordering::Relaxed);
        }
        let room_participant = level.map(|l| (t.room.clone(), t.participant.clone(), l));
        if want_key {
            self.request_keyframe(id, now);
        } else if awaiting {
            self.poll_deferred_keyframe(id, now);
        }
        if let Some((room, participant, level)) = room_participant
            && let Some(speaker) = self.rooms.get_mut(&room).and_then(|r| r.handle_audio_level(&participant, level, now))
        {
            self.room_changed(&room, super::session::RoomChange::Speaker(speaker), now);
        }
    }

    /// RTCP from a subscriber: keyframe requests and receiver reports, by SSRC of our tracks.
    pub(super) fn handle_subscriber_message(&mut self, key: PcKey, m: TaggedRTCMessage, now: Instant) {
        let RTCMessage::RtcpPacket(_, packets) = m.message else { return };
        let mut keyframes: Vec<TrackId> = Vec::new();
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        for p in packets {
            let any = p.as_any();
            let media: Vec<u32> = if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                vec![pli.media_ssrc]
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                fir.fir.iter().map(|e| e.ssrc).chain([fir.media_ssrc]).collect()
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                for r in &rr.reports {
                    if let Some(o) = pc.outs.iter_mut().flatten().find(|o| o.ssrc == r.ssrc)
                        && o.fwd.handle_loss(r.fraction_lost)
                        && let Some(src) = o.fwd.source()
                    {
                        keyframes.push(src);
                    }
                }
                continue;
            } else {
                continue;
            };
            self.counters.keyframe_requests_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(o) = pc.outs.iter().flatten().find(|o| media.contains(&o.ssrc))
                && o.fwd.handle_keyframe_request()
                && let Some(src) = o.fwd.source()
            {
                keyframes.push(src);
            }
        }
        keyframes.dedup();
        for t in keyframes {
            self.request_keyframe(t, now);
        }
    }

    /// Ask the publisher for a keyframe of `id` (all layers), throttled per track.
    pub(super) fn request_keyframe(&mut self, id: TrackId, now: Instant) {
        let Some(t) = self.tracks.get_mut(&id) else { return };
        if t.kind == MediaKind::Video && t.pli.handle_request(now) {
            self.send_pli(id, now);
        }
    }

    fn poll_deferred_keyframe(&mut self, id: TrackId, now: Instant) {
        let Some(t) = self.tracks.get_mut(&id) else { return };
        if t.kind == MediaKind::Video && t.pli.poll_due(now) {
            self.send_pli(id, now);
        }
    }

    fn send_pli(&mut self, id: TrackId, now: Instant) {
        let Some(t) = self.tracks.get(&id) else { return };
        let packets: Vec<Box<dyn rtc::rtcp::Packet>> = t
            .layers
            .iter()
            .map(|&(media_ssrc, _)| Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc }) as Box<dyn rtc::rtcp::Packet>)
            .collect();
        let (pck, receiver) = (t.pc, t.receiver);
        let Some(pc) = self.pcs.get_mut(&pck) else { return };
        if let Some(mut r) = pc.rtc.rtp_receiver(receiver)
            && let Err(e) = r.write_rtcp(now, packets)
        {
            tracing::debug!("PLI for track {}: {e}", id.0);
        }
        mark(&mut self.dirty, pck, pc);
    }

    /// The floor changed for `participant` in `room`: mirror the gates into their tracks.
    pub(super) fn apply_gates(&mut self, room: &str, participant: &str) {
        let Some(r) = self.rooms.get(room) else { return };
        let g = r.gates(participant);
        for id in &r.tracks {
            if let Some(t) = self.tracks.get_mut(id)
                && t.participant == participant
            {
                t.gate = if t.kind == MediaKind::Audio { g.audio } else { g.video };
            }
        }
    }

    /// The public gate changed for `participant` in `room`: mirror it into their tracks, tell
    /// the taps (added / removed) and re-choose every viewer's slots.
    pub(super) fn apply_public(&mut self, room: &str, participant: &str, now: Instant) {
        let Some(r) = self.rooms.get(room) else { return };
        let public = r.gates(participant).public;
        let mut changed = Vec::new();
        for id in &r.tracks {
            if let Some(t) = self.tracks.get_mut(id)
                && t.participant == participant
                && t.public != public
            {
                t.public = public;
                changed.push((t.id, t.kind));
            }
        }
        if changed.is_empty() {
            return;
        }
        let events: Vec<StageEvent> = changed
            .iter()
            .filter_map(|&(id, kind)| if public { self.stage_track_added(id) } else { Some(StageEvent::TrackRemoved { track: id, participant: participant.to_owned(), kind }) })
            .collect();
        if let Some(r) = self.rooms.get_mut(room) {
            for tap in r.taps.iter_mut() {
                for &(id, _) in &changed {
                    tap.forget(id);
                }
            }
            r.taps.retain(|tap| events.iter().all(|ev| tap.event(ev.clone())));
        }
        self.reassign_viewers(room, now);
    }

    /// The published tracks of `room`, in publication order: `(id, participant, kind)`.
    pub(super) fn room_tracks(&self, room: &str) -> Vec<(TrackId, String, MediaKind)> {
        self.rooms
            .get(room)
            .map(|r| r.tracks.iter().filter_map(|id| self.tracks.get(id)).map(|t| (t.id, t.participant.clone(), t.kind)).collect())
            .unwrap_or_default()
    }

    /// The codec (and rids) of a published track.
    pub(super) fn track_codec(&self, id: TrackId) -> Option<(RTCRtpCodec, Vec<String>)> {
        self.tracks.get(&id).map(|t| (t.codec.clone(), t.rids.clone()))
    }
}
