//! The replay's data from a recorded session: a WebRTC stage publisher (H.264 + Opus by WHIP)
//! is recorded while the floor passes from one member to another and viewers comment; after the
//! livestream ends, `replay.json` gives the recording's time line and one chapter per floor turn
//! at the right place of the VOD, `comments.json` the public comments (not the hidden one) at
//! their moments, and Debian's `ffprobe` reads the recording the chapters point into.
//!
//! Needs `ffmpeg` (`apt-get install ffmpeg`; `.ci/run` installs it).
#![allow(missing_docs)]

mod common;
#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestHub, demo, ok};
use serde_json::Value;
use shangliang::record::ActivityState;
use shangliang_signaling::Role;
use shangliang_signaling::consult::{Command, GrantTarget, ParticipantId};
use whip_publisher::{WhipPublisher, encode};

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

async fn json(url: &str) -> (u16, Value) {
    let r = get(url).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Waits (bounded) until `f` holds of `replay.json`; returns it.
async fn replay_until(h: &TestHub, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let (status, v) = json(&h.http("/hls/demo/replay.json")).await;
        if status == 200 && f(&v) {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "replay.json never showed {what}: {status} {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_with_chapters_by_floor_turn_and_comments_at_their_moments() {
    let h = TestHub::start(|_| {}).await;
    let (a, b) = ("甲委员", "乙委员");
    let pid = |name: &str| ParticipantId::new(format!("member:{name}"));
    // Before anything was recorded there is nothing to replay (a clear 404, not an empty page).
    let (status, v) = json(&h.http("/hls/demo/replay.json")).await;
    assert_eq!((status, v["error"].as_str()), (404, Some("no_recording")), "{v}");
    assert_eq!(get(&h.http("/hls/nope/replay.json")).await.status(), 404);
    assert_eq!(get(&h.http("/hls/demo-room/replay.json")).await.status(), 404, "a room has no programme");

    let mut chair = h.client(Role::Moderator, "主持人").await;
    let _present = [h.client(Role::Member, a).await, h.client(Role::Member, b).await];
    let mut viewer = h.client(Role::Viewer, "小王").await;
    let mut troll = h.client(Role::Viewer, "广告号").await;

    let media = Arc::new(encode(h.dir.path(), "stage", "testsrc2=size=320x240", 440, 2));
    let base = format!("http://{}", h.addr);
    ok(&mut chair, Command::GrantFloor { target: GrantTarget::Participant(pid(a)), limit_ms: None }).await;
    let publisher = WhipPublisher::start(&base, "demo", &h.token(Role::Member, a), media, 0x4100_0000).await;

    // Recording: a's turn, with a comment in it.
    let started = replay_until(&h, "a recording", |v| v["duration_ms"].as_u64().is_some_and(|d| d >= 2000)).await;
    assert_eq!(started["live"], true, "the session is still on: {started}");
    assert_eq!(started["playlist"], "recording.m3u8");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first_at = now_ms();
    let first = viewer.post_ok(&demo(), "甲委员说得好").await;
    let spam = troll.post_ok(&demo(), "加微信领红包").await;
    ok(&mut chair, Command::HideComment { seq: spam, reason: "广告".into() }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // b's turn: a later comment.
    let handed_at = now_ms();
    ok(&mut chair, Command::GrantFloor { target: GrantTarget::Participant(pid(b)), limit_ms: None }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second_at = now_ms();
    let second = viewer.post_ok(&demo(), "乙委员的数据从哪里来？").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // During the session the chapters are already there (from the moderation's checkpoint).
    let live = replay_until(&h, "two chapters", |v| v["chapters"].as_array().is_some_and(|c| c.len() == 2)).await;
    assert_eq!(live["live"], true);

    // The livestream ends; the recording is complete.
    h.hub.record.set_activity_state(&demo(), ActivityState::Ended).await.unwrap();
    let r = replay_until(&h, "the end", |v| v["live"] == false).await;
    publisher.stop().await;
    let start = r["start_ms"].as_u64().expect("start_ms");
    let duration = r["duration_ms"].as_u64().unwrap();
    assert!(duration >= 8_000, "recorded {duration} ms: {r}");
    let runs = r["timeline"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one uninterrupted run: {r}");

    // One chapter per floor turn, in order, each where the turn began on the VOD.
    let ch = r["chapters"].as_array().unwrap();
    assert_eq!(ch.iter().map(|c| c["name"].as_str().unwrap()).collect::<Vec<_>>(), [a, b], "{r}");
    assert_eq!(ch[0]["holder"], pid(a).as_str());
    assert_eq!(ch[0]["offset_ms"], 0, "a's turn began before the recording: it starts at the start");
    let b_at = ch[1]["offset_ms"].as_u64().unwrap();
    let b_expected = handed_at.saturating_sub(start);
    assert!(b_at.abs_diff(b_expected) <= 1_000, "b's chapter at {b_at} ms, the hand-over was at {b_expected} ms");
    assert_eq!(ch[0]["duration_ms"].as_u64().unwrap(), b_at, "a's chapter runs until b's");
    assert_eq!(b_at + ch[1]["duration_ms"].as_u64().unwrap(), duration, "the open turn runs to the end");
    assert!(ch[1]["end_ms"].is_null());

    // The comments at their moments, the hidden one left out; a cache may keep the ended answer.
    let resp = get(&h.http("/hls/demo/comments.json")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=3600");
    let c: Value = resp.json().await.unwrap();
    let comments = c["comments"].as_array().unwrap();
    assert_eq!(comments.iter().map(|c| c["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [first.0, second.0], "{c}");
    assert_eq!(comments[0]["text"], "甲委员说得好");
    assert_eq!(comments[0]["name"], "小王");
    for (comment, at) in comments.iter().zip([first_at, second_at]) {
        let offset = comment["offset_ms"].as_u64().unwrap();
        assert!(offset.abs_diff(at - start) <= 1_000, "comment at {offset} ms, posted at {} ms", at - start);
    }
    assert!(comments[0]["offset_ms"].as_u64() < Some(b_at) && comments[1]["offset_ms"].as_u64() > Some(b_at), "each comment in its turn");
    assert_eq!(c["next"], Value::Null);
    assert_eq!(c["complete"], true);
    // Paging: one at a time, from a cursor.
    let (_, p1) = json(&h.http("/hls/demo/comments.json?limit=1")).await;
    assert_eq!(p1["comments"].as_array().unwrap().len(), 1);
    let next = p1["next"].as_u64().expect("next");
    let (_, p2) = json(&h.http(&format!("/hls/demo/comments.json?after={next}&limit=1000"))).await;
    assert!(p2["comments"].as_array().unwrap().iter().all(|c| c["seq"].as_u64() > Some(next)));
    for bad in ["limit=0", "limit=1001", "after=x", "after=1&after=2"] {
        let (status, v) = json(&h.http(&format!("/hls/demo/comments.json?{bad}"))).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("bad_request")), "{bad}");
    }

    // The VOD the chapters point into is what an independent reader sees.
    let url = h.http("/hls/demo/recording.m3u8");
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("ffprobe").args(["-v", "error", "-show_entries", "format=duration", "-of", "json", &url]).output().expect("ffprobe"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "ffprobe: {stderr}");
    let probed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let probed_ms = (probed["format"]["duration"].as_str().unwrap().parse::<f64>().unwrap() * 1000.0) as u64;
    assert!(probed_ms.abs_diff(duration) <= 1_500, "ffprobe sees {probed_ms} ms, replay.json says {duration} ms");
    assert!(b_at < probed_ms, "b's chapter lies inside the recording");

    // `shangliang export` names the recording: where to watch it, its length, the chapters.
    let (exe, dir) = (env!("CARGO_BIN_EXE_shangliang"), h.dir.path().to_str().unwrap().to_owned());
    let export = |format: &str| {
        let out = std::process::Command::new(exe).args(["export", "--format", format, "--activity", "demo", "--data-dir", &dir]).output().unwrap();
        assert!(out.status.success(), "export {format}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let clock = |ms: u64| format!("{}:{:02}", ms / 60_000, ms / 1000 % 60);
    let md = export("md");
    let section = md.split("## 六、录像 (Recording)").nth(1).unwrap_or_else(|| panic!("no recording section:\n{md}"));
    assert!(section.contains("`/replay/demo`") && section.contains("`/hls/demo/recording.m3u8`"), "{section}");
    assert!(section.contains(&format!("时长 (Duration): {}", clock(duration))), "{section}");
    assert!(section.contains(&format!("| 1 | 0:00 | {a} |")) && section.contains(&format!("| 2 | {} | {b} |", clock(b_at))), "{section}");
    assert!(!section.contains("仍在进行"), "the livestream ended: {section}");
    let js: Value = serde_json::from_str(&export("json")).unwrap();
    assert_eq!(js["recording"]["duration_ms"], duration);
    assert_eq!(js["recording"]["ended"], true);
    assert_eq!(js["recording"]["chapters"], r["chapters"], "the export and the replay page agree");
    assert_eq!(js["turns"].as_array().unwrap().len(), 2, "the summary itself is unchanged");
    let csv = export("csv");
    assert!(csv.contains(&format!("recording,/hls/demo/recording.m3u8,,,,0,{duration},{duration},complete,/replay/demo\n")), "{csv}");
    assert!(csv.contains(&format!("chapter,2,{},{b},,{b_at},", pid(b).as_str())), "{csv}");
}
