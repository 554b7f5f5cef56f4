//! Hidden means gone for the public (issue 12): after `hide_comment`, a viewer who resumes from
//! an earlier offset, gets a `reset` snapshot, or resumes after the hub restarted receives a
//! tombstone at the comment's seq (a hide of that seq, no text), never the original text;
//! moderators still see the original.

mod common;

use std::time::{Duration, Instant};

use common::{Client, cmd, demo};
use shangliang_signaling::consult::Command as ConsultCommand;
use shangliang_signaling::{Epoch, Form, Item, ItemBody, Position, Seq, ServerMsg};

use common::process::{cli_token, spawn_hub, wait_healthy};
use common::services::free_port;
const SECRET: &str = "加微信领红包 13800000000";

async fn client(port: u16, dir: &std::path::Path, role: &str, name: &str) -> Client {
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/ws"), Form::Json).await;
    c.auth(&cli_token(dir, role, name)).await;
    c
}

/// Every item received until one with seq `upto` has arrived (batches and a reset's snapshot).
async fn items_until(c: &mut Client, upto: Seq) -> Vec<Item> {
    let mut got: Vec<Item> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.iter().any(|i| i.seq >= upto) {
        assert!(Instant::now() < deadline, "items up to {upto:?} never came: {got:?}");
        match c.try_recv(Duration::from_secs(5)).await {
            Some(Ok(ServerMsg::Batch { items, .. })) => got.extend(items),
            Some(Ok(ServerMsg::Reset { snapshot, .. })) => got.extend(snapshot),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    got
}

#[track_caller]
fn assert_tombstoned(items: &[Item], hidden: Seq, path: &str) {
    for i in items {
        if let ItemBody::Comment { text, .. } = &i.body {
            assert_ne!(text, SECRET, "{path}: the hidden text was re-sent: {items:?}");
        }
    }
    let at = items.iter().find(|i| i.seq == hidden).unwrap_or_else(|| panic!("{path}: nothing at seq {hidden:?}: {items:?}"));
    assert_eq!(at.body, ItemBody::Hide { target: hidden }, "{path}: a tombstone at the hidden seq");
}

#[tokio::test]
async fn a_hidden_comment_reaches_the_public_as_a_tombstone_on_resume_reset_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--no-programme"]);
    wait_healthy(port).await;

    let mut chair = client(port, dir.path(), "moderator", "主持人").await;
    let epoch = match chair.sub(&demo(), None).await {
        ServerMsg::Subscribed { epoch, .. } => epoch,
        other => panic!("{other:?}"),
    };
    let mut member = client(port, dir.path(), "member", "王委员").await;
    let before = member.post_ok(&demo(), "第一条").await;
    let hidden = member.post_ok(&demo(), SECRET).await;
    cmd(&mut chair, ConsultCommand::HideComment { seq: hidden, reason: "广告".into() }).await.expect("hidden");
    let after = member.post_ok(&demo(), "第三条").await;
    assert!(before < hidden && hidden < after);

    // 1. Resume from an earlier offset (the in-memory history).
    let mut v = client(port, dir.path(), "viewer", "观众甲").await;
    v.sub(&demo(), Some(Position { epoch, offset: Seq(0) })).await;
    assert_tombstoned(&items_until(&mut v, after).await, hidden, "resume");

    // Moderators keep the original.
    let mut m = client(port, dir.path(), "moderator", "副主持").await;
    m.sub(&demo(), Some(Position { epoch, offset: Seq(0) })).await;
    let full = items_until(&mut m, after).await;
    assert!(
        full.iter().any(|i| i.seq == hidden && matches!(&i.body, ItemBody::Comment { text, .. } if text == SECRET)),
        "moderators still see the original: {full:?}"
    );

    // 2. A reset snapshot (resume from an epoch that is not the topic's).
    let mut r = client(port, dir.path(), "viewer", "观众乙").await;
    r.sub(&demo(), Some(Position { epoch: Epoch(epoch.0 ^ 1), offset: Seq(1) })).await;
    assert_tombstoned(&items_until(&mut r, after).await, hidden, "reset snapshot");

    // 3. A reconnect after a restart (read back from the record).
    drop((chair, member, v, m, r));
    hub.kill().unwrap();
    hub.wait().unwrap();
    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--no-programme"]);
    wait_healthy(port).await;
    let mut v = client(port, dir.path(), "viewer", "观众丙").await;
    v.sub(&demo(), Some(Position { epoch, offset: Seq(0) })).await;
    assert_tombstoned(&items_until(&mut v, after).await, hidden, "resume after restart");
    hub.kill().unwrap();
    hub.wait().unwrap();
}
