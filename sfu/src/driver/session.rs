//! Sessions inside the driver: WHEP viewers, WHIP ingests and room members, their signaling,
//! how they follow their room, and how they end.
//!
//! ```text
//! whep:  pc (outgoing audio/video slots) ─ offer ─ answer ─ slots follow the stage
//! whip:  pc (incoming tracks) ─ offer ─ answer ─ OnTrack → published in the room
//! join:  subscriber pc (server offers; resync on every room change) + publisher pc (client
//!        offers, created with the first publish_offer)
//! close: every pc closed (DTLS close_notify sent), tracks unpublished, room left
//! ```

use std::collections::HashMap;
use std::time::Instant;

use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::mpsc;

use super::media::default_codec;
use super::room::Room;
use super::{Cmd, Driver, MemberCmd, PcKey, Reply, Role};
use crate::rewrite::rid_rank;
use crate::tap::{StageEvent, TapSink};
use crate::{MediaKind, Pc, SessionId, SfuError, SfuEvent, TrackId};

/// Simulcast layer a new subscriber starts on (the highest the publisher sends).
const INITIAL_LAYER: usize = 2;

pub(crate) enum Session {
    Viewer(Viewer),
    Ingest(Ingest),
    Member(Member),
}

pub(crate) struct Viewer {
    room: String,
    pc: PcKey,
    /// Admitted, its connection not up yet.
    pending: bool,
    /// Outgoing track indices and their kinds, in m-line order.
    slots: Vec<(usize, MediaKind)>,
}

pub(crate) struct Ingest {
    room: String,
    participant: String,
    pc: PcKey,
}

pub(crate) struct Member {
    room: String,
    participant: String,
    sub: PcKey,
    publ: Option<PcKey>,
    events: mpsc::Sender<SfuEvent>,
    /// Published track → outgoing track index on `sub`.
    out: HashMap<TrackId, usize>,
    /// A subscriber offer is outstanding.
    negotiating: bool,
    /// The subscriber connection changed while an offer was outstanding: offer again after.
    dirty: bool,
}

impl Member {
    fn emit(&self, ev: SfuEvent) {
        // A member that does not read its events loses them rather than stalling the node.
        let _ = self.events.try_send(ev);
    }
}

impl Session {
    fn room(&self) -> &str {
        match self {
            Session::Viewer(v) => &v.room,
            Session::Ingest(i) => &i.room,
            Session::Member(m) => &m.room,
        }
    }

    /// `(room, participant)` when this session publishes.
    pub(super) fn publisher_of(&self) -> Option<(String, String)> {
        match self {
            Session::Viewer(_) => None,
            Session::Ingest(i) => Some((i.room.clone(), i.participant.clone())),
            Session::Member(m) => Some((m.room.clone(), m.participant.clone())),
        }
    }

    fn pcs(&self) -> Vec<PcKey> {
        match self {
            Session::Viewer(v) => vec![v.pc],
            Session::Ingest(i) => vec![i.pc],
            Session::Member(m) => std::iter::once(m.sub).chain(m.publ).collect(),
        }
    }
}

/// What changed in a room; its sessions re-read the room on each.
pub(super) enum RoomChange {
    Published { participant: String, track: TrackId, kind: MediaKind },
    Unpublished { participant: String, track: TrackId, kind: MediaKind },
    Speaker(String),
}

impl Driver {
    pub(super) fn handle_cmd(&mut self, c: Cmd) {
        let now = Instant::now();
        // Gauges are updated before a reply goes out, so a caller reads its own change.
        match c {
            Cmd::Whep { room, offer, kinds, from, reply } => {
                let r = self.whep(&room, offer, kinds, from, now);
                self.update_gauges();
                let _ = reply.send(r);
            }
            Cmd::Whip { room, participant, offer, reply } => {
                let r = self.whip(&room, &participant, offer, now);
                self.update_gauges();
                let _ = reply.send(r);
            }
            Cmd::Join { room, participant, events, reply } => {
                let r = self.join(&room, &participant, events, now);
                self.update_gauges();
                let _ = reply.send(r);
            }
            Cmd::Member { id, cmd } => self.member_cmd(id, cmd, now),
            Cmd::Close { id, reply } => {
                let known = self.sessions.contains_key(&id);
                if known {
                    self.close_session(id, "closed");
                }
                self.update_gauges();
                let _ = reply.send(Ok(known));
            }
            Cmd::ViewerLayer { id, layer, reply } => {
                let r = match self.sessions.get(&id) {
                    None => Err(SfuError::NoSuchSession(id)),
                    Some(Session::Viewer(v)) => {
                        let (pc, slots) = (v.pc, v.slots.clone());
                        for (idx, kind) in slots {
                            if kind == MediaKind::Video {
                                self.set_target_layer(pc, idx, layer, now);
                            }
                        }
                        Ok(())
                    }
                    Some(_) => Err(SfuError::NotAllowed("not a viewer session".into())),
                };
                let _ = reply.send(r);
            }
            Cmd::TapOpen { room, sink } => self.open_tap(&room, sink),
            Cmd::TapClose { room, id } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.taps.retain(|t| t.id != id);
                }
                self.forget_room_if_idle(&room);
            }
            Cmd::KeyframeFor { room, participant, reply } => {
                let cameras: Vec<TrackId> =
                    self.room_tracks(&room).into_iter().filter(|t| t.1 == participant && t.2 == MediaKind::Video).map(|t| t.0).collect();
                for t in &cameras {
                    self.request_keyframe(*t, now);
                }
                let _ = reply.send(Ok(!cameras.is_empty()));
            }
            Cmd::Evict { room, participant } => {
                let theirs: Vec<SessionId> =
                    self.sessions.iter().filter(|(_, s)| s.publisher_of().is_some_and(|(r, p)| r == room && p == participant)).map(|(id, _)| *id).collect();
                for id in theirs {
                    self.close_session(id, "evicted");
                }
            }
            Cmd::Public { room, participant, public } => {
                let r = self.rooms.entry(room.clone()).or_default();
                r.participants.entry(participant.clone()).or_default().public = public;
                self.apply_public(&room, &participant, now);
                self.forget_room_if_idle(&room);
            }
            Cmd::Floor { room, participant, audio, video } => {
                let r = self.rooms.entry(room.clone()).or_default();
                let p = r.participants.entry(participant.clone()).or_default();
                p.audio = audio;
                p.video = video;
                self.apply_gates(&room, &participant);
                self.forget_room_if_idle(&room);
            }
        }
        self.update_gauges();
    }

    fn new_session_id(&mut self) -> SessionId {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        id
    }

    /// A tap opens on `room`: it is told of the tracks already there and the current speaker.
    fn open_tap(&mut self, room: &str, sink: TapSink) {
        let added: Vec<StageEvent> = self.room_tracks(room).into_iter().filter_map(|(id, _, _)| self.stage_track_added(id)).collect();
        let r = self.rooms.entry(room.to_owned()).or_default();
        let mut ok = added.into_iter().all(|ev| sink.event(ev));
        if let Some(participant) = r.speaker.clone() {
            ok &= sink.event(StageEvent::ActiveSpeaker { participant });
        }
        if ok {
            r.taps.push(sink);
        }
        self.forget_room_if_idle(room);
    }

    fn forget_room_if_idle(&mut self, room: &str) {
        if self.rooms.get(room).is_some_and(Room::is_idle) {
            self.rooms.remove(room);
        }
    }

    /// Apply a remote offer on `key` and produce the answer.
    fn answer(&mut self, key: PcKey, offer: String, now: Instant) -> Result<String, SfuError> {
        let pc = self.pcs.get_mut(&key).ok_or(SfuError::Closed)?;
        let offer = RTCSessionDescription::offer(offer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let sdp = super::contain(|| {
            pc.rtc.set_remote_description(now, offer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
            let answer = pc.rtc.create_answer(None).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
            pc.rtc.set_local_description(now, answer).map_err(SfuError::webrtc)?;
            pc.rtc.local_description().map(|d| d.sdp).ok_or(SfuError::Closed)
        })
        .unwrap_or_else(|| {
            self.poisoned.push(key);
            Err(SfuError::InvalidSdp("the offer could not be applied".into()))
        })?;
        self.negotiated(key, now);
        Ok(sdp)
    }

    fn whep(&mut self, room: &str, offer: String, kinds: Vec<MediaKind>, from: Option<std::net::IpAddr>, now: Instant) -> Result<(SessionId, String), SfuError> {
        use std::sync::atomic::Ordering;
        if let Some(ip) = from
            && !self.limiter.check(ip, now)
        {
            self.counters.refused_rate_limited.fetch_add(1, Ordering::Relaxed);
            self.refused("rate_limited", now);
            return Err(SfuError::RateLimited);
        }
        // Then the activity's allowance, which an address past its own limit does not spend.
        if from.is_some() && !self.activity_limiter.check(&room.to_owned(), now) {
            self.counters.refused_activity_rate_limited.fetch_add(1, Ordering::Relaxed);
            self.refused("activity_rate_limited", now);
            return Err(SfuError::ActivityRateLimited);
        }
        // Connected viewers against the node's limit; pending ones against their own.
        let max = self.cfg.max_viewers_per_node;
        if self.viewers - self.pending_viewers >= max {
            self.counters.refused_node_full.fetch_add(1, Ordering::Relaxed);
            self.refused("node_full", now);
            return Err(SfuError::NodeFull { max });
        }
        let max = self.cfg.max_pending_viewers;
        if self.pending_viewers >= max {
            self.counters.refused_pending.fetch_add(1, Ordering::Relaxed);
            self.refused("pending_full", now);
            return Err(SfuError::TooManyPending { max });
        }
        let id = self.new_session_id();
        let key = self.new_pc(id, Role::Viewer, now)?;
        let tracks = self.room_tracks(room);
        let result = (|| {
            let mut slots = Vec::new();
            for (i, kind) in kinds.iter().enumerate() {
                let codec = tracks.iter().find(|t| t.2 == *kind).and_then(|t| self.track_codec(t.0)).map_or_else(|| default_codec(*kind), |c| c.0);
                let idx = self.add_outgoing(key, *kind, codec, &format!("{id}-{i}"), INITIAL_LAYER, true)?;
                slots.push((idx, *kind));
            }
            let answer = self.answer(key, offer, now)?;
            self.tracks_negotiated(key, false, now);
            Ok::<_, SfuError>((slots, answer))
        })();
        let (slots, answer) = match result {
            Ok(x) => x,
            Err(e) => {
                self.close_pc(key);
                return Err(e);
            }
        };
        self.viewers += 1;
        self.pending_viewers += 1;
        let r = self.rooms.entry(room.to_owned()).or_default();
        r.viewers += 1;
        r.sessions.push(id);
        self.sessions.insert(id, Session::Viewer(Viewer { room: room.to_owned(), pc: key, pending: true, slots }));
        self.assign_viewer_slots(id, now);
        Ok((id, answer))
    }

    fn whip(&mut self, room: &str, participant: &str, offer: String, now: Instant) -> Result<(SessionId, String), SfuError> {
        // WHIP is ingest onto a stage: ask for H.264, which the programme packages as is.
        let offer = crate::peer::prefer_h264(&offer);
        let max = self.cfg.max_participants_per_room;
        self.rooms.entry(room.to_owned()).or_default().enter(room, participant, max).inspect_err(|_| self.forget_room_if_idle(room))?;
        let id = self.new_session_id();
        let key = match self.new_pc(id, Role::Ingest, now) {
            Ok(k) => k,
            Err(e) => {
                self.leave_room(room, participant);
                return Err(e);
            }
        };
        self.configure_ingest(key, &offer);
        // Registered before answering: the tracks open only after ICE/DTLS, but keep it simple.
        self.sessions.insert(id, Session::Ingest(Ingest { room: room.to_owned(), participant: participant.to_owned(), pc: key }));
        match self.answer(key, offer, now) {
            Ok(answer) => Ok((id, answer)),
            Err(e) => {
                self.close_session(id, "invalid offer");
                Err(e)
            }
        }
    }

    fn configure_ingest(&mut self, key: PcKey, offer: &str) {
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        if let Some(id) = crate::peer::extmap_id(offer, crate::peer::AUDIO_LEVEL_URI) {
            pc.audio_level_id = Some(id);
        }
        let rids = crate::peer::offered_rids(offer);
        if !rids.is_empty() {
            pc.rids = rids;
        }
    }

    fn join(&mut self, room: &str, participant: &str, events: mpsc::Sender<SfuEvent>, now: Instant) -> Result<SessionId, SfuError> {
        let max = self.cfg.max_participants_per_room;
        self.rooms.entry(room.to_owned()).or_default().enter(room, participant, max).inspect_err(|_| self.forget_room_if_idle(room))?;
        let id = self.new_session_id();
        let sub = match self.new_pc(id, Role::MemberSubscriber, now) {
            Ok(k) => k,
            Err(e) => {
                self.leave_room(room, participant);
                return Err(e);
            }
        };
        let m = Member {
            room: room.to_owned(),
            participant: participant.to_owned(),
            sub,
            publ: None,
            events,
            out: HashMap::new(),
            negotiating: false,
            dirty: false,
        };
        self.sessions.insert(id, Session::Member(m));
        if let Some(r) = self.rooms.get_mut(room) {
            r.sessions.push(id);
        }
        self.resync_member(id, false, now);
        Ok(id)
    }

    fn leave_room(&mut self, room: &str, participant: &str) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.leave(participant);
        }
        self.forget_room_if_idle(room);
    }

    fn member_cmd(&mut self, id: SessionId, cmd: MemberCmd, now: Instant) {
        fn no_session<T>(reply: Reply<T>) {
            let _ = reply.send(Err(SfuError::Closed));
        }
        if !matches!(self.sessions.get(&id), Some(Session::Member(_))) {
            match cmd {
                MemberCmd::PublishOffer(_, r) => no_session(r),
                MemberCmd::SubscriberAnswer(_, r) | MemberCmd::AddIce(_, _, r) | MemberCmd::IceRestart(r) | MemberCmd::SetLayer(_, _, r) => no_session(r),
            }
            return;
        }
        match cmd {
            MemberCmd::PublishOffer(sdp, reply) => {
                let _ = reply.send(self.publish_offer(id, sdp, now));
            }
            MemberCmd::SubscriberAnswer(sdp, reply) => {
                let r = self.subscriber_answer(id, sdp, now);
                let _ = reply.send(r);
                if let Some(Session::Member(m)) = self.sessions.get_mut(&id)
                    && std::mem::take(&mut m.dirty)
                {
                    self.resync_member(id, true, now);
                }
            }
            MemberCmd::AddIce(which, c, reply) => {
                let _ = reply.send(self.add_ice(id, which, c));
            }
            MemberCmd::IceRestart(reply) => {
                let Some(Session::Member(m)) = self.sessions.get_mut(&id) else { return };
                let sub = m.sub;
                if let Some(pc) = self.pcs.get_mut(&sub) {
                    pc.rtc.restart_ice();
                }
                if m.negotiating {
                    m.dirty = true;
                } else {
                    self.offer(id, now);
                }
                let _ = reply.send(Ok(()));
            }
            MemberCmd::SetLayer(track, rid, reply) => {
                let r = match self.sessions.get(&id) {
                    Some(Session::Member(m)) => match m.out.get(&track) {
                        None => Err(SfuError::NotAllowed(format!("not subscribed to track {}", track.0))),
                        Some(&idx) => {
                            let rids = self.track_codec(track).map(|c| c.1).unwrap_or_default();
                            let layer = if rids.is_empty() { crate::layer_index(&rid) } else { rid_rank(&rid, &rids) };
                            let sub = m.sub;
                            self.set_target_layer(sub, idx, layer, now);
                            Ok(())
                        }
                    },
                    _ => Err(SfuError::Closed),
                };
                let _ = reply.send(r);
            }
        }
    }

    fn set_target_layer(&mut self, key: PcKey, idx: usize, layer: usize, now: Instant) {
        let ask = self.pcs.get_mut(&key).and_then(|pc| pc.outs.get_mut(idx)).and_then(|o| o.as_mut()).map(|o| (o.fwd.handle_target_layer(layer), o.fwd.source()));
        if let Some((true, Some(src))) = ask {
            self.request_keyframe(src, now);
        }
    }

    fn publish_offer(&mut self, id: SessionId, sdp: String, now: Instant) -> Result<String, SfuError> {
        let Some(Session::Member(m)) = self.sessions.get(&id) else { return Err(SfuError::Closed) };
        // On a stage (a tapped room: a livestream) publishers are asked for H.264 first.
        let sdp = if self.rooms.get(&m.room).is_some_and(|r| !r.taps.is_empty()) { crate::peer::prefer_h264(&sdp) } else { sdp };
        let key = match m.publ {
            Some(k) => k,
            None => {
                let k = self.new_pc(id, Role::MemberPublisher, now)?;
                if let Some(Session::Member(m)) = self.sessions.get_mut(&id) {
                    m.publ = Some(k);
                }
                k
            }
        };
        self.configure_ingest(key, &sdp);
        let r = self.answer(key, sdp, now);
        if r.is_err() && self.pcs.get(&key).is_some_and(|pc| pc.ins.is_empty() && !pc.connected) {
            // A failed first offer leaves nothing worth keeping.
            self.close_pc(key);
            if let Some(Session::Member(m)) = self.sessions.get_mut(&id) {
                m.publ = None;
            }
        }
        r
    }

    fn subscriber_answer(&mut self, id: SessionId, sdp: String, now: Instant) -> Result<(), SfuError> {
        let Some(Session::Member(m)) = self.sessions.get_mut(&id) else { return Err(SfuError::Closed) };
        if !m.negotiating {
            return Err(SfuError::NotAllowed("no subscriber offer is outstanding".into()));
        }
        let sub = m.sub;
        let answer = RTCSessionDescription::answer(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let pc = self.pcs.get_mut(&sub).ok_or(SfuError::Closed)?;
        super::contain(|| pc.rtc.set_remote_description(now, answer))
            .unwrap_or_else(|| {
                self.poisoned.push(sub);
                Err(rtc::shared::error::Error::Other("panicked".into()))
            })
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        m.negotiating = false;
        self.negotiated(sub, now);
        self.tracks_negotiated(sub, true, now);
        Ok(())
    }

    fn add_ice(&mut self, id: SessionId, which: Pc, c: crate::IceCandidate) -> Result<(), SfuError> {
        let Some(Session::Member(m)) = self.sessions.get(&id) else { return Err(SfuError::Closed) };
        let key = match which {
            Pc::Subscriber => m.sub,
            Pc::Publisher => m.publ.ok_or_else(|| SfuError::NotAllowed("no publisher connection yet".into()))?,
        };
        let pc = self.pcs.get_mut(&key).ok_or(SfuError::Closed)?;
        // mDNS names cannot be resolved here (mDNS is off); the lite agent learns the address
        // from the member's own checks (a peer-reflexive candidate).
        if c.candidate.split_whitespace().nth(4).is_some_and(|addr| addr.ends_with(".local")) || pc.rtc.remote_description().is_none() {
            return Ok(());
        }
        pc.rtc
            .add_remote_candidate(RTCIceCandidateInit { candidate: c.candidate, sdp_mid: c.sdp_mid, sdp_mline_index: c.sdp_mline_index, ..Default::default() })
            .map_err(SfuError::webrtc)
    }

    /// Make the member's subscriber connection carry exactly the other participants' tracks, and
    /// offer if that changed something (or `force`).
    fn resync_member(&mut self, id: SessionId, force: bool, now: Instant) {
        let Some(Session::Member(m)) = self.sessions.get(&id) else { return };
        let (room, me, sub) = (m.room.clone(), m.participant.clone(), m.sub);
        let wanted: Vec<(TrackId, String, MediaKind)> = self.room_tracks(&room).into_iter().filter(|t| t.1 != me).collect();
        let gone: Vec<(TrackId, usize)> = m.out.iter().filter(|(t, _)| !wanted.iter().any(|w| w.0 == **t)).map(|(t, i)| (*t, *i)).collect();
        let mut changed = false;
        for (track, idx) in gone {
            self.set_source(sub, idx, None, now);
            if let Some(pc) = self.pcs.get_mut(&sub)
                && let Some(o) = pc.outs.get_mut(idx).and_then(Option::take)
                && let Err(e) = pc.rtc.remove_track(o.sender)
            {
                tracing::debug!("remove_track: {e}");
            }
            if let Some(Session::Member(m)) = self.sessions.get_mut(&id) {
                m.out.remove(&track);
            }
            changed = true;
        }
        for (track, participant, kind) in wanted {
            if matches!(self.sessions.get(&id), Some(Session::Member(m)) if m.out.contains_key(&track)) {
                continue;
            }
            let Some((codec, _)) = self.track_codec(track) else { continue };
            match self.add_outgoing(sub, kind, codec, &format!("{participant}-{}", track.0), INITIAL_LAYER, false) {
                Ok(idx) => {
                    self.set_source(sub, idx, Some(track), now);
                    if let Some(Session::Member(m)) = self.sessions.get_mut(&id) {
                        m.out.insert(track, idx);
                    }
                    changed = true;
                }
                Err(e) => tracing::warn!("cannot add outgoing track {}: {e}", track.0),
            }
        }
        if changed || force {
            let busy = self.pcs.get(&sub).is_some_and(|pc| pc.rtc.pending_local_description().is_some() || pc.rtc.pending_remote_description().is_some());
            let Some(Session::Member(m)) = self.sessions.get_mut(&id) else { return };
            if m.negotiating || busy {
                m.dirty = true;
            } else {
                self.offer(id, now);
            }
        }
    }

    /// A new offer on the member's subscriber connection.
    fn offer(&mut self, id: SessionId, now: Instant) {
        let Some(Session::Member(m)) = self.sessions.get(&id) else { return };
        let sub = m.sub;
        let Some(pc) = self.pcs.get_mut(&sub) else { return };
        for o in pc.outs.iter_mut().flatten() {
            o.offered = true;
        }
        let r = (|| {
            let offer = pc.rtc.create_offer(None).map_err(SfuError::webrtc)?;
            pc.rtc.set_local_description(now, offer).map_err(SfuError::webrtc)?;
            pc.rtc.local_description().map(|d| d.sdp).ok_or(SfuError::Closed)
        })();
        match r {
            Ok(sdp) => {
                self.negotiated(sub, now);
                if let Some(Session::Member(m)) = self.sessions.get_mut(&id) {
                    m.negotiating = true;
                    m.emit(SfuEvent::SubscriberOffer { sdp });
                }
            }
            Err(e) => tracing::warn!("subscriber offer failed: {e}"),
        }
    }

    /// Re-choose the slots of every viewer of `room` (after its public gates changed).
    pub(super) fn reassign_viewers(&mut self, room: &str, now: Instant) {
        let ids: Vec<SessionId> = self.rooms.get(room).map(|r| r.sessions.clone()).unwrap_or_default();
        for id in ids {
            if matches!(self.sessions.get(&id), Some(Session::Viewer(_))) {
                self.assign_viewer_slots(id, now);
            }
        }
    }

    /// Pick the source for each viewer slot: per kind, the active speaker's tracks first, then in
    /// publication order.
    fn assign_viewer_slots(&mut self, id: SessionId, now: Instant) {
        let Some(Session::Viewer(v)) = self.sessions.get(&id) else { return };
        let (pc, slots, room) = (v.pc, v.slots.clone(), v.room.clone());
        let speaker = self.rooms.get(&room).and_then(|r| r.speaker.clone());
        // Only public tracks (a livestream's stage gate, `Sfu::set_public`) reach a viewer.
        let tracks: Vec<_> = self.room_tracks(&room).into_iter().filter(|t| self.tracks.get(&t.0).is_some_and(|p| p.public)).collect();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let mut cands: Vec<&(TrackId, String, MediaKind)> = tracks.iter().filter(|t| t.2 == kind).collect();
            cands.sort_by_key(|t| Some(&t.1) != speaker.as_ref());
            let mut cands = cands.into_iter();
            for &(idx, _) in slots.iter().filter(|s| s.1 == kind) {
                let next = cands.next().map(|t| t.0);
                self.set_source(pc, idx, next, now);
            }
        }
    }

    /// Tell the room's sessions what changed.
    pub(super) fn room_changed(&mut self, room: &str, change: RoomChange, now: Instant) {
        if let Some(r) = self.rooms.get_mut(room) {
            let ev = match &change {
                RoomChange::Speaker(p) => Some(StageEvent::ActiveSpeaker { participant: p.clone() }),
                RoomChange::Unpublished { participant, track, kind } => {
                    Some(StageEvent::TrackRemoved { track: *track, participant: participant.clone(), kind: *kind })
                }
                RoomChange::Published { .. } => None, // announced with its codec by `handle_track_open`
            };
            if let RoomChange::Unpublished { track, .. } = &change {
                for t in r.taps.iter_mut() {
                    t.forget(*track);
                }
            }
            if let Some(ev) = ev {
                r.taps.retain(|t| t.event(ev.clone()));
            }
        }
        let ids: Vec<SessionId> = self.rooms.get(room).map(|r| r.sessions.clone()).unwrap_or_default();
        for id in ids {
            match self.sessions.get(&id) {
                Some(Session::Viewer(_)) => self.assign_viewer_slots(id, now),
                Some(Session::Member(m)) => {
                    let ev = match &change {
                        RoomChange::Published { participant, track, kind } if *participant != m.participant => {
                            Some(SfuEvent::TrackPublished { participant: participant.clone(), track: *track, kind: *kind })
                        }
                        RoomChange::Unpublished { participant, track, kind } if *participant != m.participant => {
                            Some(SfuEvent::TrackUnpublished { participant: participant.clone(), track: *track, kind: *kind })
                        }
                        RoomChange::Speaker(p) => Some(SfuEvent::ActiveSpeaker { participant: p.clone() }),
                        _ => None,
                    };
                    if let Some(ev) = ev {
                        m.emit(ev);
                    }
                    if !matches!(change, RoomChange::Speaker(_)) {
                        self.resync_member(id, false, now);
                    }
                }
                _ => {}
            }
        }
    }

    /// An event of connection `key`.
    pub(super) fn handle_pc_event(&mut self, key: PcKey, ev: RTCPeerConnectionEvent, now: Instant) {
        let Some(pc) = self.pcs.get(&key) else { return };
        let (session, role) = (pc.session, pc.role);
        match ev {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                if let Some(Session::Member(m)) = self.sessions.get(&session) {
                    let which = if role == Role::MemberPublisher { Pc::Publisher } else { Pc::Subscriber };
                    m.emit(SfuEvent::ConnectionState { which, state: state.to_string() });
                }
                match state {
                    RTCPeerConnectionState::Connected => self.handle_connected(key, now),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        tracing::debug!("session {session}: connection {state}");
                        self.close_session(session, "connection ended");
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) if role.receives_media() => self.handle_track_open(key, init, now),
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track)) if role.receives_media() => {
                if let Some(id) = pc.ins.iter().find(|i| i.rtc_track == track).map(|i| i.track) {
                    self.unpublish(id);
                }
            }
            _ => {}
        }
    }

    fn handle_connected(&mut self, key: PcKey, now: Instant) {
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        pc.connected = true;
        pc.deadline = None;
        let session = pc.session;
        if let Some(Session::Viewer(v)) = self.sessions.get_mut(&session)
            && std::mem::take(&mut v.pending)
        {
            self.pending_viewers -= 1;
            if self.viewers - self.pending_viewers > self.cfg.max_viewers_per_node {
                // Others connected first while this one was pending: the node is full now.
                self.counters.refused_node_full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.refused("node_full", now);
                self.close_session(session, "node full");
                return;
            }
            self.update_gauges();
        }
        let Some(pc) = self.pcs.get_mut(&key) else { return };
        // DTLS just completed: whatever keyframe went by before is lost to this subscriber.
        let asks: Vec<TrackId> = pc.outs.iter_mut().flatten().filter(|o| o.ready).filter_map(|o| if o.fwd.handle_connected() { o.fwd.source() } else { None }).collect();
        for t in asks {
            self.request_keyframe(t, now);
        }
    }

    /// End a session: close its connections, unpublish, leave the room.
    pub(super) fn close_session(&mut self, id: SessionId, why: &str) {
        let Some(s) = self.sessions.remove(&id) else { return };
        tracing::debug!("session {id} ends: {why}");
        for key in s.pcs() {
            self.close_pc(key);
        }
        let room = s.room().to_owned();
        if let Some(r) = self.rooms.get_mut(&room) {
            r.sessions.retain(|x| *x != id);
        }
        match &s {
            Session::Viewer(v) => {
                self.viewers -= 1;
                if v.pending {
                    self.pending_viewers -= 1;
                }
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.viewers -= 1;
                }
            }
            Session::Ingest(i) => self.leave_room(&room, &i.participant),
            Session::Member(m) => self.leave_room(&room, &m.participant),
        }
        self.forget_room_if_idle(&room);
        self.update_gauges();
        // A member's event channel closes with the session: its signaling learns it has left.
    }
}
