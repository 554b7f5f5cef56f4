//! Issue 12, item 5: a graceful stop (SIGTERM) closes the attendance in the record — nobody is
//! left "在场" (present) in the minutes of a session that ended — and `export` tells an
//! activity nobody has joined yet (empty minutes) from one that does not exist (an error).

mod common;

use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::process::{BIN, cli_token, spawn_hub, wait_healthy};
use common::{Client, ok};
use serde_json::Value;
use shangliang_signaling::Form;
use shangliang_signaling::consult::{Command, GrantTarget};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `shangliang export` on `dir`: success, stdout, stderr.
fn export(dir: &std::path::Path, activity: &str, format: &str) -> (bool, String, String) {
    let out = Process::new(BIN)
        .args(["export", "--activity", activity, "--format", format])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run export");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn connect(port: u16, token: &str) -> Client {
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/ws"), Form::MsgPack).await;
    c.auth(token).await;
    c
}

#[tokio::test]
async fn sigterm_closes_every_open_attendance_span_in_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = spawn_hub(dir.path(), port, &[]);
    wait_healthy(port).await;
    let mut chair = connect(port, &cli_token(dir.path(), "moderator", "主持人")).await;
    let mut member = connect(port, &cli_token(dir.path(), "member", "王委员")).await;
    let _viewer = connect(port, &cli_token(dir.path(), "viewer", "网友")).await;
    ok(&mut member, Command::RaiseHand).await;
    ok(&mut chair, Command::GrantFloor { target: GrantTarget::NextHand, limit_ms: Some(600_000) }).await;

    // SIGTERM while everyone is connected and the member holds the floor.
    let status = Process::new("kill").args(["-TERM", &hub.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = hub.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = hub.kill();
            let _ = hub.wait();
            panic!("the hub did not stop within 30 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "a graceful stop exits 0: {exit:?}");

    let (ok_json, json, err) = export(dir.path(), "demo", "json");
    assert!(ok_json, "{err}");
    let json: Value = serde_json::from_str(&json).unwrap();
    let people = json["participants"].as_array().unwrap();
    assert_eq!(people.len(), 2, "the chair and the member: {people:?}");
    for p in people {
        let last = p["spans"].as_array().unwrap().last().unwrap();
        assert!(last["left_at_ms"].is_u64(), "the span is closed at the stop: {p}");
    }
    let turn = json["turns"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(turn["end"], "left", "the turn at the floor ended with the session: {turn}");
    assert_eq!(json["viewers"]["current"], 0);
    let (ok_md, md, err) = export(dir.path(), "demo", "md");
    assert!(ok_md, "{err}");
    let attendance = md.split("## ").find(|s| s.contains("进入—离开")).expect("an attendance section");
    assert!(!attendance.contains("在场 |") && !attendance.contains("—在场"), "nobody is left present:\n{attendance}");
}

#[tokio::test]
async fn export_gives_empty_minutes_for_an_activity_nobody_joined_and_an_error_for_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = spawn_hub(dir.path(), port, &[]);
    wait_healthy(port).await;
    let _ = hub.kill();
    let _ = hub.wait();

    // `demo-room` is created with the demo activities; nobody joined it.
    let (ok_md, md, err) = export(dir.path(), "demo-room", "md");
    assert!(ok_md, "an activity nobody joined has (empty) minutes: {err}");
    assert!(md.contains("视频会商室（演示）"), "titled: {md}");
    assert!(md.contains("（无）"), "with empty sections: {md}");
    let (ok_json, json, err) = export(dir.path(), "demo-room", "json");
    assert!(ok_json, "{err}");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!((json["participants"].as_array().map(Vec::len), json["questions"].as_array().map(Vec::len)), (Some(0), Some(0)));
    let (ok_csv, _, err) = export(dir.path(), "demo-room", "csv");
    assert!(ok_csv, "{err}");

    let (ok_unknown, out, err) = export(dir.path(), "no-such-activity", "md");
    assert!(!ok_unknown, "an unknown activity is an error: {out}");
    assert!(err.contains("no activity no-such-activity in the record"), "a message of its own: {err}");
    assert!(!err.contains("no session record"), "{err}");
}
