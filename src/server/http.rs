//! HTTP routes: health, metrics, the activities API, anonymous viewer tokens, the websocket.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shangliang_signaling::{ActivityId, Role, limits};

use super::Hub;
use super::auth::{Claims, now_secs};
use crate::consult::text::normalize_line;
use crate::record::Activity;

/// All routes of the hub; every other path is the web client (see [`web_client`]).
pub fn router(hub: Arc<Hub>) -> Router {
    let web = web_client(&hub.cfg.web_dir);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/activities", get(list_activities))
        .route("/api/activities/{id}", get(get_activity))
        .route("/api/activities/{id}/viewer-token", post(viewer_token))
        .route("/ws", get(websocket))
        .route("/api/{*rest}", get(api_not_found).post(api_not_found))
        .merge(super::media::routes())
        .merge(super::hls::routes())
        .with_state(hub)
        .fallback_service(web)
}

/// The built web client: files of `dir` (hashed assets cached for a year), and `index.html` for
/// the app's routes `/`, `/live/*`, `/room/*`, `/console/*` (the app routes in the browser).
/// Without a built client every page answers a short note saying how to build it.
fn web_client(dir: &std::path::Path) -> Router {
    use tower_http::services::{ServeDir, ServeFile};
    use tower_http::set_header::SetResponseHeaderLayer;
    let index = dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(dir = %dir.display(), "web client not built; serving build instructions");
        return Router::new().fallback(get(not_built));
    }
    let pages = Router::new()
        .route_service("/", ServeFile::new(&index))
        .route_service("/index.html", ServeFile::new(&index))
        .route_service("/live/{*rest}", ServeFile::new(&index))
        .route_service("/room/{*rest}", ServeFile::new(&index))
        .route_service("/console/{*rest}", ServeFile::new(&index))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        ));
    // Vite names assets by content hash: they never change.
    let assets = Router::new().nest_service("/assets", ServeDir::new(dir.join("assets"))).layer(
        SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
    );
    pages
        .merge(assets)
        .fallback_service(ServeDir::new(dir))
}

async fn not_built() -> Response {
    let body = "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>商量 shangliang</title>\
<h1>商量 shangliang</h1>\
<p>网页客户端尚未构建 / The web client is not built. In the repository, run:</p>\
<pre>npm --prefix web-client ci &amp;&amp; npm --prefix web-client run build</pre>\
<p>then restart <code>cargo run --release -- serve</code> (or pass <code>--web-dir</code>). \
The API (<a href=\"/api/activities\">/api/activities</a>) and the websocket (<code>/ws</code>) work without it.</p></html>";
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
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

async fn healthz(State(hub): State<Arc<Hub>>) -> Response {
    if let Some(health) = hub.cluster.as_ref().map(|c| c.health()) {
        let status = if health.ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        let body = json!({
            "status": if health.ok() { "ok" } else { "unavailable" },
            "nats": health.nats,
            "database": health.database,
            "connections": hub.connections(),
            "activities": hub.record.activities().map(|a| a.len()).unwrap_or(0),
        });
        return (status, Json(body)).into_response();
    }
    match hub.record.health().and_then(|()| hub.record.activities().map_err(|e| e.to_string())) {
        Ok(a) => Json(json!({
            "status": "ok",
            "connections": hub.connections(),
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

fn view(hub: &Hub, activity: Activity) -> ActivityView {
    let viewers = hub.fanout.topic_info(&activity.id).map(|t| t.subscribers).unwrap_or(0);
    ActivityView { activity, viewers }
}

async fn list_activities(State(hub): State<Arc<Hub>>) -> Result<Json<Vec<ActivityView>>, ApiError> {
    let list = hub.record.activities()?;
    Ok(Json(list.into_iter().map(|a| view(&hub, a)).collect()))
}

fn parse_id(id: &str) -> Result<ActivityId, ApiError> {
    ActivityId::new(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_id", e.to_string()))
}

async fn get_activity(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> Result<Json<ActivityView>, ApiError> {
    let id = parse_id(&id)?;
    let a = hub.record.activity(&id)?.ok_or_else(no_such_activity)?;
    Ok(Json(view(&hub, a)))
}

fn no_such_activity() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_topic", "no such activity")
}

#[derive(Deserialize)]
struct ViewerTokenRequest {
    name: String,
}

#[derive(Serialize)]
struct ViewerTokenResponse {
    token: String,
    subject: shangliang_signaling::ParticipantId,
    name: String,
    expires_in: u64,
}

async fn viewer_token(
    State(hub): State<Arc<Hub>>,
    super::edge::ClientAddr(client): super::edge::ClientAddr,
    Path(id): Path<String>,
    body: Result<Json<ViewerTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ViewerTokenResponse>, ApiError> {
    // The client's address, not the TCP peer: behind a trusted proxy every peer is the proxy.
    if hub.token_limiter.check_key(&client).is_err() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many viewer tokens from this address; try again in a minute",
        ));
    }
    let id = parse_id(&id)?;
    let Json(req) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    hub.record.activity(&id)?.ok_or_else(no_such_activity)?;
    let name = normalize_line(&req.name, limits::MAX_NAME_CHARS)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_name", e.to_string()))?;
    let subject = shangliang_signaling::ParticipantId::from(format!("v-{}", hex::encode(rand::random::<[u8; 8]>())));
    let now = now_secs();
    let ttl = hub.cfg.viewer_token_ttl_secs;
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

async fn websocket(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    if hub.connections() >= hub.cfg.max_connections {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "this node is at its connection limit; try another node or later",
        )
        .into_response();
    }
    // Small buffers: tungstenite's defaults (128 KiB each) would cost 256 KiB per viewer. The
    // write buffer lets frames queued while the connection waited go out in one syscall.
    ws.read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(limits::MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(limits::MAX_CLIENT_FRAME_BYTES)
        .on_upgrade(move |socket| super::session::run(hub, socket, peer))
}
