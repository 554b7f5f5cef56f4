//! Bad input while the programme is live stays bounded: blocking reloads too far ahead, part
//! and segment names that will not exist soon, numbers past `u64`, repeated parameters — each
//! answered at once with a clear 4xx — and players that give up while blocked leave no wait
//! behind (the `shangliang_hls_blocked_requests` gauge returns to 0 long before the
//! three-target-duration limit would have answered them).
//!
//! Its own test binary: the gauge is process-global, and `tests/hls.rs` blocks a thousand
//! reloads in another test of its binary at the same time.
//!
//! Needs `ffmpeg` (`.ci/run` installs it).
#![allow(missing_docs)]

mod common;
#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestHub;
use shangliang_signaling::Role;
use whip_publisher::{WhipPublisher, encode};

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The `(msn, part)` of the playlist's preload hint.
fn hint(text: &str) -> (u64, u32) {
    let line = text.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:")).expect("preload hint");
    let uri = line.split("URI=\"").nth(1).unwrap().trim_end_matches('"');
    let mut it = uri.trim_end_matches(".m4s").split('.');
    (it.next().unwrap().parse().unwrap(), it.next().unwrap().parse().unwrap())
}

/// Waits (bounded) until the live playlist lists a complete segment; returns it.
async fn wait_on_air(h: &TestHub) -> String {
    let t = Instant::now();
    loop {
        let r = get(&h.http("/hls/demo/index.m3u8")).await;
        if r.status() == 200 {
            let text = r.text().await.unwrap();
            if text.lines().any(|l| l.starts_with("#EXTINF:")) && text.contains("PRELOAD-HINT") {
                return text;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(30), "not on air in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The hub's `shangliang_hls_blocked_requests` gauge (0 when it was never set).
async fn blocked_now(h: &TestHub) -> f64 {
    let metrics = get(&h.http("/metrics")).await.text().await.unwrap();
    metrics.lines().find_map(|l| l.strip_prefix("shangliang_hls_blocked_requests ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_live_far_and_unknown_requests_are_refused_at_once_and_abandoned_waits_are_released() {
    let h = TestHub::start(|_| {}).await;
    let media = Arc::new(encode(h.dir.path(), "stage", "testsrc=size=320x240", 550, 2));
    let base = format!("http://{}", h.addr);
    let publisher = WhipPublisher::start(&base, "demo", &h.token(Role::Member, "王委员"), media, 0x5100_0000).await;
    let text = wait_on_air(&h).await;
    let (edge, _) = hint(&text);
    // Each answered at once (no wait for a part that will not come soon), with a clear code.
    let refused = [
        (format!("index.m3u8?_HLS_msn={}", edge + 50), 400),
        ("index.m3u8?_HLS_msn=9999999999999999999".to_owned(), 400),
        (format!("index.m3u8?_HLS_msn={edge}&_HLS_part=5000"), 400),
        ("index.m3u8?_HLS_msn=1.5".to_owned(), 400),
        (format!("index.m3u8?_HLS_part=0&_HLS_msn={edge}&_HLS_part=1"), 400),
        (format!("{}.0.m4s", edge + 50), 404),
        (format!("{}.m4s", edge + 50), 404),
        (format!("{edge}.999.m4s"), 404),
        ("18446744073709551616.0.m4s".to_owned(), 404),
        ("init-99.mp4".to_owned(), 404),
        ("../index.jsonl".to_owned(), 404),
    ];
    for (path, want) in &refused {
        let t = Instant::now();
        let r = get(&h.http(&format!("/hls/demo/{path}"))).await;
        assert_eq!(r.status().as_u16(), *want, "{path}");
        assert!(t.elapsed() < Duration::from_millis(1500), "{path} took {:?}", t.elapsed());
        if *want == 400 {
            assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "bad_request", "{path}");
        }
    }
    assert_eq!(get(&h.http(&format!("/hls/nope/index.m3u8?_HLS_msn={edge}"))).await.status(), 404);
    assert_eq!(get(&h.http("/hls/nope/0.0.m4s")).await.status(), 404);

    // Players that give up while blocked on a reload for the segment after the hinted one (a
    // whole segment away, ≥ 1.5 s here): their waits end with their connections, before that
    // segment comes or the three-target-duration limit (6 s) answers them.
    let (hinted, _) = hint(&get(&h.http("/hls/demo/index.m3u8")).await.text().await.unwrap());
    let mut waiting = Vec::new();
    for i in 0..60u8 {
        let c = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 30 + i % 20])).build().unwrap();
        let q = if i % 2 == 0 { format!("_HLS_msn={}", hinted + 1) } else { format!("_HLS_msn={}&_HLS_part=3", hinted + 1) };
        let url = h.http(&format!("/hls/demo/index.m3u8?{q}"));
        waiting.push(tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) }));
    }
    let t = Instant::now();
    while blocked_now(&h).await < 30.0 {
        if t.elapsed() > Duration::from_secs(2) {
            let done: Vec<_> = futures_util::future::join_all(waiting.into_iter().filter(|w| w.is_finished())).await;
            panic!("the reloads did not block: {} blocked; finished: {done:?}", blocked_now(&h).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in &waiting {
        w.abort();
    }
    let t = Instant::now();
    while blocked_now(&h).await > 0.0 {
        assert!(t.elapsed() < Duration::from_secs(1), "abandoned waits still blocked after 1 s: {}", blocked_now(&h).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.stop().await;
}
