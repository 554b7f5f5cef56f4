//! The replay page in Chromium: a session is recorded (a WHIP stage publisher, the floor passed
//! from one member to another, a viewer's comment in each turn), the livestream ends, and
//! `/replay/demo` plays the recording through hls.js from the start, lists the chapters by floor
//! turn, shows a comment when the playhead reaches its moment, and seeks on a chapter click
//! (`tests/browser/replay.mjs`).
//!
//! Needs Node.js, `chromium`, `ffmpeg`, `web-client/dist` and `tests/browser/node_modules` (made
//! here when missing; `.ci/run` makes them beforehand).
#![allow(missing_docs)]

mod common;
#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::browser::{prerequisites, root};
use common::{TestHub, demo, ok};
use shangliang::record::ActivityState;
use shangliang_signaling::Role;
use shangliang_signaling::consult::{Command, GrantTarget, ParticipantId};
use whip_publisher::{WhipPublisher, encode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_page_plays_from_the_start_with_chapters_that_seek_and_comments_at_their_moments() {
    let chromium = prerequisites();
    let web = root().join("web-client/dist");
    let h = TestHub::start(|c| c.web_dir = Some(web.clone())).await;
    let (a, b) = ("甲委员", "乙委员");
    let pid = |name: &str| ParticipantId::new(format!("member:{name}"));
    let mut chair = h.client(Role::Moderator, "主持人").await;
    let _present = [h.client(Role::Member, a).await, h.client(Role::Member, b).await];
    let mut viewer = h.client(Role::Viewer, "小王").await;
    let (c1, c2) = ("第一轮的评论", "第二轮的评论");

    // The session: a's turn with a comment about 3 s in, b's turn from about 6 s with another.
    let media = Arc::new(encode(h.dir.path(), "stage", "testsrc2=size=320x240", 440, 2));
    ok(&mut chair, Command::GrantFloor { target: GrantTarget::Participant(pid(a)), limit_ms: None }).await;
    let publisher = WhipPublisher::start(&format!("http://{}", h.addr), "demo", &h.token(Role::Member, a), media, 0x4200_0000).await;
    let t = Instant::now();
    while reqwest::get(h.http("/hls/demo/recording.m3u8")).await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "nothing recorded in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    viewer.post_ok(&demo(), c1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ok(&mut chair, Command::GrantFloor { target: GrantTarget::Participant(pid(b)), limit_ms: None }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    viewer.post_ok(&demo(), c2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.hub.record.set_activity_state(&demo(), ActivityState::Ended).await.unwrap();
    // The recording is complete once replay.json says the session is over with both turns.
    let t = Instant::now();
    loop {
        let v: serde_json::Value = reqwest::get(h.http("/hls/demo/replay.json")).await.unwrap().json().await.unwrap_or_default();
        if v["live"] == false && v["chapters"].as_array().is_some_and(|c| c.len() == 2) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "the recording did not end: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    publisher.stop().await;

    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let node = tokio::process::Command::new("node")
        .arg(root().join("tests/browser/replay.mjs"))
        .arg(format!("http://{}", h.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium)
        .env("SHANGLIANG_COMMENT_1", c1)
        .env("SHANGLIANG_COMMENT_2", c2)
        .env("SHANGLIANG_SPEAKER_B", b)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), node).await.expect("replay.mjs did not finish within 120 s").expect("cannot run node (is Node.js installed?)");
    eprintln!("--- replay.mjs ---\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "replay.mjs failed ({})", out.status);
}
