//! Websocket media signalling for a room's members: each session owns a [`MediaConn`] (at most
//! one participation in its activity's room); the SFU's events reach the session's inbox.

use shangliang_sfu::{MediaKind, ParticipantHandle, Pc, SfuError, SfuEvent, TrackId};
use shangliang_signaling::media::{
    IceCandidate, MediaErrorCode, MediaEvent, MediaRequest, PcKind, TrackKind,
};
use shangliang_signaling::{ParticipantId, Role, RoomId, ServerMsg, limits::MAX_SDP_BYTES};
use tokio::sync::mpsc;

use super::MediaState;
use crate::server::auth::Claims;
use crate::server::inbox::{Direct, Envelope};

/// One websocket connection's media state: at most one participation.
#[derive(Default)]
pub struct MediaConn {
    joined: Option<Joined>,
}

struct Joined {
    handle: ParticipantHandle,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for MediaConn {
    fn drop(&mut self) {
        // Dropping the handle ends the participation: the SFU closes both connections.
        if let Some(j) = self.joined.take() {
            j.pump.abort();
        }
    }
}

fn media_error(e: SfuError) -> MediaEvent {
    let code = match &e {
        SfuError::InvalidSdp(_) => MediaErrorCode::InvalidSdp,
        SfuError::RoomFull { .. } => MediaErrorCode::RoomFull,
        SfuError::NodeFull { .. }
        | SfuError::NoPorts
        | SfuError::RateLimited
        | SfuError::ActivityRateLimited
        | SfuError::TooManyPending { .. } => MediaErrorCode::NodeFull,
        SfuError::NotAllowed(_) => MediaErrorCode::NotAllowed,
        SfuError::Closed | SfuError::NoSuchSession(_) => MediaErrorCode::Closed,
        SfuError::Timeout(_) | SfuError::WebRtc(_) => MediaErrorCode::Internal,
    };
    MediaEvent::Error {
        code,
        message: e.to_string(),
    }
}

fn err(code: MediaErrorCode, message: &str) -> MediaEvent {
    MediaEvent::Error {
        code,
        message: message.into(),
    }
}

fn pc_kind(p: Pc) -> PcKind {
    match p {
        Pc::Publisher => PcKind::Publisher,
        Pc::Subscriber => PcKind::Subscriber,
    }
}

fn track_kind(k: MediaKind) -> TrackKind {
    match k {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

/// An SFU event as the client sees it (the SFU's participant names become typed ids here).
fn event(ev: SfuEvent) -> MediaEvent {
    match ev {
        SfuEvent::SubscriberOffer { sdp } => MediaEvent::SubscriberOffer { sdp },
        SfuEvent::IceCandidate { which, candidate } => MediaEvent::Ice {
            pc: pc_kind(which),
            candidate: IceCandidate {
                candidate: candidate.candidate,
                sdp_mid: candidate.sdp_mid,
                sdp_mline_index: candidate.sdp_mline_index,
            },
        },
        SfuEvent::TrackPublished {
            participant,
            track,
            kind,
        } => MediaEvent::TrackPublished {
            participant: ParticipantId::from(participant),
            track: track.0,
            kind: track_kind(kind),
        },
        SfuEvent::TrackUnpublished {
            participant,
            track,
            kind,
        } => MediaEvent::TrackUnpublished {
            participant: ParticipantId::from(participant),
            track: track.0,
            kind: track_kind(kind),
        },
        SfuEvent::ActiveSpeaker { participant } => MediaEvent::ActiveSpeaker {
            participant: ParticipantId::from(participant),
        },
        SfuEvent::ConnectionState { which, state } => MediaEvent::ConnectionState {
            pc: pc_kind(which),
            state,
        },
    }
}

/// A banned participant may not join or publish (`forbidden`, saying so).
async fn standing(state: &MediaState, claims: &Claims) -> Result<(), MediaEvent> {
    match state.media.standing(&claims.act, &claims.sub).await {
        Ok(()) => Ok(()),
        Err(super::Standing::Banned) => Err(err(MediaErrorCode::Forbidden, "you are banned from this activity")),
        Err(super::Standing::Unavailable(m)) => Err(err(MediaErrorCode::Internal, &m)),
    }
}

fn sdp_ok(sdp: &str) -> Result<(), MediaEvent> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(err(
            MediaErrorCode::InvalidSdp,
            "the SDP is larger than the limit",
        ));
    }
    Ok(())
}

impl MediaConn {
    /// Serves one request; returns the answer (sent with the request's id).
    pub async fn handle(
        &mut self,
        state: &MediaState,
        claims: &Claims,
        inbox: &mpsc::Sender<Direct>,
        req: MediaRequest,
    ) -> MediaEvent {
        if let MediaRequest::Join = req {
            return self.join(state, claims, inbox).await;
        }
        // A participation the SFU ended (its connection failed) is forgotten here.
        if self.joined.as_ref().is_some_and(|j| j.pump.is_finished()) {
            self.joined = None;
        }
        let Some(j) = self.joined.as_ref() else {
            return match req {
                MediaRequest::Leave => MediaEvent::Left,
                _ => err(MediaErrorCode::NotJoined, "join the room first"),
            };
        };
        let h = &j.handle;
        let r = match req {
            MediaRequest::Join => unreachable!("handled above"),
            MediaRequest::PublishOffer { sdp } => {
                if let Err(e) = sdp_ok(&sdp) {
                    return e;
                }
                if let Err(e) = standing(state, claims).await {
                    return e;
                }
                return h
                    .publish_offer(&sdp)
                    .await
                    .map_or_else(media_error, |sdp| MediaEvent::PublishAnswer { sdp });
            }
            MediaRequest::SubscriberAnswer { sdp } => {
                if let Err(e) = sdp_ok(&sdp) {
                    return e;
                }
                h.subscriber_answer(&sdp).await
            }
            MediaRequest::Ice { pc, candidate } => {
                if candidate.candidate.is_empty() {
                    return MediaEvent::Ok; // end of candidates
                }
                let which = match pc {
                    PcKind::Publisher => Pc::Publisher,
                    PcKind::Subscriber => Pc::Subscriber,
                };
                let c = shangliang_sfu::IceCandidate {
                    candidate: candidate
                        .candidate
                        .strip_prefix("a=")
                        .unwrap_or(&candidate.candidate)
                        .to_owned(),
                    sdp_mid: candidate.sdp_mid,
                    sdp_mline_index: candidate.sdp_mline_index,
                };
                h.add_ice_candidate(which, c).await
            }
            MediaRequest::IceRestart => h.ice_restart().await,
            MediaRequest::SetLayer { track, rid } => h.set_layer(TrackId(track), &rid).await,
            MediaRequest::Leave => {
                self.leave().await;
                return MediaEvent::Left;
            }
        };
        r.map_or_else(media_error, |()| MediaEvent::Ok)
    }

    async fn join(
        &mut self,
        state: &MediaState,
        claims: &Claims,
        inbox: &mpsc::Sender<Direct>,
    ) -> MediaEvent {
        if self.joined.as_ref().is_some_and(|j| !j.pump.is_finished()) {
            return err(
                MediaErrorCode::AlreadyJoined,
                "this connection is in the room already",
            );
        }
        self.joined = None;
        if claims.role == Role::Viewer {
            return err(
                MediaErrorCode::Forbidden,
                "viewers watch the livestream; they do not join rooms",
            );
        }
        match state.record.activity(&claims.act) {
            Ok(Some(_)) => {}
            Ok(None) => return err(MediaErrorCode::NoSuchRoom, "no such activity"),
            Err(e) => return err(MediaErrorCode::Internal, &e.to_string()),
        }
        // Cluster mode: the room lives on the activity's home node.
        if let Some(node) = state.cluster.as_ref().and_then(|c| c.home_elsewhere(&claims.act)) {
            metrics::counter!("shangliang_room_redirects_total").increment(1);
            return MediaEvent::Redirect { node };
        }
        if let Err(e) = standing(state, claims).await {
            return e;
        }
        let room = RoomId::of(&claims.act);
        let (handle, mut events) = match state.media.sfu.join(room.as_str(), claims.sub.as_str()).await
        {
            Ok(x) => x,
            Err(e) => return media_error(e),
        };
        let inbox = inbox.clone();
        let pump = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let msg = ServerMsg::Media {
                    id: None,
                    ev: event(ev),
                };
                if inbox.send(Box::new(msg.into())).await.is_err() {
                    return; // the connection is gone
                }
            }
            // The SFU ended the participation (a connection failed or closed).
            let _ = inbox
                .send(Box::new(Envelope::from(ServerMsg::Media {
                    id: None,
                    ev: MediaEvent::Left,
                })))
                .await;
        });
        metrics::counter!("shangliang_room_joins_total").increment(1);
        self.joined = Some(Joined { handle, pump });
        MediaEvent::Joined {
            participant: claims.sub.clone(),
            ice_servers: state.media.ice_servers(claims.sub.as_str()),
        }
    }

    /// Leaves the room (if in one) and waits until the connections are released.
    pub async fn leave(&mut self) {
        if let Some(j) = self.joined.take() {
            j.pump.abort();
            j.handle.leave().await;
        }
    }
}
