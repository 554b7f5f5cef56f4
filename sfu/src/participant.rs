//! A room member: a publisher connection (the client offers) and a subscriber connection (the
//! server offers, renegotiating as tracks come and go). One driver task owns both connections
//! and is fed by the handle's commands, both connections' events and the room's events.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription, RTCSignalingState};
use webrtc::rtp_transceiver::RtpSender;

use crate::forward::{self, FwdCmd, IngestCtx};
use crate::peer::{self, BuiltPc, PcEvent};
use crate::rewrite::rid_rank;
use crate::room::{Room, RoomEvent};
use crate::{IceCandidate, Inner, MediaKind, SessionId, SfuError, SfuEvent, TaskGuard, TrackId};

/// Which of a member's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pc {
    /// The connection the member sends on (client offers).
    Publisher,
    /// The connection the member receives on (server offers).
    Subscriber,
}

type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

enum Cmd {
    PublishOffer(String, Reply<String>),
    SubscriberAnswer(String, Reply<()>),
    AddIce(Pc, IceCandidate, Reply<()>),
    IceRestart(Reply<()>),
    SetLayer(TrackId, String, Reply<()>),
}

/// Signaling handle of one member. Dropping it (or [`leave`](Self::leave)) ends the participation.
pub struct ParticipantHandle {
    id: SessionId,
    participant: String,
    cmds: mpsc::Sender<Cmd>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ParticipantHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParticipantHandle({}, {})", self.id, self.participant)
    }
}

impl ParticipantHandle {
    /// The session id (also accepted by [`crate::Sfu::close_session`]).
    pub fn id(&self) -> SessionId {
        self.id
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(make(tx)).await.map_err(|_| SfuError::Closed)?;
        rx.await.map_err(|_| SfuError::Closed)?
    }

    /// An offer for the publisher connection (first publish or renegotiation); returns the answer.
    pub async fn publish_offer(&self, sdp: &str) -> Result<String, SfuError> {
        self.call(|r| Cmd::PublishOffer(sdp.to_owned(), r)).await
    }

    /// The member's answer to the last [`SfuEvent::SubscriberOffer`].
    pub async fn subscriber_answer(&self, sdp: &str) -> Result<(), SfuError> {
        self.call(|r| Cmd::SubscriberAnswer(sdp.to_owned(), r)).await
    }

    /// A remote (trickled) ICE candidate for one of the connections.
    pub async fn add_ice_candidate(&self, which: Pc, candidate: IceCandidate) -> Result<(), SfuError> {
        self.call(|r| Cmd::AddIce(which, candidate, r)).await
    }

    /// Restart ICE on the subscriber connection (a new offer follows as an event). The publisher
    /// connection is restarted by the client offering with new credentials.
    pub async fn ice_restart(&self) -> Result<(), SfuError> {
        self.call(Cmd::IceRestart).await
    }

    /// Receive `track` at simulcast layer `rid`.
    pub async fn set_layer(&self, track: TrackId, rid: &str) -> Result<(), SfuError> {
        self.call(|r| Cmd::SetLayer(track, rid.to_owned(), r)).await
    }

    /// Leave the room; returns once the connections are closed.
    pub async fn leave(self) {
        let sfu = crate::Sfu { inner: Arc::clone(&self.inner) };
        sfu.close_session(self.id).await;
    }
}

pub(crate) async fn join(inner: Arc<Inner>, room_name: &str, participant: &str) -> Result<(ParticipantHandle, mpsc::Receiver<SfuEvent>), SfuError> {
    let room = inner.room(room_name);
    let gates = match room.enter(participant, inner.cfg.max_participants_per_room) {
        Ok(g) => g,
        Err(e) => {
            inner.forget_room_if_idle(&room);
            return Err(e);
        }
    };
    let sub = match peer::build_pc(inner.cfg.bind_ip, inner.cfg.announced_ip, &inner.ports, false).await {
        Ok(b) => b,
        Err(e) => {
            room.leave(participant);
            inner.forget_room_if_idle(&room);
            return Err(e);
        }
    };
    inner.counters.pcs.fetch_add(1, Ordering::SeqCst);
    let id = inner.new_session_id();
    let (cmd_tx, cmd_rx) = mpsc::channel(32);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    let (cancel, done) = inner.register(id, None);
    let ctx = IngestCtx {
        room: Arc::clone(&room),
        participant: participant.to_owned(),
        gates,
        audio_level_id: None,
        rids: Vec::new(),
        counters: Arc::clone(&inner.counters),
        next_track_id: Arc::clone(&inner.next_track_id),
        published: Default::default(),
    };
    let driver = Driver {
        inner: Arc::clone(&inner),
        room,
        ctx,
        events: ev_tx,
        sub,
        sub_connected: Arc::new(AtomicBool::new(false)),
        out: HashMap::new(),
        negotiating: false,
        dirty: false,
        publisher: None,
    };
    tokio::spawn(driver.run(id, cmd_rx, cancel, done));
    let handle = ParticipantHandle { id, participant: participant.to_owned(), cmds: cmd_tx, inner };
    Ok((handle, ev_rx))
}

struct OutTrack {
    ctrl: mpsc::Sender<FwdCmd>,
    sender: Arc<dyn RtpSender>,
    rids: Vec<String>,
}

struct Driver {
    inner: Arc<Inner>,
    room: Arc<Room>,
    ctx: IngestCtx,
    events: mpsc::Sender<SfuEvent>,
    sub: BuiltPc,
    sub_connected: Arc<AtomicBool>,
    out: HashMap<TrackId, OutTrack>,
    negotiating: bool,
    dirty: bool,
    publisher: Option<BuiltPc>,
}

async fn recv_opt(rx: &mut Option<BuiltPc>) -> Option<PcEvent> {
    match rx {
        Some(b) => b.events.recv().await,
        None => std::future::pending().await,
    }
}

fn state_name(s: RTCPeerConnectionState) -> String {
    s.to_string()
}

impl Driver {
    async fn run(mut self, _id: SessionId, mut cmds: mpsc::Receiver<Cmd>, mut cancel: watch::Receiver<bool>, done: watch::Sender<bool>) {
        let _g = TaskGuard::new(&self.inner.counters);
        let mut room_rx = self.room.events.subscribe();
        self.resync().await;
        loop {
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.handle_cmd(c).await,
                    None => break, // handle dropped
                },
                ev = self.sub.events.recv() => match ev {
                    Some(PcEvent::State(s)) => {
                        self.emit(SfuEvent::ConnectionState { which: Pc::Subscriber, state: state_name(s) });
                        match s {
                            RTCPeerConnectionState::Connected => self.sub_connected.store(true, Ordering::SeqCst),
                            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => break,
                            _ => {}
                        }
                    }
                    Some(PcEvent::Candidate(c)) => self.emit(SfuEvent::IceCandidate { which: Pc::Subscriber, candidate: c }),
                    Some(PcEvent::Track(_)) => {}
                    None => break,
                },
                ev = recv_opt(&mut self.publisher) => match ev {
                    Some(PcEvent::State(s)) => {
                        self.emit(SfuEvent::ConnectionState { which: Pc::Publisher, state: state_name(s) });
                        if matches!(s, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                            break;
                        }
                    }
                    Some(PcEvent::Candidate(c)) => self.emit(SfuEvent::IceCandidate { which: Pc::Publisher, candidate: c }),
                    Some(PcEvent::Track(t)) => { tokio::spawn(forward::run_ingest(t, self.ctx.clone())); }
                    None => break,
                },
                r = room_rx.recv() => match r {
                    Ok(RoomEvent::Published { participant, track, kind }) => {
                        if participant != self.ctx.participant {
                            self.emit(SfuEvent::TrackPublished { participant, track, kind });
                        }
                        self.resync().await;
                    }
                    Ok(RoomEvent::Unpublished { participant, track, kind }) => {
                        if participant != self.ctx.participant {
                            self.emit(SfuEvent::TrackUnpublished { participant, track, kind });
                        }
                        self.resync().await;
                    }
                    Ok(RoomEvent::Speaker(participant)) => self.emit(SfuEvent::ActiveSpeaker { participant }),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync().await,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = crate::cancelled(&mut cancel) => break,
            }
        }
        // Cleanup: close both connections (frees sockets and drivers), unpublish, leave.
        self.out.clear();
        self.inner.release_pc(&self.sub.pc, self.sub.port).await;
        if let Some(p) = self.publisher.take() {
            self.inner.release_pc(&p.pc, p.port).await;
        }
        let ids: Vec<TrackId> = self.ctx.published.lock().expect("published").drain(..).collect();
        for t in ids {
            self.room.unpublish(t);
        }
        self.room.leave(&self.ctx.participant);
        self.inner.sessions.lock().expect("sessions").remove(&_id);
        self.inner.forget_room_if_idle(&self.room);
        done.send_replace(true);
    }

    fn emit(&self, ev: SfuEvent) {
        // A member that does not read its events loses them rather than stalling the room.
        let _ = self.events.try_send(ev);
    }

    async fn handle_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::PublishOffer(sdp, reply) => {
                let r = self.publish_offer(&sdp).await;
                let _ = reply.send(r);
            }
            Cmd::SubscriberAnswer(sdp, reply) => {
                let r = self.subscriber_answer(sdp).await;
                let _ = reply.send(r);
                if self.dirty {
                    self.dirty = false;
                    self.resync_and_offer(true).await;
                }
            }
            Cmd::AddIce(which, c, reply) => {
                let pc = match which {
                    Pc::Subscriber => Some(&self.sub.pc),
                    Pc::Publisher => self.publisher.as_ref().map(|p| &p.pc),
                };
                let r = match pc {
                    None => Err(SfuError::NotAllowed("no publisher connection yet".into())),
                    Some(pc) => pc
                        .add_ice_candidate(RTCIceCandidateInit {
                            candidate: c.candidate,
                            sdp_mid: c.sdp_mid,
                            sdp_mline_index: c.sdp_mline_index,
                            ..Default::default()
                        })
                        .await
                        .map_err(SfuError::webrtc),
                };
                let _ = reply.send(r);
            }
            Cmd::IceRestart(reply) => {
                let r = self.sub.pc.restart_ice().await.map_err(SfuError::webrtc);
                if r.is_ok() {
                    if self.negotiating {
                        self.dirty = true;
                    } else {
                        self.offer().await;
                    }
                }
                let _ = reply.send(r);
            }
            Cmd::SetLayer(track, rid, reply) => {
                let r = match self.out.get(&track) {
                    None => Err(SfuError::NotAllowed(format!("not subscribed to track {}", track.0))),
                    Some(o) => {
                        let layer = if o.rids.is_empty() { crate::layer_index(&rid) } else { rid_rank(&rid, &o.rids) };
                        o.ctrl.send(FwdCmd::Layer(layer)).await.map_err(|_| SfuError::Closed)
                    }
                };
                let _ = reply.send(r);
            }
        }
    }

    async fn publish_offer(&mut self, sdp: &str) -> Result<String, SfuError> {
        // On a stage (a tapped room: a livestream) publishers are asked for H.264 first.
        let sdp = &if self.inner.is_stage(&self.room.name) { peer::prefer_h264(sdp) } else { sdp.to_owned() };
        let offer = crate::parse_offer(sdp)?;
        if self.publisher.is_none() {
            let b = peer::build_pc(self.inner.cfg.bind_ip, self.inner.cfg.announced_ip, &self.inner.ports, true).await?;
            self.inner.counters.pcs.fetch_add(1, Ordering::SeqCst);
            self.publisher = Some(b);
        }
        if let Some(id) = peer::extmap_id(sdp, peer::AUDIO_LEVEL_URI) {
            self.ctx.audio_level_id = Some(id);
        }
        let rids = peer::offered_rids(sdp);
        if !rids.is_empty() {
            self.ctx.rids = rids;
        }
        let p = self.publisher.as_mut().expect("publisher");
        // Wait for gathering only on the first negotiation; afterwards candidates are known.
        let r = Inner::answer(&p.pc, &mut p.gathered, offer).await;
        if r.is_err() && self.ctx.published.lock().expect("published").is_empty() {
            // A failed first offer leaves nothing worth keeping.
            if let Some(p) = self.publisher.take() {
                self.inner.release_pc(&p.pc, p.port).await;
            }
        }
        r
    }

    async fn subscriber_answer(&mut self, sdp: String) -> Result<(), SfuError> {
        if !self.negotiating {
            return Err(SfuError::NotAllowed("no subscriber offer is outstanding".into()));
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        self.sub.pc.set_remote_description(answer).await.map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        self.negotiating = false;
        Ok(())
    }

    async fn resync(&mut self) {
        self.resync_and_offer(false).await;
    }

    /// Make the subscriber connection carry exactly the other participants' tracks, and offer
    /// if that changed something (or `force`).
    async fn resync_and_offer(&mut self, force: bool) {
        let wanted: Vec<_> = self.room.tracks().into_iter().filter(|t| t.participant != self.ctx.participant).collect();
        let mut changed = false;
        let gone: Vec<TrackId> = self.out.keys().filter(|id| !wanted.iter().any(|t| t.id == **id)).copied().collect();
        for id in gone {
            if let Some(o) = self.out.remove(&id) {
                let _ = self.sub.pc.remove_track(&o.sender).await;
                changed = true;
            }
        }
        for t in wanted {
            if self.out.contains_key(&t.id) {
                continue;
            }
            let label = format!("{}-{}", t.participant, t.id.0);
            match self.inner.add_outgoing(&self.sub.pc, t.kind, t.codec.clone(), &self.sub_connected, &label).await {
                Ok((ctrl, sender)) => {
                    let _ = ctrl.send(FwdCmd::Source(Some(Arc::clone(&t)))).await;
                    let rids = if t.kind == MediaKind::Video { rids_of(&t) } else { Vec::new() };
                    self.out.insert(t.id, OutTrack { ctrl, sender, rids });
                    changed = true;
                }
                Err(e) => tracing::warn!("cannot add outgoing track {}: {e}", t.id.0),
            }
        }
        if changed || force {
            if self.negotiating || self.sub.pc.signaling_state_hint().await != RTCSignalingState::Stable {
                self.dirty = true;
            } else {
                self.offer().await;
            }
        }
    }

    async fn offer(&mut self) {
        let pc = &self.sub.pc;
        let r = async {
            let offer = pc.create_offer(None).await.map_err(SfuError::webrtc)?;
            pc.set_local_description(offer).await.map_err(SfuError::webrtc)?;
            let gathered = *self.sub.gathered.borrow();
            if !gathered {
                peer::wait_gathered(&mut self.sub.gathered).await?;
            }
            pc.local_description().await.map(|d| d.sdp).ok_or(SfuError::Closed)
        }
        .await;
        match r {
            Ok(sdp) => {
                self.negotiating = true;
                self.emit(SfuEvent::SubscriberOffer { sdp });
            }
            Err(e) => tracing::warn!("subscriber offer failed: {e}"),
        }
    }
}

fn rids_of(t: &crate::room::PublishedTrack) -> Vec<String> {
    t.rids.clone()
}

/// Signaling state without a dedicated getter: derived from the pending descriptions.
#[async_trait::async_trait]
trait SignalingHint {
    async fn signaling_state_hint(&self) -> RTCSignalingState;
}

#[async_trait::async_trait]
impl SignalingHint for Arc<dyn PeerConnection> {
    async fn signaling_state_hint(&self) -> RTCSignalingState {
        if self.pending_local_description().await.is_some() {
            RTCSignalingState::HaveLocalOffer
        } else if self.pending_remote_description().await.is_some() {
            RTCSignalingState::HaveRemoteOffer
        } else {
            RTCSignalingState::Stable
        }
    }
}
