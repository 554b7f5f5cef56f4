//! The REST API: health, metrics, the activities, anonymous viewer tokens; and the built web
//! client ([`web`]) for every path no route takes.

pub mod admin;
mod web;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shangliang_signaling::{ActivityId, ParticipantId, Role, limits};

use super::auth::{Claims, TokenKeys, now_secs};
use super::edge::ClientAddr;
use super::ws::Connections;
use crate::bus::Cluster;
use crate::consult::text::normalize_line;
use crate::consult::votes::NetBlock;
use crate::fanout::Fanout;
use crate::record::{Activity, Record};

pub use web::{NOT_BUILT_MARKER, WebSource, web_client};

/// What the API's handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The activities.
    pub record: Arc<dyn Record>,
    /// Subscriber counts of the topics.
    pub fanout: Fanout,
    /// Mints viewer tokens.
    pub keys: Arc<TokenKeys>,
    /// Cluster mode: NATS and database health.
    pub cluster: Option<Arc<Cluster>>,
    /// Websocket connections of this node (for `/healthz`).
    pub connections: Connections,
    /// The anonymous viewer tokens' limits.
    pub viewer_tokens: Arc<ViewerTokens>,
}

/// Anonymous viewer tokens: how many one address and one address block may mint, and for how
/// long they hold.
pub struct ViewerTokens {
    /// Per address (an IPv6 address counts by its /64, as the edge's caps do).
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Per block (IPv4 /24, IPv6 /64): one client rarely holds one address only (issue 12).
    blocks: DefaultKeyedRateLimiter<NetBlock>,
    ttl_secs: u64,
}

impl ViewerTokens {
    /// `per_minute` tokens per address and `per_block` per address block, each valid
    /// `ttl_secs`. The limiters keep a cell per key: a task on the current runtime drops the
    /// idle ones every minute while the returned value lives.
    pub fn new(per_minute: u32, per_block: u32, ttl_secs: u64) -> Arc<ViewerTokens> {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("non-zero"));
        let t = Arc::new(ViewerTokens {
            limiter: DefaultKeyedRateLimiter::keyed(quota(per_minute)),
            blocks: DefaultKeyedRateLimiter::keyed(quota(per_block)),
            ttl_secs,
        });
        let weak = Arc::downgrade(&t);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(t) = weak.upgrade() else { break };
                t.limiter.retain_recent();
                t.limiter.shrink_to_fit();
                t.blocks.retain_recent();
                t.blocks.shrink_to_fit();
            }
        });
        t
    }
}

/// The API routes.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/activities", get(list_activities))
        .route("/api/activities/{id}", get(get_activity))
        .route("/api/activities/{id}/viewer-token", post(viewer_token))
        .route("/api/activities/{id}/tree-head", get(tree_head))
        .route("/api/{*rest}", get(api_not_found).post(api_not_found))
        .with_state(state)
}

async fn api_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// An error answer with a stable code, as JSON `{"error": code, "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.code, "message": self.message }))).into_response()
    }
}

impl From<crate::record::RecordError> for ApiError {
    fn from(e: crate::record::RecordError) -> Self {
        tracing::error!("record: {e}");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the record is unavailable")
    }
}

async fn healthz(State(hub): State<ApiState>) -> Response {
    if let Some(health) = hub.cluster.as_ref().map(|c| c.health()) {
        let status = if health.ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        let body = json!({
            "status": if health.ok() { "ok" } else { "unavailable" },
            "nats": health.nats,
            "database": health.database,
            "connections": hub.connections.get(),
            "activities": hub.record.activities().map(|a| a.len()).unwrap_or(0),
        });
        return (status, Json(body)).into_response();
    }
    match hub.record.health().and_then(|()| hub.record.activities().map_err(|e| e.to_string())) {
        Ok(a) => Json(json!({
            "status": "ok",
            "connections": hub.connections.get(),
            "activities": a.len(),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "record": e })),
        )
            .into_response(),
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics::render(),
    )
        .into_response()
}

#[derive(Serialize)]
struct ActivityView {
    #[serde(flatten)]
    activity: Activity,
    viewers: usize,
}

fn view(hub: &ApiState, activity: Activity) -> ActivityView {
    let viewers = hub.fanout.topic_info(&activity.id).map(|t| t.subscribers).unwrap_or(0);
    ActivityView { activity, viewers }
}

async fn list_activities(State(hub): State<ApiState>) -> Result<Json<Vec<ActivityView>>, ApiError> {
    let list = hub.record.activities()?;
    Ok(Json(list.into_iter().map(|a| view(&hub, a)).collect()))
}

fn parse_id(id: &str) -> Result<ActivityId, ApiError> {
    ActivityId::new(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_id", e.to_string()))
}

async fn get_activity(
    State(hub): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ActivityView>, ApiError> {
    let id = parse_id(&id)?;
    let a = hub.record.activity(&id)?.ok_or_else(no_such_activity)?;
    Ok(Json(view(&hub, a)))
}

/// The latest signed head of the activity's Merkle log, with the public key that verifies it:
/// what anyone may keep to check the record later (`verify-record --head`).
async fn tree_head(State(hub): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    hub.record.activity(&id)?.ok_or_else(no_such_activity)?;
    let head = hub.record.tree_head(&id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_tree_head", "no tree head signed yet (the log is empty or its first head is seconds away)")
    })?;
    let key = hub.record.log_public_key();
    let body = crate::server::moderation::export::head_json(&head, key.as_ref());
    Ok(([(header::CACHE_CONTROL, "no-cache")], Json(body)).into_response())
}

fn no_such_activity() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_topic", "no such activity")
}

#[derive(Deserialize)]
struct ViewerTokenRequest {
    name: String,
    /// The viewer's current token, on a rename: the new token keeps its subject, so a timeout
    /// or ban follows the person, not the nickname (see `docs/protocol.md` §2.2).
    #[serde(default)]
    token: Option<String>,
}

#[derive(Serialize)]
struct ViewerTokenResponse {
    token: String,
    subject: ParticipantId,
    name: String,
    expires_in: u64,
}

async fn viewer_token(
    State(hub): State<ApiState>,
    ClientAddr(client): ClientAddr,
    Path(id): Path<String>,
    body: Result<Json<ViewerTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ViewerTokenResponse>, ApiError> {
    // The client's address, not the TCP peer: behind a trusted proxy every peer is the proxy.
    let block = NetBlock::of(client);
    let address = match client.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(_) => block.network(),
    };
    if hub.viewer_tokens.limiter.check_key(&address).is_err() || hub.viewer_tokens.blocks.check_key(&block).is_err() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many viewer tokens from this address or its network; try again in a minute",
        ));
    }
    let id = parse_id(&id)?;
    let Json(req) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    hub.record.activity(&id)?.ok_or_else(no_such_activity)?;
    let name = normalize_line(&req.name, limits::MAX_NAME_CHARS)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_name", e.to_string()))?;
    let subject = match req.token.as_deref() {
        Some(previous) => renewed_subject(&hub.keys, previous, &id)?,
        None => ParticipantId::from(format!("v-{}", hex::encode(rand::random::<[u8; 8]>()))),
    };
    let now = now_secs();
    let ttl = hub.viewer_tokens.ttl_secs;
    let claims = Claims {
        sub: subject.clone(),
        name: name.clone(),
        role: Role::Viewer,
        act: id,
        org: None,
        verified: false,
        iat: now,
        exp: now + ttl,
    };
    Ok(Json(ViewerTokenResponse { token: hub.keys.mint(&claims), subject, name, expires_in: ttl }))
}

/// The subject of `previous`, a viewer's still valid token for `activity`: a rename re-issues
/// the token for the same identity. Anything else is refused rather than answered with a fresh
/// identity, so a client cannot mistake a new identity for its old one.
fn renewed_subject(keys: &TokenKeys, previous: &str, activity: &ActivityId) -> Result<ParticipantId, ApiError> {
    let claims = keys.verify(previous).map_err(|e| {
        let code = match e {
            super::auth::TokenError::Expired => "token_expired",
            super::auth::TokenError::Invalid(_) => "invalid_token",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, format!("the previous token does not verify: {e}"))
    })?;
    if claims.role != Role::Viewer || claims.act != *activity {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only a viewer token of this activity can be renewed here",
        ));
    }
    Ok(claims.sub)
}
