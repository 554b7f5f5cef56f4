//! Cluster mode: every node serves every livestream's HLS. The programme is made on the
//! activity's home node (where the stage publishes); another node fetches what its players ask
//! for from the home over HTTP — the same URL — and answers them itself, as a small caching
//! proxy in the hub:
//!
//! ```text
//! get(url)
//!     fresh in the cache?            -> that answer (kept as long as the home's max-age says:
//!                                       parts/segments/inits for good, a blocking reload's
//!                                       answer 6 s, the live playlist 1 s; refusals never)
//!     a fetch of url in flight?      -> wait for its answer (request collapsing)
//!     else                           -> one fetch, in a task of its own (a player that gives
//!                                       up does not cancel it for the others), ≤ 10 s
//! ```
//!
//! So N players on a node cost the home about one request per part and per blocking-reload URI,
//! whatever N — the role nginx's `proxy_cache_lock` plays in front of a single hub
//! (`docs/operations.md`), here between nodes. Why a relay and not shared storage: parts live
//! in the home's memory for ~0.5 s before a reload returns them, and a blocking reload must be
//! answered the moment the home lists the part; a shared directory (NFS, object storage) would
//! add polling and its latency to every part, a relay adds one loopback/LAN hop. Old segments
//! of a recording are the same bytes on the home's disk and go through the same relay.
//!
//! Bounded: at most [`CACHE_BYTES`] cached (oldest evicted first), a body above [`MAX_BODY`]
//! is refused, one fetch per URL at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

/// The header a relay's own requests carry (see `from_home`: a relayed request is not relayed
/// again).
pub const RELAYED: &str = "x-shangliang-relay";
/// Longest wait for the home's answer: above its blocking limit (three target durations, 6 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of answers kept.
pub const CACHE_BYTES: usize = 64 << 20;
/// Largest answer relayed (a segment is ~0.5 MB at 2 Mbit/s).
pub const MAX_BODY: usize = 16 << 20;
/// Longest any answer is kept, whatever its max-age (immutable files stay until evicted by
/// size before that).
const MAX_KEEP: Duration = Duration::from_secs(3600);

/// What the home answered (or why it could not be asked).
#[derive(Debug)]
pub struct Fetched {
    /// Its status; 502 when the home did not answer.
    pub status: StatusCode,
    /// `Content-Type`, `Cache-Control`, `Retry-After`, as the home sent them.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

type Waiting = watch::Receiver<Option<Arc<Fetched>>>;

#[derive(Default)]
struct State {
    inflight: HashMap<String, Waiting>,
    cache: HashMap<String, (Arc<Fetched>, Instant)>,
    /// Cached URLs, oldest first, for eviction by size.
    order: VecDeque<String>,
    bytes: usize,
}

/// The node's relay to home nodes. Cheap to share (`Arc`).
pub struct Relay {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// A std mutex: held only to look up or insert, never across an await.
    state: Mutex<State>,
}

impl Default for Relay {
    fn default() -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(3)));
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).pool_max_idle_per_host(64).build(conn);
        Relay { client, state: Mutex::new(State::default()) }
    }
}

/// How long an answer may be kept: its `max-age`, or not at all (`no-store`, `private`, no
/// max-age, not a 200).
fn keep_for(f: &Fetched) -> Option<Duration> {
    if f.status != StatusCode::OK {
        return None;
    }
    let cc = f.headers.get(header::CACHE_CONTROL)?.to_str().ok()?;
    if cc.contains("no-store") || cc.contains("private") || cc.contains("no-cache") {
        return None;
    }
    let age = cc.split(',').find_map(|d| d.trim().strip_prefix("max-age="))?.trim().parse::<u64>().ok()?;
    (age > 0).then(|| Duration::from_secs(age).min(MAX_KEEP))
}

impl Relay {
    /// The home's answer to `GET url`: from the cache, from a fetch already in flight, or from
    /// a new one.
    pub async fn get(self: &Arc<Self>, url: &str) -> Arc<Fetched> {
        let mut rx = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((f, until)) = st.cache.get(url)
                && *until > Instant::now()
            {
                metrics::counter!("shangliang_hls_relay_total", "outcome" => "cached").increment(1);
                return Arc::clone(f);
            }
            match st.inflight.get(url) {
                Some(rx) => {
                    metrics::counter!("shangliang_hls_relay_total", "outcome" => "collapsed").increment(1);
                    rx.clone()
                }
                None => {
                    metrics::counter!("shangliang_hls_relay_total", "outcome" => "fetched").increment(1);
                    let (tx, rx) = watch::channel(None);
                    st.inflight.insert(url.to_owned(), rx.clone());
                    let (me, url) = (Arc::clone(self), url.to_owned());
                    tokio::spawn(async move {
                        let f = Arc::new(me.fetch(&url).await);
                        me.settle(&url, &f);
                        tx.send_replace(Some(f));
                    });
                    rx
                }
            }
        };
        match rx.wait_for(Option::is_some).await {
            Ok(f) => Arc::clone(f.as_ref().expect("waited for Some")),
            Err(_) => Arc::new(bad_gateway("the relay's fetch ended without an answer".into())),
        }
    }

    /// The fetch is done: no longer in flight; cached if the home allows it.
    fn settle(&self, url: &str, f: &Arc<Fetched>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.inflight.remove(url);
        let Some(keep) = keep_for(f) else { return };
        if let Some((old, _)) = st.cache.remove(url) {
            st.bytes -= old.body.len();
            st.order.retain(|u| u != url);
        }
        let now = Instant::now();
        // Expired answers first, then the oldest, until the new one fits.
        if st.bytes + f.body.len() > CACHE_BYTES {
            let State { cache, order, bytes, .. } = &mut *st;
            order.retain(|u| match cache.get(u) {
                Some((e, until)) if *until <= now => {
                    *bytes -= e.body.len();
                    cache.remove(u);
                    false
                }
                Some(_) => true,
                None => false,
            });
        }
        while st.bytes + f.body.len() > CACHE_BYTES {
            let Some(u) = st.order.pop_front() else { break };
            if let Some((e, _)) = st.cache.remove(&u) {
                st.bytes -= e.body.len();
            }
        }
        st.bytes += f.body.len();
        st.order.push_back(url.to_owned());
        st.cache.insert(url.to_owned(), (Arc::clone(f), now + keep));
        metrics::gauge!("shangliang_hls_relay_cached_bytes").set(st.bytes as f64);
    }

    async fn fetch(&self, url: &str) -> Fetched {
        let req = match url.parse::<hyper::Uri>().map_err(|e| e.to_string()).and_then(|u| hyper::Request::get(u).header(RELAYED, "1").body(Empty::new()).map_err(|e| e.to_string())) {
            Ok(r) => r,
            Err(e) => return bad_gateway(format!("cannot ask the home node: {e}")),
        };
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| format!("the home node did not answer: {e}"))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY).collect().await.map_err(|e| format!("the home node's answer: {e}"))?.to_bytes();
            let mut headers = HeaderMap::new();
            for h in [header::CONTENT_TYPE, header::CACHE_CONTROL, header::RETRY_AFTER] {
                if let Some(v) = parts.headers.get(&h) {
                    headers.insert(h, v.clone());
                }
            }
            Ok::<_, String>(Fetched { status: parts.status, headers, body })
        };
        match tokio::time::timeout(FETCH_TIMEOUT, exchange).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => bad_gateway(e),
            Err(_) => bad_gateway(format!("the home node did not answer within {FETCH_TIMEOUT:?}")),
        }
    }
}

fn bad_gateway(message: String) -> Fetched {
    tracing::warn!("hls relay: {message}");
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    let body = serde_json::json!({ "error": "home_unreachable", "message": message }).to_string();
    Fetched { status: StatusCode::BAD_GATEWAY, headers, body: Bytes::from(body) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, cc: &str) -> Fetched {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        Fetched { status, headers, body: Bytes::from_static(b"x") }
    }

    #[test]
    fn answers_are_kept_as_long_as_the_home_says_and_refusals_never() {
        assert_eq!(keep_for(&answer(StatusCode::OK, "public, max-age=6")), Some(Duration::from_secs(6)));
        assert_eq!(keep_for(&answer(StatusCode::OK, "public, max-age=31536000, immutable")), Some(MAX_KEEP));
        assert_eq!(keep_for(&answer(StatusCode::OK, "no-store")), None);
        assert_eq!(keep_for(&answer(StatusCode::OK, "public")), None);
        assert_eq!(keep_for(&answer(StatusCode::SERVICE_UNAVAILABLE, "public, max-age=6")), None);
        assert_eq!(keep_for(&answer(StatusCode::OK, "public, max-age=0")), None);
    }

    #[tokio::test]
    async fn concurrent_requests_for_one_url_cost_one_fetch_and_the_cache_stays_bounded() {
        // A one-route origin that counts its requests and answers after 200 ms.
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = Arc::clone(&hits);
        let app = axum::Router::new().route(
            "/hls/demo/{f}",
            axum::routing::get(move |axum::extract::Path(f): axum::extract::Path<String>| {
                let h = Arc::clone(&h);
                async move {
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let size = if f.starts_with("big") { MAX_BODY / 8 } else { 10 };
                    ([(header::CACHE_CONTROL, "public, max-age=31536000, immutable")], vec![b'a'; size])
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let relay = Arc::new(Relay::default());
        let url = format!("http://{addr}/hls/demo/7.1.m4s");
        let answers = futures_util::future::join_all((0..50).map(|_| {
            let (r, u) = (Arc::clone(&relay), url.clone());
            async move { r.get(&u).await }
        }))
        .await;
        assert!(answers.iter().all(|a| a.status == StatusCode::OK && a.body.len() == 10));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "fifty players, one fetch");
        // Cached afterwards: no new fetch.
        assert_eq!(relay.get(&url).await.status, StatusCode::OK);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Many large answers: the cache keeps at most CACHE_BYTES.
        for i in 0..40 {
            relay.get(&format!("http://{addr}/hls/demo/big{i}.m4s")).await;
        }
        let bytes = relay.state.lock().unwrap().bytes;
        assert!(bytes <= CACHE_BYTES, "{bytes} bytes cached");
        // A home that is not there: a clear 502, not cached.
        let gone = relay.get("http://127.0.0.1:1/hls/demo/1.0.m4s").await;
        assert_eq!(gone.status, StatusCode::BAD_GATEWAY);
        assert!(relay.state.lock().unwrap().inflight.is_empty(), "nothing left in flight");
    }
}
