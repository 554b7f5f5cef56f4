//! The programme over HTTP: LL-HLS playlists with blocking reload, init segments, segments and
//! parts, and the recording's VOD playlist — what any HTTP cache or CDN can multiply.
//!
//! ```text
//! GET /hls/{activity}/index.m3u8[?_HLS_msn=M[&_HLS_part=P]]   live playlist; blocks until segment
//!                                                            M (part P) is listed, ≤ 3 target durations
//! GET /hls/{activity}/init-{epoch}.mp4 | {msn}.m4s | {msn}.{part}.m4s
//!                                                            immutable; the preload-hinted part blocks
//! GET /hls/{activity}/recording.m3u8                          the whole recording (EVENT while live, VOD after)
//! GET /hls/{activity}/programme.json                          who is on air, what is on stage
//! POST /api/activities/{id}/programme/pin                     moderator: {"participant": "..." | null}
//! ```
//!
//! Waiting is cheap: a blocked request is its own future awaiting a clone of the programme's
//! `watch` receiver (no task, no timer wheel entry beyond its timeout, no file descriptor but its
//! socket); every change wakes the waiters once and they answer with the one playlist the driver
//! rendered. Parts and the newest segments come from memory; older files from the recording's
//! directory. Errors are JSON `{"error", "message"}` with `Cache-Control: no-store`, so a cache
//! never keeps a refusal.
//!
//! In a cluster every node answers these GETs: the programme is made on the activity's home
//! node, and the others relay the home's answers (`relay.rs`; one fetch per URL whatever the
//! number of players, cached as the home's `Cache-Control` says). The pin is the home's.

pub mod relay;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;
use shangliang_signaling::{ActivityId, Role};

use super::Hub;
use super::programme::{LiveSnapshot, ProgrammeHandle};
use crate::consult::ParticipantId;
use crate::programme::playlist::PartState;
use crate::programme::store::{self, Recording};
use crate::record::ActivityKind;

/// Parts, segments and init segments never change once written.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The live playlist changes with every part.
const LIVE_PLAYLIST: &str = "public, max-age=1";
/// A blocking reload's answer holds what was asked for; a cache may keep it a little longer.
const BLOCKED_PLAYLIST: &str = "public, max-age=6";
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// The HLS routes.
pub fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/hls/{activity}/index.m3u8", get(live_playlist))
        .route("/hls/{activity}/recording.m3u8", get(recording_playlist))
        .route("/hls/{activity}/programme.json", get(status))
        .route("/hls/{activity}/replay.json", get(replay::replay))
        .route("/hls/{activity}/comments.json", get(replay::comments))
        .route("/hls/{activity}/{file}", get(media_file))
        .route("/api/activities/{id}/programme/pin", post(pin))
        .layer(cors())
}

/// Players on any origin may read the programme; nothing here needs credentials.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS, Method::POST])
        .allow_headers([header::RANGE, header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ACCEPT_RANGES, header::AGE])
        .max_age(Duration::from_secs(86_400))
}

/// A refusal: status, stable code, message.
#[derive(Debug)]
pub struct HlsError(StatusCode, &'static str, String);

impl IntoResponse for HlsError {
    fn into_response(self) -> Response {
        let mut r = (self.0, axum::Json(json!({ "error": self.1, "message": self.2 }))).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

fn not_found(code: &'static str, msg: &str) -> HlsError {
    HlsError(StatusCode::NOT_FOUND, code, msg.to_owned())
}

/// The activity, if it is a livestream.
fn livestream(hub: &Hub, id: &str) -> Result<ActivityId, HlsError> {
    let id = ActivityId::new(id).map_err(|_| not_found("no_such_activity", "no such activity"))?;
    match hub.record.activity(&id) {
        Ok(Some(a)) if a.kind == ActivityKind::Livestream => Ok(id),
        Ok(Some(_)) => Err(not_found("not_a_livestream", "this activity is a room; rooms have no programme")),
        Ok(None) => Err(not_found("no_such_activity", "no such activity")),
        Err(e) => Err(HlsError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string())),
    }
}

/// Cluster mode: the programme is made on the activity's home node; this node answers its
/// players with the home's answer through the relay (`relay.rs`: cached, one fetch per URL at a
/// time). `headers`: the player's, for a byte range of a relayed media file (`range`). A request
/// that is itself a relay's is not relayed again: two nodes that disagree for a moment on the
/// home would otherwise pass it back and forth.
async fn from_home(hub: &Hub, activity: &ActivityId, rest: &str, query: Option<&str>, headers: &HeaderMap, range: bool) -> Option<Response> {
    let node = hub.home_elsewhere(activity)?;
    if headers.contains_key(relay::RELAYED) {
        return Some(HlsError(StatusCode::SERVICE_UNAVAILABLE, "not_home", "relayed to a node that is not the home; retry".into()).into_response());
    }
    let q = query.map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("{}/hls/{activity}/{rest}{q}", node.as_str().trim_end_matches('/'));
    let f = hub.programmes.relay().get(&url).await;
    if range && f.status == StatusCode::OK && headers.contains_key(header::RANGE) {
        return Some(media_response(f.body.clone(), headers));
    }
    let mut r = (f.status, f.body.clone()).into_response();
    for (k, v) in &f.headers {
        r.headers_mut().insert(k, v.clone());
    }
    Some(r)
}

/// `_HLS_msn` and `_HLS_part`, strictly: decimal numbers, each at most once.
fn blocking_params(query: Option<&str>) -> Result<(Option<u64>, Option<u32>), HlsError> {
    let bad = |m: &str| HlsError(StatusCode::BAD_REQUEST, "bad_request", m.to_owned());
    let (mut msn, mut part) = (None, None);
    for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let digits = !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit());
        match k {
            "_HLS_msn" if msn.is_none() && digits => msn = v.parse().ok(),
            "_HLS_part" if part.is_none() && digits && v.len() <= 9 => part = v.parse().ok(),
            "_HLS_msn" | "_HLS_part" => return Err(bad(&format!("malformed {k}"))),
            // Delta updates are not offered (no CAN-SKIP-UNTIL), so a skip request gets the full playlist.
            _ => {}
        }
    }
    if part.is_some() && msn.is_none() {
        return Err(bad("_HLS_part needs _HLS_msn"));
    }
    Ok((msn, part))
}

/// Counts blocked requests for `/metrics` (dropped with the request, also when the client goes).
struct Blocked;

impl Blocked {
    fn new() -> Self {
        metrics::gauge!("shangliang_hls_blocked_requests").increment(1.0);
        Blocked
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        metrics::gauge!("shangliang_hls_blocked_requests").decrement(1.0);
    }
}

/// How long a blocking request may wait: three target durations (RFC 8216bis §6.2.5.2).
fn block_limit(hub: &Hub) -> Duration {
    Duration::from_secs(3 * hub.cfg.programme.playlist.target_duration_s as u64)
}

async fn wait_for(handle: &ProgrammeHandle, limit: Duration, ok: impl Fn(&LiveSnapshot) -> bool) -> Option<Arc<LiveSnapshot>> {
    let mut live = handle.live.clone();
    let _blocked = Blocked::new();
    match tokio::time::timeout(limit, live.wait_for(|s| ok(s))).await {
        Ok(Ok(s)) => Some(Arc::clone(&s)),
        _ => None,
    }
}

fn playlist_response(body: Bytes, cache: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, PLAYLIST_TYPE), (header::CACHE_CONTROL, cache)], body).into_response()
}

async fn live_playlist(State(hub): State<Arc<Hub>>, Path(activity): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Result<Response, HlsError> {
    let id = livestream(&hub, &activity)?;
    if let Some(r) = from_home(&hub, &id, "index.m3u8", query.as_deref(), &headers, false).await {
        return Ok(r);
    }
    let (msn, part) = blocking_params(query.as_deref())?;
    metrics::counter!("shangliang_hls_requests_total", "kind" => if msn.is_some() { "blocking_playlist" } else { "playlist" }).increment(1);
    let Some(handle) = hub.programmes.ensure(&id) else {
        // Not live on this node: the recording, if the livestream ended and left one.
        let rec = read_recording(&hub, &id).await?;
        if rec.ended && !rec.segments.is_empty() {
            return Ok(playlist_response(Bytes::from(rec.playlist()), "public, max-age=60"));
        }
        return Err(HlsError(StatusCode::SERVICE_UNAVAILABLE, "not_live", "the livestream is not on air".into()));
    };
    let snap = Arc::clone(&handle.live.borrow());
    snap.window.check_request(msn, part).map_err(|e| HlsError(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let Some(msn) = msn else {
        if snap.window.is_empty() && !snap.window.ended() {
            return Err(HlsError(StatusCode::SERVICE_UNAVAILABLE, "not_on_air_yet", "no segment yet: the stage has not been on air long enough".into()));
        }
        return Ok(playlist_response(snap.playlist.clone(), LIVE_PLAYLIST));
    };
    match wait_for(&handle, block_limit(&hub), |s| s.window.satisfies(msn, part)).await {
        Some(s) => Ok(playlist_response(s.playlist.clone(), BLOCKED_PLAYLIST)),
        None => Err(HlsError(StatusCode::SERVICE_UNAVAILABLE, "timeout", format!("segment {msn} did not appear within three target durations"))),
    }
}

async fn read_recording(hub: &Hub, id: &ActivityId) -> Result<Recording, HlsError> {
    let dir = store::recording_dir(&hub.cfg.data_dir, id.as_str());
    tokio::task::spawn_blocking(move || Recording::read(&dir))
        .await
        .map_err(|e| HlsError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| HlsError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

async fn recording_playlist(State(hub): State<Arc<Hub>>, Path(activity): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Result<Response, HlsError> {
    let id = livestream(&hub, &activity)?;
    if let Some(r) = from_home(&hub, &id, "recording.m3u8", query.as_deref(), &headers, false).await {
        return Ok(r);
    }
    metrics::counter!("shangliang_hls_requests_total", "kind" => "recording").increment(1);
    let rec = read_recording(&hub, &id).await?;
    if rec.segments.is_empty() {
        return Err(not_found("no_recording", "nothing of this livestream was recorded"));
    }
    Ok(playlist_response(Bytes::from(rec.playlist()), if rec.ended { "public, max-age=3600" } else { "public, max-age=2" }))
}

async fn status(State(hub): State<Arc<Hub>>, Path(activity): Path<String>, headers: HeaderMap) -> Result<Response, HlsError> {
    let id = livestream(&hub, &activity)?;
    if let Some(r) = from_home(&hub, &id, "programme.json", None, &headers, false).await {
        return Ok(r);
    }
    let snap = hub.programmes.ensure(&id).map(|h| Arc::clone(&h.live.borrow()));
    let body = match snap {
        Some(s) => json!({
            "live": !s.window.ended(),
            // The live playlist has a segment to play.
            "playable": !s.window.is_empty(),
            "edge": s.window.edge_msn(),
            "next_part": s.window.next_part().map(|(m, p)| format!("{m}.{p}")),
            "programme": s.status,
        }),
        None => json!({ "live": false, "playable": false }),
    };
    // Players poll it while waiting for the start: a cache may answer for a second.
    Ok(([(header::CACHE_CONTROL, "public, max-age=1")], axum::Json(body)).into_response())
}

/// What a file name under `/hls/{activity}/` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum File {
    Init(u32),
    Segment(u64),
    Part(u64, u32),
}

fn parse_file(name: &str) -> Option<File> {
    if !store::is_media_name(name) {
        return None;
    }
    if let Some(e) = name.strip_prefix("init-").and_then(|s| s.strip_suffix(".mp4")) {
        return e.parse().ok().map(File::Init);
    }
    let stem = name.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some(File::Part(m.parse().ok()?, p.parse().ok()?)),
        None => stem.parse().ok().map(File::Segment),
    }
}

fn in_memory(s: &LiveSnapshot, f: File) -> Option<Bytes> {
    match f {
        File::Init(e) => s.inits.get(&e).cloned(),
        File::Segment(m) => s.segments.get(&m).cloned(),
        File::Part(m, p) => s.parts.get(&(m, p)).cloned(),
    }
}

async fn media_file(State(hub): State<Arc<Hub>>, Path((activity, name)): Path<(String, String)>, headers: HeaderMap) -> Result<Response, HlsError> {
    let id = livestream(&hub, &activity)?;
    let file = parse_file(&name).ok_or_else(|| not_found("not_found", "no such file"))?;
    if let Some(r) = from_home(&hub, &id, &name, None, &headers, true).await {
        return Ok(r);
    }
    metrics::counter!("shangliang_hls_requests_total", "kind" => match file { File::Init(_) => "init", File::Segment(_) => "segment", File::Part(..) => "part" }).increment(1);
    if let Some(handle) = hub.programmes.get(&id) {
        let snap = Arc::clone(&handle.live.borrow());
        if let Some(b) = in_memory(&snap, file) {
            return Ok(media_response(b, &headers));
        }
        // The part the preload hint names, or the segment being written: wait for it.
        let pending = match file {
            File::Part(m, p) => snap.window.part_state(m, p) == PartState::Next,
            File::Segment(m) => snap.window.current().is_some_and(|(s, _)| s.msn == m),
            File::Init(_) => false,
        };
        if pending {
            return match wait_for(&handle, block_limit(&hub), |s| in_memory(s, file).is_some() || s.window.ended()).await.and_then(|s| in_memory(&s, file)) {
                Some(b) => Ok(media_response(b, &headers)),
                None => Err(not_found("not_yet", "the part was not written in time")),
            };
        }
    }
    let path = store::recording_dir(&hub.cfg.data_dir, id.as_str()).join(&name);
    match tokio::fs::read(&path).await {
        Ok(b) => Ok(media_response(Bytes::from(b), &headers)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found("not_found", "no such file")),
        Err(e) => Err(HlsError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())),
    }
}

/// `Range: bytes=…` on a file held whole: one range (a multi-range request gets the whole file,
/// which RFC 9110 allows); an unsatisfiable one 416.
fn byte_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end: u64 = if b.is_empty() { len.saturating_sub(1) } else { b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1)) };
            if start >= len || end < start {
                return Err(());
            }
            (start, end)
        }
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (true, true) => return Err(()),
    };
    Ok(Some(range))
}

fn media_response(bytes: Bytes, headers: &HeaderMap) -> Response {
    let len = bytes.len() as u64;
    let base = [(header::CONTENT_TYPE, "video/mp4"), (header::CACHE_CONTROL, IMMUTABLE), (header::ACCEPT_RANGES, "bytes")];
    match byte_range(headers, len) {
        Ok(None) => (StatusCode::OK, base, bytes).into_response(),
        Ok(Some((a, b))) => {
            let mut r = (StatusCode::PARTIAL_CONTENT, base, Body::from(bytes.slice(a as usize..=b as usize))).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        Err(()) => {
            let mut r = HlsError(StatusCode::RANGE_NOT_SATISFIABLE, "bad_range", "the range is outside the file".into()).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
    }
}

#[derive(serde::Deserialize)]
struct PinRequest {
    participant: Option<String>,
}

/// A moderator of the activity pins whose camera the programme shows (`null` unpins).
async fn pin(State(hub): State<Arc<Hub>>, Path(activity): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, HlsError> {
    let id = livestream(&hub, &activity)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| HlsError(StatusCode::UNAUTHORIZED, "unauthenticated", "Authorization: Bearer <token> required".into()))?;
    let claims = hub.keys.verify(token.trim()).map_err(|e| HlsError(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()))?;
    if claims.act != id || claims.role != Role::Moderator {
        return Err(HlsError(StatusCode::FORBIDDEN, "forbidden", "only a moderator of this activity may pin".into()));
    }
    if body.len() > 1024 {
        return Err(HlsError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the body is larger than 1 KiB".into()));
    }
    let req: PinRequest = serde_json::from_slice(&body).map_err(|e| HlsError(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    if req.participant.as_ref().is_some_and(|p| p.is_empty() || p.len() > 256) {
        return Err(HlsError(StatusCode::BAD_REQUEST, "bad_request", "participant must be 1..256 bytes or null".into()));
    }
    if hub.home_elsewhere(&id).is_some() {
        return Err(HlsError(StatusCode::MISDIRECTED_REQUEST, "not_home", "pin on the activity's home node".into()));
    }
    tracing::info!(activity = %id, by = %claims.sub, pin = ?req.participant, "programme pin");
    // An alias of the moderation command `pin_programme`: the activity's driver authorises and
    // audits it, then hands it to the programme (the same path as over the websocket).
    let cmd = shangliang_signaling::consult::Command::PinProgramme { participant: req.participant.clone().map(ParticipantId::new) };
    let unavailable = || HlsError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the activity's moderation is not available; retry".into());
    let tx = hub.moderation.sender(&id).ok_or_else(unavailable)?;
    let (reply, rx) = tokio::sync::oneshot::channel();
    tx.send(super::moderation::DriverMsg::Command { grants: claims.grants(), from: None, cmd, reply }).await.map_err(|_| unavailable())?;
    match rx.await.map_err(|_| unavailable())? {
        Ok(_) => Ok(axum::Json(json!({ "pin": req.participant })).into_response()),
        Err((code, message)) => Err(HlsError(StatusCode::UNPROCESSABLE_ENTITY, "refused", format!("{code:?}: {message}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_parameters_are_strict_decimal_numbers() {
        assert_eq!(blocking_params(None).unwrap(), (None, None));
        assert_eq!(blocking_params(Some("_HLS_msn=12&_HLS_part=3")).unwrap(), (Some(12), Some(3)));
        assert_eq!(blocking_params(Some("_HLS_msn=12&_HLS_skip=YES")).unwrap(), (Some(12), None));
        for bad in ["_HLS_msn=-1", "_HLS_msn=1e3", "_HLS_msn=", "_HLS_part=2", "_HLS_msn=1&_HLS_msn=2", "_HLS_msn=99999999999999999999", "_HLS_msn=1&_HLS_part=x"] {
            assert!(blocking_params(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names_map_to_inits_segments_and_parts() {
        assert_eq!(parse_file("init-3.mp4"), Some(File::Init(3)));
        assert_eq!(parse_file("17.m4s"), Some(File::Segment(17)));
        assert_eq!(parse_file("17.2.m4s"), Some(File::Part(17, 2)));
        assert_eq!(parse_file("index.jsonl"), None);
        assert_eq!(parse_file("..%2F17.m4s"), None);
    }

    #[test]
    fn ranges_are_single_and_within_the_file() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(byte_range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(byte_range(&h("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(byte_range(&h("bytes=4-"), 10), Ok(Some((4, 9))));
        assert_eq!(byte_range(&h("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(&h("bytes=5-100"), 10), Ok(Some((5, 9))));
        assert_eq!(byte_range(&h("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(byte_range(&h("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(&h("bytes=5-2"), 10), Err(()));
        assert_eq!(byte_range(&h("bytes=x-"), 10), Err(()));
    }
}
