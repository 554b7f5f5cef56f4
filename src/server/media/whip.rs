//! WHIP (`POST /whip/{activity}`) and WHEP (`POST /whep/{activity}`): ingest onto and watch an
//! activity's stage over HTTP, with the refusals mapped to a status and a code here, at the
//! edge.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde_json::json;
use shangliang_sfu::SfuError;
use shangliang_signaling::{ActivityId, Role, RoomId, limits::MAX_SDP_BYTES};

use super::MediaState;
use crate::record::ActivityKind;
use crate::server::auth::Claims;
use crate::server::edge::ClientAddr;

/// The WHIP/WHEP routes, before their state.
pub(super) fn routes() -> Router<MediaState> {
    Router::new()
        .route("/whep/{activity}", post(whep_post).options(ice_servers_options))
        .route("/whep/{activity}/{resource}", delete(whep_delete))
        .route("/whip/{activity}", post(whip_post).options(ice_servers_options))
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
    if let Some(reason) = refusal_reason(&e) {
        metrics::counter!("shangliang_media_refused_total", "reason" => reason).increment(1);
    }
    match e {
        e @ SfuError::RateLimited => HttpError(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string()),
        e @ SfuError::ActivityRateLimited => HttpError(StatusCode::TOO_MANY_REQUESTS, "activity_busy", e.to_string()),
        e @ SfuError::TooManyPending { .. } => {
            HttpError(StatusCode::SERVICE_UNAVAILABLE, "node_busy", e.to_string())
        }
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

/// The `reason` label of a capacity refusal in `shangliang_media_refused_total` (the SFU logs
/// one line per kind per interval; every one is counted here).
fn refusal_reason(e: &SfuError) -> Option<&'static str> {
    match e {
        SfuError::RateLimited => Some("rate_limited"),
        SfuError::ActivityRateLimited => Some("activity_rate_limited"),
        SfuError::TooManyPending { .. } => Some("pending_full"),
        SfuError::NodeFull { .. } | SfuError::NoPorts => Some("node_full"),
        SfuError::RoomFull { .. } => Some("room_full"),
        _ => None,
    }
}

fn activity_of(state: &MediaState, id: &str) -> Result<(ActivityId, ActivityKind), HttpError> {
    let not_found = || {
        HttpError(
            StatusCode::NOT_FOUND,
            "no_such_activity",
            "no such activity".into(),
        )
    };
    let id = ActivityId::new(id).map_err(|_| not_found())?;
    match state.record.activity(&id) {
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
fn bearer(state: &MediaState, headers: &HeaderMap, activity: &ActivityId) -> Result<Claims, HttpError> {
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
    let claims = state.keys.verify(token.trim()).map_err(|e| {
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

/// `201 Created` with the answer, its resource, and the TURN servers (`Link: <url>;
/// rel="ice-server"`, RFC 9725 §4.6) the client may add with `setConfiguration` for an ICE restart.
fn created(location: String, answer: String, links: Vec<String>) -> Response {
    let mut r = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response();
    for l in links {
        if let Ok(v) = axum::http::HeaderValue::from_str(&l) {
            r.headers_mut().append(header::LINK, v);
        }
    }
    r
}

/// `OPTIONS /whep/{activity}` (or `/whip/…`) outside a CORS pre-flight: `204` with the TURN
/// servers as `Link: <url>; rel="ice-server"` headers (RFC 9725 §4.6), so a client can build its
/// `RTCPeerConnection` with them before it makes its offer. The credentials expire after the
/// configured TTL and name no one (`anonymous`): anyone may watch a livestream anyway.
async fn ice_servers_options(State(state): State<MediaState>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    for l in state.media.ice_links("anonymous") {
        if let Ok(v) = axum::http::HeaderValue::from_str(&l) {
            r.headers_mut().append(header::LINK, v);
        }
    }
    r
}

/// Cluster mode: the activity's media lives on its home node; the client is sent there with
/// `307 Temporary Redirect` (method and body are kept, as WHIP and WHEP allow).
fn redirect_home(state: &MediaState, kind: &str, activity: &ActivityId) -> Option<Response> {
    let node = state.cluster.as_ref()?.home_elsewhere(activity)?;
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
    State(state): State<MediaState>,
    ClientAddr(client): ClientAddr,
    Path(activity): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let (activity, kind) = activity_of(&state, &activity)?;
    if let Some(r) = redirect_home(&state, "whep", &activity) {
        return Ok(r);
    }
    // A room's media needs a token; a livestream's is public, so its offers are rate-limited
    // per client address (and, like every viewer, pending only briefly: see `Sfu::whep_from`).
    let from = if kind == ActivityKind::Room {
        bearer(&state, &headers, &activity)?;
        None
    } else {
        Some(client)
    };
    let offer = sdp_body(&headers, body).await?;
    let (session, answer) = state
        .media
        .sfu
        .whep_from(RoomId::of(&activity).as_str(), &offer, from)
        .await
        .map_err(sfu_http_error)?;
    metrics::counter!("shangliang_whep_sessions_total").increment(1);
    let location = format!(
        "/whep/{activity}/{}",
        state.media.resource("whep", &activity, session)
    );
    let links = state.media.ice_links(&format!("whep-{}", session.0));
    Ok(created(location, answer, links))
}

/// WHIP: ingest onto the activity's stage, for members, guests and moderators of it.
async fn whip_post(
    State(state): State<MediaState>,
    Path(activity): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let (activity, _) = activity_of(&state, &activity)?;
    if let Some(r) = redirect_home(&state, "whip", &activity) {
        return Ok(r);
    }
    let claims = bearer(&state, &headers, &activity)?;
    if claims.role == Role::Viewer {
        return Err(HttpError(
            StatusCode::FORBIDDEN,
            "forbidden",
            "viewers may not publish".into(),
        ));
    }
    standing(&state, &activity, &claims).await?;
    let offer = sdp_body(&headers, body).await?;
    let (session, answer) = state
        .media
        .sfu
        .whip(RoomId::of(&activity).as_str(), claims.sub.as_str(), &offer)
        .await
        .map_err(sfu_http_error)?;
    metrics::counter!("shangliang_whip_sessions_total").increment(1);
    let location = format!(
        "/whip/{activity}/{}",
        state.media.resource("whip", &activity, session)
    );
    let links = state.media.ice_links(claims.sub.as_str());
    Ok(created(location, answer, links))
}

/// A banned participant may not publish (403 `banned`).
async fn standing(state: &MediaState, activity: &ActivityId, claims: &Claims) -> Result<(), HttpError> {
    match state.media.standing(activity, &claims.sub).await {
        Ok(()) => Ok(()),
        Err(super::Standing::Banned) => Err(HttpError(
            StatusCode::FORBIDDEN,
            "banned",
            "you are banned from this activity".into(),
        )),
        Err(super::Standing::Unavailable(m)) => {
            Err(HttpError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m))
        }
    }
}

async fn close_resource(
    state: &MediaState,
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
    let session = state
        .media
        .parse_resource(kind, &activity, resource)
        .ok_or_else(not_found)?;
    if state.media.sfu.close_session(session).await {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(not_found())
    }
}

async fn whep_delete(
    State(state): State<MediaState>,
    Path((activity, resource)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    close_resource(&state, "whep", &activity, &resource).await
}

async fn whip_delete(
    State(state): State<MediaState>,
    Path((activity, resource)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    close_resource(&state, "whip", &activity, &resource).await
}
