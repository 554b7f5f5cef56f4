//! Pinning a camera for the livestream programme is a moderation command: sent over the
//! moderation websocket (`pin_programme`), authorised as floor control, written to the audit
//! chain (and so to the record and the minutes), and then obeyed by the programme — which
//! switches to the pinned camera although the floor is someone else's. The old HTTP endpoint is
//! an alias going through the same path.
//!
//! Needs `ffmpeg` (`.ci/run` installs it).
#![allow(missing_docs)]

mod common;
#[path = "support/whip_publisher.rs"]
mod whip_publisher;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestHub, cmd, event, ok};
use serde_json::Value;
use shangliang_signaling::consult::{Command, ConsultEvent, GrantTarget, ParticipantId};
use shangliang_signaling::{ErrorCode, Role};
use whip_publisher::{WhipPublisher, encode};

/// Waits (bounded) until `programme.json`'s `programme` satisfies `f`; returns it.
async fn programme_until(h: &TestHub, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let v: Value = reqwest::get(h.http("/hls/demo/programme.json")).await.unwrap().json().await.unwrap();
        if f(&v["programme"]) {
            return v["programme"].clone();
        }
        assert!(t.elapsed() < Duration::from_secs(20), "the programme never showed {what}: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn audited(c: &mut common::Client, action: &'static str) -> (String, String) {
    event(c, |e| match e {
        ConsultEvent::Audit { entry } if entry.action == action => Some((entry.actor.as_str().to_owned(), entry.target.clone())),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_pins_a_camera_with_an_audited_command_and_the_programme_follows() {
    let h = TestHub::start(|_| {}).await;
    let (a, b) = ("甲委员", "乙委员");
    let pid = |name: &str| ParticipantId::new(format!("member:{name}"));
    let mut chair = h.client(Role::Moderator, "主持人").await;
    // Another moderator's console sees the audit entries as they are written.
    let mut console = h.client(Role::Moderator, "记录员").await;
    common::sub_state(&mut console).await;
    let mut member = h.client(Role::Member, a).await;
    let _b = h.client(Role::Member, b).await;
    let mut viewer = h.client(Role::Viewer, "小王").await;
    viewer.post_ok(&common::demo(), "来了").await;

    let base = format!("http://{}", h.addr);
    let cam_a = Arc::new(encode(h.dir.path(), "a", "testsrc=size=320x240", 440, 2));
    let cam_b = Arc::new(encode(h.dir.path(), "b", "testsrc2=size=320x240", 660, 2));
    ok(&mut chair, Command::GrantFloor { target: GrantTarget::Participant(pid(a)), limit_ms: None }).await;
    let pa = WhipPublisher::start(&base, "demo", &h.token(Role::Member, a), cam_a, 0x4400_0000).await;
    let pb = WhipPublisher::start(&base, "demo", &h.token(Role::Member, b), cam_b, 0x4500_0000).await;
    programme_until(&h, "a's camera (a holds the floor)", |p| p["video"] == pid(a).as_str()).await;

    // Only a moderator may pin; a viewer cannot be pinned.
    assert_eq!(cmd(&mut member, Command::PinProgramme { participant: Some(pid(b)) }).await, Err(ErrorCode::Forbidden));
    let viewer_id = ParticipantId::new("viewer:小王");
    let refused = cmd(&mut chair, Command::PinProgramme { participant: Some(viewer_id) }).await;
    assert!(refused.is_err(), "a viewer was pinned: {refused:?}");

    // The moderator pins b over the websocket: audited, then the programme shows b's camera
    // although a still holds the floor.
    ok(&mut chair, Command::PinProgramme { participant: Some(pid(b)) }).await;
    let (actor, target) = audited(&mut console, "programme_pinned").await;
    assert_eq!((actor.as_str(), target.as_str()), ("moderator:主持人", pid(b).as_str()));
    let p = programme_until(&h, "b's camera after the pin", |p| p["video"] == pid(b).as_str()).await;
    assert_eq!(p["pin"], pid(b).as_str());

    // The HTTP endpoint is an alias of the same command: unpinning is audited too, and the
    // floor decides again.
    let r = reqwest::Client::new().post(h.http("/api/activities/demo/programme/pin")).bearer_auth(h.token(Role::Moderator, "主持人")).body(r#"{"participant":null}"#).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (actor, _) = audited(&mut console, "programme_unpinned").await;
    assert_eq!(actor, "moderator:主持人");
    let p = programme_until(&h, "a's camera after the unpin", |p| p["video"] == pid(a).as_str()).await;
    assert!(p["pin"].is_null());
    let r = reqwest::Client::new().post(h.http("/api/activities/demo/programme/pin")).bearer_auth(h.token(Role::Member, a)).body(r#"{"participant":null}"#).send().await.unwrap();
    assert_eq!(r.status(), 403, "a member cannot pin over HTTP either");

    // The record keeps both, in the audit chain the minutes list.
    let t = Instant::now();
    loop {
        let s = h.hub.record.summary(&common::demo()).await.unwrap();
        if s.as_ref().is_some_and(|(json, _)| json.contains("programme_pinned") && json.contains("programme_unpinned")) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the record does not have the pin: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = h.hub.record.audit_log(&common::demo()).await.unwrap();
    let pinned = log.iter().find(|e| e.action == "programme_pinned").expect("programme_pinned in the audit log");
    assert_eq!(pinned.target, pid(b).as_str());
    pa.stop().await;
    pb.stop().await;
}

/// The moderation checkpoint in the hub's SQLite record (read-only, beside the running hub).
fn stored_checkpoint(dir: &std::path::Path) -> Option<String> {
    let db = rusqlite::Connection::open_with_flags(dir.join("shangliang.sqlite3"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    db.query_row("SELECT state FROM summaries WHERE activity = 'demo'", [], |r| r.get::<_, Option<String>>(0)).ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_programme_pin_survives_kill_9_of_the_hub() {
    use common::process::{cli_token, spawn_hub, wait_healthy};
    let dir = tempfile::tempdir().unwrap();
    let port = common::services::free_port();
    let mut hub = spawn_hub(dir.path(), port, &["--rtc-udp-port", "0"]);
    wait_healthy(port).await;
    let url = format!("ws://127.0.0.1:{port}/ws");
    let connect = |role: &'static str, name: &'static str| {
        let (url, token) = (url.clone(), cli_token(dir.path(), role, name));
        async move {
            let mut c = common::Client::connect(&url, shangliang_signaling::Form::MsgPack).await;
            c.auth(&token).await;
            c
        }
    };
    let b = ParticipantId::new("member:乙委员");
    let pin_shown = |want: Option<&'static str>| async move {
        let t = Instant::now();
        loop {
            let v: Value = reqwest::get(format!("http://127.0.0.1:{port}/hls/demo/programme.json")).await.unwrap().json().await.unwrap();
            if v["programme"]["pin"].as_str() == want {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "the programme never showed pin {want:?}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut chair = connect("moderator", "主持人").await;
    let _member = connect("member", "乙委员").await;
    ok(&mut chair, Command::PinProgramme { participant: Some(b.clone()) }).await;
    pin_shown(Some("member:乙委员")).await;
    // The checkpoint (written shortly after a change) holds the pin.
    let t = Instant::now();
    while !stored_checkpoint(dir.path()).is_some_and(|s| s.contains("\"programme_pin\":\"member:乙委员\"")) {
        assert!(t.elapsed() < Duration::from_secs(10), "no checkpoint with the pin: {:?}", stored_checkpoint(dir.path()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.kill().unwrap();
    hub.wait().unwrap();
    drop((chair, _member));

    let mut hub = spawn_hub(dir.path(), port, &["--rtc-udp-port", "0"]);
    wait_healthy(port).await;
    // The people come back (as after any restart), which continues the activity's moderation
    // from its checkpoint: the programme shows the pinned camera again, unpinned only by a
    // moderator.
    let mut chair = connect("moderator", "主持人").await;
    pin_shown(Some("member:乙委员")).await;
    ok(&mut chair, Command::PinProgramme { participant: None }).await;
    pin_shown(None).await;
    hub.kill().unwrap();
    hub.wait().unwrap();
}
