//! Cluster mode: every node serves the livestream's LL-HLS. The programme is made on the
//! activity's home node (the stage publishes there); the other node answers its players itself
//! with the home's bytes through its relay (`src/server/hls/relay.rs`), so twenty players on the
//! other node cost the home about one request per part and per blocking-reload URI.
//!
//! Starts `nats-server`, a throwaway PostgreSQL and two hub processes as local processes; needs
//! `ffmpeg` for the stage publisher (`.ci/run` installs all of them).
#![allow(missing_docs)]

mod common;
#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::demo;
use common::services::{Nats, Postgres, free_port};
use shangliang::server::auth::{Claims, TokenKeys, now_secs};
use shangliang_signaling::Role;
use whip_publisher::{WhipPublisher, encode};

const BIN: &str = env!("CARGO_BIN_EXE_shangliang");
const SECRET: &str = "5c1d0e8f2a4b6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f";
const PLAYERS: usize = 20;
const PARTS_EACH: usize = 6;

struct Node {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Node {
    async fn start(root: &Path, name: &str, nats: &Nats, pg: &Postgres) -> Node {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret.key"), SECRET).unwrap();
        let port = free_port();
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--rtc-udp-port", "0"])
            .args(["--nats", &nats.url(), "--database", &pg.url()])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("hub.log")).unwrap())
            .spawn()
            .expect("spawn hub");
        let node = Node { port, dir, child };
        let t = Instant::now();
        while !reqwest::get(node.http("/healthz")).await.is_ok_and(|r| r.status() == 200) {
            assert!(t.elapsed() < Duration::from_secs(30), "node {name} not healthy: {}", node.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn http(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("hub.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(role: Role, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.key"), SECRET).unwrap();
    let now = now_secs();
    TokenKeys::load_or_create(dir.path()).unwrap().mint(&Claims {
        sub: format!("{}:{name}", role.as_str()).into(),
        name: name.into(),
        role,
        act: demo(),
        org: None,
        verified: false,
        iat: now,
        exp: now + 3600,
    })
}

/// The node's `shangliang_hls_requests_total` by kind.
async fn served(n: &Node) -> BTreeMap<String, u64> {
    let text = reqwest::get(n.http("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("shangliang_hls_requests_total{"))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let kind = labels.split(',').find_map(|kv| kv.strip_prefix("kind=\""))?.trim_end_matches('"');
            Some((kind.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The newest part listed and the preload hint of a live playlist.
fn newest_part_and_hint(text: &str) -> (Option<String>, Option<(u64, u32)>) {
    let uri = |l: &str| l.split("URI=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
    let newest = text.lines().filter(|l| l.starts_with("#EXT-X-PART:")).filter_map(uri).next_back();
    let hint = text.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:")).and_then(uri).and_then(|u| {
        let mut it = u.trim_end_matches(".m4s").split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    });
    (newest, hint)
}

/// One LL-HLS player: blocking reload for the hinted part, then the newest part listed.
/// Returns the parts it got (name → bytes) and the reload URIs it asked.
async fn player(http: reqwest::Client, base: String) -> Result<(BTreeMap<String, bytes::Bytes>, Vec<String>), String> {
    let fetch = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
            if r.status() != 200 {
                return Err(format!("{url}: {}", r.status()));
            }
            r.bytes().await.map_err(|e| e.to_string())
        }
    };
    let (mut parts, mut reloads) = (BTreeMap::new(), Vec::new());
    let mut text = fetch(format!("{base}/index.m3u8")).await?;
    for _ in 0..PARTS_EACH {
        let (newest, hint) = newest_part_and_hint(std::str::from_utf8(&text).unwrap());
        if let Some(name) = newest.filter(|n| !parts.contains_key(n)) {
            let b = fetch(format!("{base}/{name}")).await?;
            parts.insert(name, b);
        }
        let (msn, part) = hint.ok_or("no preload hint")?;
        let q = format!("index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
        text = fetch(format!("{base}/{q}")).await?;
        reloads.push(q);
    }
    Ok((parts, reloads))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_the_livestream_and_the_home_sees_about_one_request_per_part() {
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;
    let urls: Vec<shangliang_signaling::NodeId> = [&a, &b].iter().map(|n| n.base().into()).collect();
    let home_url = shangliang::bus::home_node(&demo(), &urls).unwrap().to_string();
    let (home, other) = if a.base() == home_url { (&a, &b) } else { (&b, &a) };

    let media = Arc::new(encode(root.path(), "stage", "testsrc=size=320x240", 440, 2));
    let publisher = WhipPublisher::start(&home.base(), "demo", &token(Role::Member, "王委员"), media, 0x4600_0000).await;
    // The other node answers itself (no redirect), once the home is on air.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(15)).build().unwrap();
    let t = Instant::now();
    loop {
        let r = http.get(other.http("/hls/demo/index.m3u8")).send().await.unwrap();
        assert_ne!(r.status().as_u16(), 307, "the other node still redirects");
        if r.status() == 200 && r.text().await.unwrap().contains("#EXTINF") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the other node never served the live playlist\nhome: {}\nother: {}", home.log(), other.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status: serde_json::Value = http.get(other.http("/hls/demo/programme.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["live"], true, "{status}");
    assert_eq!(status["programme"]["video"], "member:王委员", "{status}");

    let before = served(home).await;
    let base = other.http("/hls/demo");
    let players: Vec<_> = (0..PLAYERS).map(|_| tokio::spawn(player(http.clone(), base.clone()))).collect();
    let mut played = Vec::new();
    for p in players {
        played.push(tokio::time::timeout(Duration::from_secs(60), p).await.expect("a player hung").unwrap().unwrap_or_else(|e| panic!("a player failed: {e}")));
    }
    let after = served(home).await;
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);

    let distinct_parts: BTreeSet<&String> = played.iter().flat_map(|(p, _)| p.keys()).collect();
    let distinct_reloads: BTreeSet<&String> = played.iter().flat_map(|(_, r)| r.iter()).collect();
    let player_parts: usize = played.iter().map(|(p, _)| p.len()).sum();
    // Every player got the home's bytes.
    for name in &distinct_parts {
        let direct = http.get(home.http(&format!("/hls/demo/{name}"))).send().await.unwrap().bytes().await.unwrap();
        for (p, _) in &played {
            if let Some(b) = p.get(*name) {
                assert!(b == &direct, "{name}: {} bytes through the other node, {} from the home", b.len(), direct.len());
            }
        }
    }
    // A byte range of a relayed part is the home's range.
    let first = distinct_parts.iter().next().unwrap();
    let r = http.get(other.http(&format!("/hls/demo/{first}"))).header("range", "bytes=0-7").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[4..8], b"moof");
    // Bad input is refused by the home and passed on as it is, or refused here.
    assert_eq!(http.get(other.http("/hls/demo/index.m3u8?_HLS_msn=abc")).send().await.unwrap().status(), 400);
    assert_eq!(http.get(other.http("/hls/demo/x.mp4")).send().await.unwrap().status(), 404);
    publisher.stop().await;

    let (origin_parts, origin_reloads) = (delta("part"), delta("blocking_playlist"));
    eprintln!(
        "{PLAYERS} players on the other node: {player_parts} part downloads of {} parts, {} reload URIs; the home served {origin_parts} parts and {origin_reloads} blocking reloads",
        distinct_parts.len(),
        distinct_reloads.len()
    );
    assert!(player_parts >= PLAYERS * (PARTS_EACH - 2), "the players did play: {player_parts} parts");
    assert!(origin_parts as usize <= 2 * distinct_parts.len(), "{origin_parts} part requests at the home for {} parts", distinct_parts.len());
    assert!(origin_reloads as usize <= 2 * distinct_reloads.len(), "{origin_reloads} blocking reloads at the home for {} URIs", distinct_reloads.len());

    // `export` from the cluster's database names the recording when given the home node's
    // data directory (where the recording is), and none with the other node's.
    let mut viewer = common::Client::connect(&format!("ws://127.0.0.1:{}/ws", home.port), shangliang_signaling::Form::MsgPack).await;
    viewer.auth(&token(Role::Viewer, "小王")).await;
    viewer.post_ok(&demo(), "看得见").await;
    let export = |dir: &Path| {
        let out = Command::new(BIN).args(["export", "--activity", "demo", "--format", "json", "--database", &pg.url()]).arg("--data-dir").arg(dir).output().unwrap();
        out.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    };
    let t = Instant::now();
    let v = loop {
        if let Some(v) = export(&home.dir) {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "no session record to export");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rec = &v["recording"];
    assert_eq!(rec["playlist_url"], "/hls/demo/recording.m3u8", "{v}");
    assert!(rec["segments"].as_u64().unwrap_or(0) >= 1 && rec["duration_ms"].as_u64().unwrap_or(0) > 0, "{rec}");
    let elsewhere = export(&other.dir).expect("export with the other node's directory");
    assert!(elsewhere.get("recording").is_none(), "the other node holds no recording: {elsewhere}");
}
