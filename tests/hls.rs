//! The livestream programme end to end: a WebRTC stage publisher (H.264 + Opus encoded by
//! ffmpeg, sent by WHIP) → the hub's programme → LL-HLS, checked by an independent reader
//! (Debian's `ffmpeg`/`ffprobe`) live and from the recording; blocking reloads; bad requests.
//!
//! Needs `ffmpeg` (`apt-get install ffmpeg`; `.ci/run` installs it).
#![allow(missing_docs)]

mod common;
#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestHub;
use m3u8_rs::{MediaPlaylist, Playlist};
use shangliang::record::ActivityState;
use shangliang_signaling::Role;
use whip_publisher::{WhipPublisher, encode};

/// The SFU binds one ephemeral UDP port per hub (the old port-range argument is ignored).
async fn hub(_first_port: u16) -> TestHub {
    TestHub::start(|_| {}).await
}

fn parse(text: &str) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(p)) => p,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Waits (bounded) until the live playlist has at least `segments` segments; returns it.
async fn wait_playlist(h: &TestHub, segments: usize) -> String {
    let t = Instant::now();
    loop {
        let r = get(&h.http("/hls/demo/index.m3u8")).await;
        if r.status() == 200 {
            let text = r.text().await.unwrap();
            if parse(&text).segments.len() >= segments {
                return text;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no playlist with {segments} segments in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `(msn, part)` of the playlist's preload hint.
fn hint(text: &str) -> (u64, u32) {
    let line = text.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:")).expect("preload hint");
    let uri = line.split("URI=\"").nth(1).unwrap().trim_end_matches('"');
    let mut it = uri.trim_end_matches(".m4s").split('.');
    (it.next().unwrap().parse().unwrap(), it.next().unwrap().parse().unwrap())
}

fn ffmpeg(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("ffmpeg").args(args).output().expect("ffmpeg (apt-get install ffmpeg)");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Reads every packet with ffprobe and checks timestamps per stream: strictly increasing
/// decode times for video, non-decreasing for audio, no gap longer than `max_gap` seconds.
/// Returns (video packets, audio packets, duration in seconds).
fn ffprobe_timeline(url: &str, max_gap: f64) -> (usize, usize, f64) {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=codec_type,dts_time", "-of", "json", url])
        .output()
        .expect("ffprobe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "ffprobe {url}: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let mut last: [Option<f64>; 2] = [None, None];
    let mut counts = [0usize; 2];
    let (mut first, mut end) = (f64::MAX, 0f64);
    for p in v["packets"].as_array().expect("packets") {
        let kind = usize::from(p["codec_type"] != "video");
        let Some(dts) = p["dts_time"].as_str().and_then(|d| d.parse::<f64>().ok()) else { continue };
        if let Some(prev) = last[kind] {
            if kind == 0 {
                assert!(dts > prev, "video decode time not increasing: {prev} then {dts}");
            } else {
                assert!(dts >= prev, "audio decode time went back: {prev} then {dts}");
            }
            assert!(dts - prev <= max_gap, "gap of {:.3} s in {}", dts - prev, if kind == 0 { "video" } else { "audio" });
        }
        last[kind] = Some(dts);
        counts[kind] += 1;
        first = first.min(dts);
        end = end.max(dts);
    }
    (counts[0], counts[1], end - first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hls_requests_get_a_clear_4xx_and_nothing_stays_blocked() {
    let h = hub(55_000).await;
    let status = |path: &'static str| {
        let url = h.http(path);
        async move { get(&url).await.status().as_u16() }
    };
    assert_eq!(status("/hls/nope/index.m3u8").await, 404);
    assert_eq!(status("/hls/demo-room/index.m3u8").await, 404, "a room has no programme");
    // Nobody on stage yet: not on air (with Retry-After), not a 404.
    let r = get(&h.http("/hls/demo/index.m3u8")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["cache-control"], "no-store");
    for q in ["_HLS_msn=abc", "_HLS_part=1", "_HLS_msn=1&_HLS_msn=2", "_HLS_msn=-3", "_HLS_msn=999999", "_HLS_msn=1&_HLS_part=99999999999"] {
        let r = get(&h.http(&format!("/hls/demo/index.m3u8?{q}"))).await;
        assert_eq!(r.status(), 400, "{q}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bad_request", "{q}");
    }
    for f in ["index.jsonl", "5.m4s", "5.0.m4s", "init-0.mp4", "x.mp4", "1.2.3.m4s"] {
        assert_eq!(get(&h.http(&format!("/hls/demo/{f}"))).await.status(), 404, "{f}");
    }
    assert_eq!(status("/hls/demo/recording.m3u8").await, 404, "nothing recorded yet");
    // CORS preflight for a player on another origin asking for a range.
    let pre = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, h.http("/hls/demo/index.m3u8"))
        .header("origin", "https://player.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    // The pin is for moderators only.
    let member = h.token(Role::Member, "王委员");
    let r = reqwest::Client::new().post(h.http("/api/activities/demo/programme/pin")).bearer_auth(member).body(r#"{"participant":"x"}"#).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let metrics = get(&h.http("/metrics")).await.text().await.unwrap();
    let blocked = metrics.lines().find(|l| l.starts_with("shangliang_hls_blocked_requests ")).map(|l| l.split_whitespace().nth(1).unwrap().to_owned());
    assert!(blocked.as_deref().is_none_or(|v| v == "0"), "{blocked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_stage_publisher_becomes_ll_hls_that_ffmpeg_reads_live_and_from_the_recording() {
    let h = hub(55_200).await;
    let media = Arc::new(encode(h.dir.path(), "stage", "testsrc2=size=640x360", 440, 4));
    assert!(media.frames.len() >= 100 && media.opus.len() >= 150, "{} frames, {} opus packets", media.frames.len(), media.opus.len());
    let base = format!("http://{}", h.addr);
    let publisher = WhipPublisher::start(&base, "demo", &h.token(Role::Member, "王委员"), Arc::clone(&media), 0x4000_0000).await;
    let text = wait_playlist(&h, 2).await;
    for tag in ["#EXT-X-VERSION:9", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=", "#EXT-X-PART-INF:PART-TARGET=0.500", "#EXT-X-MAP:URI=\"init-0.mp4\"", "#EXT-X-PROGRAM-DATE-TIME:", "INDEPENDENT=YES", "#EXT-X-PRELOAD-HINT:TYPE=PART"] {
        assert!(text.contains(tag), "missing {tag}:\n{text}");
    }
    let pl = parse(&text);
    assert_eq!(pl.target_duration, 2);
    for s in &pl.segments {
        assert!(s.duration <= 2.5, "segment of {} s", s.duration);
    }

    // Blocking reload: ask for the hinted part; the answer comes when it is listed.
    let (msn, part) = hint(&text);
    let t = Instant::now();
    let r = get(&h.http(&format!("/hls/demo/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"))).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let blocked = r.text().await.unwrap();
    assert!(blocked.contains(&format!("URI=\"{msn}.{part}.m4s\"")), "{blocked}");
    assert!(t.elapsed() < Duration::from_secs(3), "answered in {:?}", t.elapsed());
    // The next hinted part is served as soon as it is written (the request waits for it).
    let (m2, p2) = hint(&blocked);
    let r = get(&h.http(&format!("/hls/demo/{m2}.{p2}.m4s"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert!(r.bytes().await.unwrap().len() > 100);
    // Range requests on a segment.
    let seg = &pl.segments[0].uri;
    let full = get(&h.http(&format!("/hls/demo/{seg}"))).await.bytes().await.unwrap();
    let r = reqwest::Client::new().get(h.http(&format!("/hls/demo/{seg}"))).header("range", "bytes=4-11").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], format!("bytes 4-11/{}", full.len()).as_str());
    assert_eq!(&r.bytes().await.unwrap()[..], &full[4..12]);
    assert_eq!(&full[4..8], b"moof", "a segment starts with a fragment");
    // The status says who is on air.
    let st: serde_json::Value = get(&h.http("/hls/demo/programme.json")).await.json().await.unwrap();
    assert_eq!(st["programme"]["video"], "member:王委员", "{st}");
    assert_eq!(st["programme"]["audio_mode"], "single_voice");

    // An independent reader plays the live playlist: exit 0, nothing on stderr.
    let url = h.http("/hls/demo/index.m3u8");
    let (ok, err) = tokio::task::spawn_blocking(move || ffmpeg(&["-v", "error", "-i", &url, "-t", "6", "-f", "null", "-"])).await.unwrap();
    assert!(ok && err.trim().is_empty(), "ffmpeg on the live playlist: {err}");

    // The livestream ends: the live playlist ends, the recording is VOD.
    h.hub.record.set_activity_state(&common::demo(), ActivityState::Ended).await.unwrap();
    let t = Instant::now();
    loop {
        let text = get(&h.http("/hls/demo/index.m3u8")).await.text().await.unwrap();
        if text.contains("#EXT-X-ENDLIST") {
            assert!(!text.contains("PRELOAD-HINT"));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the live playlist did not end:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    publisher.stop().await;
    let rec = get(&h.http("/hls/demo/recording.m3u8")).await.text().await.unwrap();
    let vod = parse(&rec);
    assert!(vod.end_list && vod.playlist_type == Some(m3u8_rs::MediaPlaylistType::Vod), "{rec}");
    let recorded: f32 = vod.segments.iter().map(|s| s.duration).sum();
    assert!(recorded > 8.0, "recorded {recorded} s");
    let dir = h.dir.path().join("recordings/demo");
    assert!(dir.join("index.jsonl").is_file() && dir.join("init-0.mp4").is_file() && dir.join(&vod.segments[0].uri).is_file());
    let rec_url = h.http("/hls/demo/recording.m3u8");
    let (ok, err) = tokio::task::spawn_blocking({
        let u = rec_url.clone();
        move || ffmpeg(&["-v", "error", "-i", &u, "-f", "null", "-"])
    })
    .await
    .unwrap();
    assert!(ok && err.trim().is_empty(), "ffmpeg on the recording: {err}");
    let (video, audio, duration) = tokio::task::spawn_blocking(move || ffprobe_timeline(&rec_url, 2.5)).await.unwrap();
    assert!(video > 200 && audio > 300, "{video} video and {audio} audio packets");
    assert!((duration - recorded as f64).abs() < 1.5, "ffprobe sees {duration} s, the playlist says {recorded} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_blocked_reloads_are_answered_by_one_update_and_release_their_sockets() {
    let h = hub(55_400).await;
    let media = Arc::new(encode(h.dir.path(), "stage", "testsrc=size=320x240", 660, 2));
    let base = format!("http://{}", h.addr);
    let publisher = WhipPublisher::start(&base, "demo", &h.token(Role::Member, "李委员"), media, 0x5000_0000).await;
    let text = wait_playlist(&h, 1).await;
    let edge = parse(&text).media_sequence + parse(&text).segments.len() as u64 - 1;
    let fds = || std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let before = fds();
    // Each waits for the next complete segment: about two seconds from now.
    let want = edge + 2;
    // From 25 loopback addresses, 40 each: the hub's edge admits at most 64 pending connections
    // per client address (docs/operations.md), as many players behind one address would need.
    let clients: Vec<reqwest::Client> = (2..27u8)
        .map(|i| reqwest::Client::builder().pool_max_idle_per_host(0).local_address(std::net::IpAddr::from([127, 0, 0, i])).build().unwrap())
        .collect();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..1000 {
        let (c, url) = (clients[n % clients.len()].clone(), h.http(&format!("/hls/demo/index.m3u8?_HLS_msn={want}")));
        tasks.push(tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) }));
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(200)) = t.await {
            ok += 1;
        }
    }
    let elapsed = t.elapsed();
    assert_eq!(ok, 1000);
    assert!(elapsed < Duration::from_secs(6), "blocked reloads answered in {elapsed:?}");
    let text = get(&h.http("/hls/demo/index.m3u8")).await.text().await.unwrap();
    assert!(text.contains(&format!("\n{want}.m4s")), "{text}");
    drop(clients);
    let t = Instant::now();
    while fds() > before + 20 {
        assert!(t.elapsed() < Duration::from_secs(10), "sockets not released: {} open, {before} before", fds());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publisher.stop().await;
}
