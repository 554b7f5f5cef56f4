//! The hub behind Debian's nginx as the HLS cache (the role a CDN plays), with the configuration
//! `docs/operations.md` recommends — read from that file, between its `nginx-hls` markers, so the
//! documented configuration is the tested one. Fifty LL-HLS players (blocking playlist reloads
//! for the preload-hinted part and part downloads, as hls.js does) play through nginx at once:
//! the hub (origin) serves about one request per part and per blocking-reload URI, whatever the
//! number of players, and every player gets exactly the hub's bytes.
//!
//! Needs `nginx` and `ffmpeg` (`.ci/run` installs both); nginx is started here as a local
//! process on an ephemeral loopback port and stopped at the end.
#![allow(missing_docs)]

mod common;
#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestHub;
use common::services::Nginx;
use shangliang_signaling::Role;
use whip_publisher::{WhipPublisher, encode};

/// Players at once, and how many parts each plays.
const PLAYERS: usize = 50;
const PARTS_EACH: usize = 8;

/// The `http {}` snippet of docs/operations.md, between its markers, without the code fence.
fn documented_config() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let block = doc.split("<!-- nginx-hls-begin -->").nth(1).and_then(|r| r.split("<!-- nginx-hls-end -->").next()).expect("docs/operations.md has the nginx-hls block");
    block.trim().trim_start_matches("```nginx").trim_end_matches("```").to_owned()
}

/// nginx with the documented configuration in front of the hub at `hub_port`.
async fn nginx_in_front(hub_port: u16) -> Nginx {
    let snippet = documented_config();
    for must in ["proxy_cache_lock on;", "proxy_cache_key $scheme$proxy_host$request_uri;", "server 127.0.0.1:8080;", "listen 80;", "/var/cache/nginx/shangliang"] {
        assert!(snippet.contains(must), "the documented configuration lost {must:?}");
    }
    Nginx::start(|d, port| {
        let snippet = snippet
            .replace("server 127.0.0.1:8080;", &format!("server 127.0.0.1:{hub_port};"))
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace("/var/cache/nginx/shangliang", &format!("{d}/cache"));
        format!("  access_log {d}/access.log;\n{snippet}")
    })
    .await
}

/// The hub's `shangliang_hls_requests_total` by kind.
async fn origin_counts(h: &TestHub) -> BTreeMap<String, u64> {
    let text = reqwest::get(h.http("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("shangliang_hls_requests_total{"))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let kind = labels.split(',').find_map(|kv| kv.strip_prefix("kind=\""))?.trim_end_matches('"');
            Some((kind.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The newest part listed and the preload hint (`msn`, `part`) of a live playlist.
fn newest_part_and_hint(text: &str) -> (Option<String>, Option<(u64, u32)>) {
    let uri = |l: &str| l.split("URI=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
    let newest = text.lines().filter(|l| l.starts_with("#EXT-X-PART:")).filter_map(uri).next_back();
    let hint = text.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:")).and_then(uri).and_then(|u| {
        let mut it = u.trim_end_matches(".m4s").split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    });
    (newest, hint)
}

/// What one player did: the blocking-reload URIs it asked, the parts it got (name → bytes),
/// and how many of its answers nginx served from its cache.
#[derive(Default)]
struct Played {
    reloads: Vec<String>,
    parts: BTreeMap<String, bytes::Bytes>,
    hits: usize,
}

/// One LL-HLS player as hls.js plays: the playlist, then for each next part a blocking reload
/// for the hinted part and a download of the newest part the answer lists.
async fn player(base: String, parts: usize) -> Result<Played, String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let mut got = Played::default();
    let fetch = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
            let hit = r.headers().get("x-cache-status").is_some_and(|v| v == "HIT");
            if r.status() != 200 {
                return Err(format!("{url}: {}", r.status()));
            }
            Ok::<_, String>((r.bytes().await.map_err(|e| e.to_string())?, hit))
        }
    };
    let (mut text, _) = fetch(format!("{base}/index.m3u8")).await?;
    for _ in 0..parts {
        let (newest, hint) = newest_part_and_hint(std::str::from_utf8(&text).unwrap());
        if let Some(name) = newest.filter(|n| !got.parts.contains_key(n)) {
            let (bytes, hit) = fetch(format!("{base}/{name}")).await?;
            got.hits += usize::from(hit);
            got.parts.insert(name, bytes);
        }
        let (msn, part) = hint.ok_or("no preload hint")?;
        let q = format!("index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
        let (next, hit) = fetch(format!("{base}/{q}")).await?;
        got.hits += usize::from(hit);
        got.reloads.push(q);
        text = next;
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_fifty_ll_hls_players_cost_the_hub_about_one_request_per_part() {
    let h = TestHub::start(|c| {
        c.edge.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let media = Arc::new(encode(h.dir.path(), "stage", "testsrc=size=320x240", 550, 2));
    let publisher = WhipPublisher::start(&format!("http://{}", h.addr), "demo", &h.token(Role::Member, "王委员"), media, 0x4300_0000).await;
    let t = Instant::now();
    while reqwest::get(h.http("/hls/demo/index.m3u8")).await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "not on air in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let nginx = nginx_in_front(h.addr.port()).await;

    let before = origin_counts(&h).await;
    let base = nginx.url("/hls/demo");
    let players: Vec<_> = (0..PLAYERS).map(|_| tokio::spawn(player(base.clone(), PARTS_EACH))).collect();
    let mut played = Vec::new();
    for p in players {
        played.push(tokio::time::timeout(Duration::from_secs(60), p).await.expect("a player hung").unwrap().unwrap_or_else(|e| panic!("a player failed: {e}\n{}", nginx.log())));
    }
    let after = origin_counts(&h).await;
    let delta = |kind: &str| after.get(kind).copied().unwrap_or(0) - before.get(kind).copied().unwrap_or(0);
    let (origin_parts, origin_reloads) = (delta("part"), delta("blocking_playlist"));

    // Every player got the hub's bytes: each part as the hub serves it directly.
    let distinct_parts: BTreeSet<&String> = played.iter().flat_map(|p| p.parts.keys()).collect();
    let distinct_reloads: BTreeSet<&String> = played.iter().flat_map(|p| p.reloads.iter()).collect();
    let player_parts: usize = played.iter().map(|p| p.parts.len()).sum();
    let player_reloads: usize = played.iter().map(|p| p.reloads.len()).sum();
    for name in &distinct_parts {
        let direct = reqwest::get(h.http(&format!("/hls/demo/{name}"))).await.unwrap();
        assert_eq!(direct.status(), 200, "{name}");
        let direct = direct.bytes().await.unwrap();
        for p in &played {
            if let Some(b) = p.parts.get(*name) {
                assert!(b == &direct, "{name}: a player got {} bytes through nginx, the hub serves {}", b.len(), direct.len());
            }
        }
    }
    publisher.stop().await;
    let hits: usize = played.iter().map(|p| p.hits).sum();
    eprintln!(
        "{PLAYERS} players: {player_parts} part downloads of {} parts, {player_reloads} blocking reloads of {} URIs; \
         the hub served {origin_parts} parts and {origin_reloads} blocking reloads; nginx answered {hits} from its cache",
        distinct_parts.len(),
        distinct_reloads.len()
    );
    assert!(distinct_parts.len() >= PARTS_EACH - 2 && player_parts >= PLAYERS * (PARTS_EACH - 2), "the players did play: {player_parts} parts");
    // About one origin request per part and per blocking-reload URI, not one per player.
    assert!(origin_parts as usize <= 2 * distinct_parts.len(), "{origin_parts} origin part requests for {} parts", distinct_parts.len());
    assert!(origin_reloads as usize <= 2 * distinct_reloads.len(), "{origin_reloads} origin blocking reloads for {} URIs", distinct_reloads.len());
    assert!(origin_parts as usize * 10 < player_parts && origin_reloads as usize * 10 < player_reloads, "the cache did not collapse the players' requests");
    assert!(hits > player_parts, "nginx said HIT only {hits} times");
    assert!(!nginx.log().contains("[emerg]"), "{}", nginx.log());
}
