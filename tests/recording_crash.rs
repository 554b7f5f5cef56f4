//! The recording survives `kill -9` of the hub up to its last complete segment, and a restarted
//! hub continues the same recording (numbering, discontinuity). The hub runs as its own process;
//! a WHIP publisher (H.264 + Opus from ffmpeg) feeds it; ffmpeg reads what is left on disk.
#![allow(missing_docs)]

#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shangliang::programme::playlist::render_vod;
use shangliang::programme::store::{Recording, recording_dir};
use whip_publisher::{WhipPublisher, encode};

const BIN: &str = env!("CARGO_BIN_EXE_shangliang");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_hub(dir: &std::path::Path, port: u16) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--web-dir", "/nonexistent"])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hub")
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "hub did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cli_token(dir: &std::path::Path, name: &str) -> String {
    let out = Command::new(BIN).args(["token", "--activity", "demo", "--role", "member", "--name", name]).arg("--data-dir").arg(dir).output().expect("token");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn wait_segments(dir: &std::path::Path, n: usize) -> Recording {
    let t = Instant::now();
    loop {
        let rec = Recording::read(&recording_dir(dir, "demo")).unwrap();
        if rec.segments.len() >= n {
            return rec;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "only {} segments recorded in 30 s", rec.segments.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Plays what the index lists with ffmpeg (as VOD); returns its stderr.
fn play(dir: &std::path::Path) -> String {
    let rdir = recording_dir(dir, "demo");
    let rec = Recording::read(&rdir).unwrap();
    let list = rdir.join("check.m3u8");
    std::fs::write(&list, render_vod(&rec.segments, true)).unwrap();
    let out = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&list).args(["-f", "null", "-"]).output().expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_survives_kill_9_up_to_the_last_segment_and_a_restart_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let media = Arc::new(encode(dir.path(), "stage", "testsrc2=size=320x240", 500, 3));
    let port = free_port();
    let mut hub = spawn_hub(dir.path(), port);
    wait_healthy(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let publisher = WhipPublisher::start(&base, "demo", &cli_token(dir.path(), "甲委员"), Arc::clone(&media), 0x6000_0000).await;
    let before = wait_segments(dir.path(), 3).await;
    // Kill it in the middle of a segment.
    tokio::time::sleep(Duration::from_millis(700)).await;
    hub.kill().unwrap();
    hub.wait().unwrap();
    publisher.stop().await;
    let after_kill = Recording::read(&recording_dir(dir.path(), "demo")).unwrap();
    assert!(after_kill.segments.len() >= before.segments.len());
    assert!(!after_kill.ended);
    for s in &after_kill.segments {
        let f = recording_dir(dir.path(), "demo").join(format!("{}.m4s", s.msn));
        assert!(std::fs::metadata(&f).is_ok_and(|m| m.len() > 1000), "segment {} listed but not whole on disk", s.msn);
    }
    assert_eq!(play(dir.path()).trim(), "", "what survived plays cleanly");

    // Restart: the same recording goes on, after a discontinuity, with new numbers.
    let port = free_port();
    let mut hub = spawn_hub(dir.path(), port);
    wait_healthy(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let publisher = WhipPublisher::start(&base, "demo", &cli_token(dir.path(), "乙委员"), media, 0x7000_0000).await;
    let rec = wait_segments(dir.path(), after_kill.segments.len() + 2).await;
    let resumed = &rec.segments[after_kill.segments.len()];
    assert_eq!(resumed.msn, after_kill.next_msn());
    assert!(resumed.discontinuity, "the restarted programme begins after a discontinuity");
    assert!(resumed.epoch >= after_kill.next_epoch());
    assert!(rec.segments.windows(2).all(|w| w[1].msn == w[0].msn + 1));
    assert_eq!(play(dir.path()).trim(), "", "the whole recording plays cleanly across the restart");
    publisher.stop().await;
    hub.kill().unwrap();
    hub.wait().unwrap();
}
