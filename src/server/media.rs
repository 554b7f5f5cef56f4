//! Media on the wire: the WHIP/WHEP endpoints, websocket media signalling for room members, and
//! the floor hook — all thin shells over `shangliang_sfu::Sfu`.
//!
//! ```text
//! POST   /whep/{activity}            SDP offer → 201 answer, Location /whep/{activity}/{resource}
//! DELETE /whep/{activity}/{resource} closes it
//! POST   /whip/{activity}            Bearer token (member/guest/moderator) + offer → 201 answer
//! DELETE /whip/{activity}/{resource}
//! floor: ConsultDriver → FloorHook::set_forwarding → Sfu::set_forwarding
//! ws  {"t":"media","id","req"}       → MediaConn::handle → {"t":"media","id","ev"}
//!     SfuEvent stream                → pump task → the session's inbox → {"t":"media","ev"}
//! ```
//!
//! Resource ids are `{session}-{mac}`: the mac (keyed SHA-256 with a per-process key) makes them
//! unguessable without keeping a table that would have to be pruned when the SFU closes a
//! session on its own (a vanished viewer).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde_json::json;
use sha2::{Digest, Sha256};
use shangliang_sfu::{
    MediaKind, ParticipantHandle, Pc, SessionId, Sfu, SfuError, SfuEvent, TrackId,
};
use shangliang_signaling::media::{
    IceCandidate, MediaErrorCode, MediaEvent, MediaRequest, PcKind, TrackKind,
};
use shangliang_signaling::{ActivityId, ParticipantId, Role, RoomId, ServerMsg, limits::MAX_SDP_BYTES};
use tokio::sync::mpsc;

use super::Hub;
use super::auth::Claims;
use super::consult::FloorHook;
use super::inbox::Direct;
use crate::record::ActivityKind;

/// The hub's media plane: the SFU node and the key of its resource ids.
pub struct Media {
    /// The SFU node.
    pub sfu: Sfu,
    resource_key: [u8; 32],
}

impl Media {
    /// A media plane over `sfu`.
    pub fn new(sfu: Sfu) -> Self {
        Self {
            sfu,
            resource_key: rand::random(),
        }
    }

    fn mac(&self, kind: &str, activity: &ActivityId, session: SessionId) -> String {
        let mut h = Sha256::new();
        h.update(self.resource_key);
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(activity.as_str().as_bytes());
        h.update([0]);
        h.update(session.0.to_be_bytes());
        hex::encode(&h.finalize()[..12])
    }

    fn resource(&self, kind: &str, activity: &ActivityId, session: SessionId) -> String {
        format!("{}-{}", session.0, self.mac(kind, activity, session))
    }

    fn parse_resource(
        &self,
        kind: &str,
        activity: &ActivityId,
        resource: &str,
    ) -> Option<SessionId> {
        let (n, mac) = resource.split_once('-')?;
        let session = SessionId(n.parse().ok()?);
        (self.mac(kind, activity, session) == mac).then_some(session)
    }

    /// The floor hook the consult driver calls (installed by [`Hub::start`]).
    pub fn floor_hook(&self) -> Arc<dyn FloorHook> {
        Arc::new(SfuFloor(self.sfu.clone()))
    }
}

/// The floor enforced by the SFU: the moderation driver's [`FloorHook`] gates a participant's
/// forwarded audio/video. Participants are named by their token subject in both places.
pub struct SfuFloor(pub Sfu);

impl FloorHook for SfuFloor {
    fn set_forwarding(
        &self,
        activity: &ActivityId,
        participant: &ParticipantId,
        audio: bool,
        video: bool,
    ) {
        self.0
            .set_forwarding(RoomId::of(activity).as_str(), participant.as_str(), audio, video);
    }
}

/// The WHIP/WHEP routes.
pub fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/whep/{activity}", post(whep_post))
        .route("/whep/{activity}/{resource}", delete(whep_delete))
        .route("/whip/{activity}", post(whip_post))
        .route("/whip/{activity}/{resource}", delete(whip_delete))
        .layer(cors())
}

/// WHIP and WHEP are called from pages of other origins (a player embedded elsewhere, or the
/// node a cluster redirects to): any origin may POST an offer and DELETE its resource. Tokens
/// travel in the `Authorization` header, never in cookies, so `*` gives nothing away.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::LOCATION, header::ETAG, header::LINK])
}

/// An HTTP refusal: status and `{"error": code, "message": ...}`.
struct HttpError(StatusCode, &'static str, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(json!({ "error": self.1, "message": self.2 })),
        )
            .into_response()
    }
}

fn sfu_http_error(e: SfuError) -> HttpError {
    match e {
        SfuError::InvalidSdp(m) => HttpError(StatusCode::BAD_REQUEST, "invalid_sdp", m),
        SfuError::NotAllowed(m) => HttpError(StatusCode::BAD_REQUEST, "invalid_sdp", m),
        e @ SfuError::RoomFull { .. } => {
            HttpError(StatusCode::SERVICE_UNAVAILABLE, "room_full", e.to_string())
        }
        e @ SfuError::NodeFull { .. } => {
            HttpError(StatusCode::SERVICE_UNAVAILABLE, "node_full", e.to_string())
        }
        e @ SfuError::NoPorts => {
            HttpError(StatusCode::SERVICE_UNAVAILABLE, "node_full", e.to_string())
        }
        e @ SfuError::Timeout(_) => HttpError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        e => {
            tracing::warn!("sfu: {e}");
            HttpError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

fn activity_of(hub: &Hub, id: &str) -> Result<(ActivityId, ActivityKind), HttpError> {
    let not_found = || {
        HttpError(
            StatusCode::NOT_FOUND,
            "no_such_activity",
            "no such activity".into(),
        )
    };
    let id = ActivityId::new(id).map_err(|_| not_found())?;
    match hub.record.activity(&id) {
        Ok(Some(a)) => Ok((id, a.kind)),
        Ok(None) => Err(not_found()),
        Err(e) => Err(HttpError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
    }
}

/// The bearer token's claims, if it is valid and for `activity`.
fn bearer(hub: &Hub, headers: &HeaderMap, activity: &ActivityId) -> Result<Claims, HttpError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            HttpError(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authorization: Bearer <token> required".into(),
            )
        })?;
    let claims = hub.keys.verify(token.trim()).map_err(|e| {
        HttpError(
            StatusCode::UNAUTHORIZED,
            if e.code() == shangliang_signaling::ErrorCode::TokenExpired {
                "token_expired"
            } else {
                "invalid_token"
            },
            e.to_string(),
        )
    })?;
    if claims.act != *activity {
        return Err(HttpError(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token is for another activity".into(),
        ));
    }
    Ok(claims)
}

/// The SDP offer of a request: `Content-Type: application/sdp`, at most [`MAX_SDP_BYTES`].
async fn sdp_body(headers: &HeaderMap, body: Body) -> Result<String, HttpError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        return Err(HttpError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/sdp".into(),
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_SDP_BYTES)
        .await
        .map_err(|_| {
            HttpError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "sdp_too_large",
                format!("the offer is larger than {MAX_SDP_BYTES} bytes"),
            )
        })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        HttpError(
            StatusCode::BAD_REQUEST,
            "invalid_sdp",
            "the offer is not UTF-8".into(),
        )
    })
}

fn created(location: String, answer: String) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response()
}

/// Cluster mode: the activity's media lives on its home node; the client is sent there with
/// `307 Temporary Redirect` (method and body are kept, as WHIP and WHEP allow).
fn redirect_home(hub: &Hub, kind: &str, activity: &ActivityId) -> Option<Response> {
    let node = hub.cluster.as_ref()?.home_elsewhere(activity)?;
    metrics::counter!("shangliang_media_redirects_total", "kind" => kind.to_owned()).increment(1);
    let location = format!("{}/{kind}/{activity}", node.as_str().trim_end_matches('/'));
    Some(
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
    )
}

/// WHEP: a receive-only viewer of the activity's stage. A livestream is public (no token); a
/// room's media needs a token for that activity (any role).
async fn whep_post(
    State(hub): State<Arc<Hub>>,
    Path(activity): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let (activity, kind) = activity_of(&hub, &activity)?;
    if let Some(r) = redirect_home(&hub, "whep", &activity) {
        return Ok(r);
    }
    if kind == ActivityKind::Room {
        bearer(&hub, &headers, &activity)?;
    }
    let offer = sdp_body(&headers, body).await?;
    let (session, answer) = hub
        .media
        .sfu
        .whep(RoomId::of(&activity).as_str(), &offer)
        .await
        .map_err(sfu_http_error)?;
    metrics::counter!("shangliang_whep_sessions_total").increment(1);
    let location = format!(
        "/whep/{activity}/{}",
        hub.media.resource("whep", &activity, session)
    );
    Ok(created(location, answer))
}

/// WHIP: ingest onto the activity's stage, for members, guests and moderators of it.
async fn whip_post(
    State(hub): State<Arc<Hub>>,
    Path(activity): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let (activity, _) = activity_of(&hub, &activity)?;
    if let Some(r) = redirect_home(&hub, "whip", &activity) {
        return Ok(r);
    }
    let claims = bearer(&hub, &headers, &activity)?;
    if claims.role == Role::Viewer {
        return Err(HttpError(
            StatusCode::FORBIDDEN,
            "forbidden",
            "viewers may not publish".into(),
        ));
    }
    let offer = sdp_body(&headers, body).await?;
    let (session, answer) = hub
        .media
        .sfu
        .whip(RoomId::of(&activity).as_str(), claims.sub.as_str(), &offer)
        .await
        .map_err(sfu_http_error)?;
    metrics::counter!("shangliang_whip_sessions_total").increment(1);
    let location = format!(
        "/whip/{activity}/{}",
        hub.media.resource("whip", &activity, session)
    );
    Ok(created(location, answer))
}

async fn close_resource(
    hub: &Hub,
    kind: &str,
    activity: &str,
    resource: &str,
) -> Result<Response, HttpError> {
    let not_found = || {
        HttpError(
            StatusCode::NOT_FOUND,
            "no_such_session",
            "no such session".into(),
        )
    };
    let activity = ActivityId::new(activity).map_err(|_| not_found())?;
    let session = hub
        .media
        .parse_resource(kind, &activity, resource)
        .ok_or_else(not_found)?;
    if hub.media.sfu.close_session(session).await {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(not_found())
    }
}

async fn whep_delete(
    State(hub): State<Arc<Hub>>,
    Path((activity, resource)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    close_resource(&hub, "whep", &activity, &resource).await
}

async fn whip_delete(
    State(hub): State<Arc<Hub>>,
    Path((activity, resource)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    close_resource(&hub, "whip", &activity, &resource).await
}

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
        SfuError::NodeFull { .. } | SfuError::NoPorts => MediaErrorCode::NodeFull,
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

/// An SFU event as the client sees it.
pub fn event(ev: SfuEvent) -> MediaEvent {
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
    /// Whether this connection is in a room.
    pub fn is_joined(&self) -> bool {
        self.joined.is_some()
    }

    /// Serves one request; returns the answer (sent with the request's id).
    pub async fn handle(
        &mut self,
        hub: &Hub,
        claims: &Claims,
        inbox: &mpsc::Sender<Direct>,
        req: MediaRequest,
    ) -> MediaEvent {
        if let MediaRequest::Join = req {
            return self.join(hub, claims, inbox).await;
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
                self.leave(hub).await;
                return MediaEvent::Left;
            }
        };
        r.map_or_else(media_error, |()| MediaEvent::Ok)
    }

    async fn join(
        &mut self,
        hub: &Hub,
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
        match hub.record.activity(&claims.act) {
            Ok(Some(_)) => {}
            Ok(None) => return err(MediaErrorCode::NoSuchRoom, "no such activity"),
            Err(e) => return err(MediaErrorCode::Internal, &e.to_string()),
        }
        // Cluster mode: the room lives on the activity's home node.
        if let Some(node) = hub.cluster.as_ref().and_then(|c| c.home_elsewhere(&claims.act)) {
            metrics::counter!("shangliang_room_redirects_total").increment(1);
            return MediaEvent::Redirect { node };
        }
        let room = RoomId::of(&claims.act);
        let (handle, mut events) = match hub.media.sfu.join(room.as_str(), claims.sub.as_str()).await
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
                if inbox.send(Box::new(msg)).await.is_err() {
                    return; // the connection is gone
                }
            }
            // The SFU ended the participation (a connection failed or closed).
            let _ = inbox
                .send(Box::new(ServerMsg::Media {
                    id: None,
                    ev: MediaEvent::Left,
                }))
                .await;
        });
        metrics::counter!("shangliang_room_joins_total").increment(1);
        self.joined = Some(Joined { handle, pump });
        MediaEvent::Joined {
            participant: claims.sub.clone(),
        }
    }

    /// Leaves the room (if in one) and waits until the connections are released.
    pub async fn leave(&mut self, _hub: &Hub) {
        if let Some(j) = self.joined.take() {
            j.pump.abort();
            j.handle.leave().await;
        }
    }
}
