//! Durability: what the hub acknowledged survives `kill -9` of the hub process.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Client, demo};
use shangliang_signaling::{ClientMsg, Form, ItemBody, Position, Seq, ServerMsg};

use common::process::{BIN, cli_token, spawn_hub, wait_healthy};
use common::services::free_port;

#[tokio::test]
async fn acknowledged_comment_survives_kill_9_of_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--frames-per-second", "10000"]);
    wait_healthy(port).await;

    let mut watcher = Client::connect(&url, Form::MsgPack).await;
    watcher.auth(&cli_token(dir.path(), "viewer", "w")).await;
    let epoch = match watcher.sub(&demo(), None).await {
        ServerMsg::Subscribed { epoch, .. } => epoch,
        other => panic!("{other:?}"),
    };

    // Four posters pipeline comments; the hub is killed while many are in flight.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<(Seq, String)>();
    let mut posters = Vec::new();
    for p in 0..4 {
        let token = cli_token(dir.path(), "member", &format!("poster{p}"));
        let url = url.clone();
        let ack_tx = ack_tx.clone();
        posters.push(tokio::spawn(async move {
            let mut c = Client::connect(&url, Form::MsgPack).await;
            c.auth(&token).await;
            let mut texts = BTreeMap::new();
            let mut next = 0u32;
            // Keep up to 8 posts in flight; stop when the connection dies.
            loop {
                while texts.len() < 8 && next < 100_000 {
                    let text = format!("poster{p} comment {next}");
                    c.send(&ClientMsg::Post { id: next, topic: demo(), text: text.clone() }).await;
                    texts.insert(next, text);
                    next += 1;
                }
                match c.try_recv(Duration::from_secs(5)).await {
                    Some(Ok(ServerMsg::Ack { id, seq, .. })) => {
                        let text = texts.remove(&id).expect("ack for a post in flight");
                        if ack_tx.send((seq, text)).is_err() {
                            return;
                        }
                    }
                    Some(Ok(other)) => panic!("unexpected {other:?}"),
                    Some(Err(_)) | None => return,
                }
            }
        }));
    }
    drop(ack_tx);
    let mut acked = BTreeMap::new();
    while acked.len() < 400 {
        let (seq, text) = ack_rx.recv().await.expect("acks keep coming");
        acked.insert(seq, text);
    }
    hub.kill().expect("SIGKILL the hub"); // Child::kill is SIGKILL on unix
    hub.wait().unwrap();
    // Acks that raced the kill are acknowledged too: collect them all.
    for p in posters {
        let _ = p.await;
    }
    while let Ok((seq, text)) = ack_rx.try_recv() {
        acked.insert(seq, text);
    }

    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--frames-per-second", "10000"]);
    wait_healthy(port).await;
    let mut v = Client::connect(&url, Form::MsgPack).await;
    v.auth(&cli_token(dir.path(), "viewer", "after")).await;
    match v.sub(&demo(), Some(Position { epoch, offset: Seq(0) })).await {
        ServerMsg::Subscribed { epoch: e, offset, .. } => {
            assert_eq!(e, epoch, "the epoch survives a restart");
            assert_eq!(offset, Seq(0), "resume from the start is honoured from SQLite");
        }
        other => panic!("{other:?}"),
    }
    let last = *acked.keys().last().unwrap();
    let mut stored = BTreeMap::new();
    while stored.len() < last.0 as usize {
        match v.recv().await {
            ServerMsg::Batch { items, .. } => {
                for item in items {
                    if let ItemBody::Comment { text, .. } = item.body {
                        stored.insert(item.seq, text);
                    }
                }
            }
            // The moderation state follows `subscribed`; it is not part of this test.
            ServerMsg::State { .. } | ServerMsg::Event { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    for (seq, text) in &acked {
        assert_eq!(stored.get(seq), Some(text), "acknowledged comment {seq} lost by kill -9");
    }
    hub.kill().unwrap();
    hub.wait().unwrap();
}

#[tokio::test]
async fn moderation_state_continues_after_kill_9_of_the_hub() {
    use common::{cmd, ok, sub_state};
    use shangliang_signaling::consult::{Command, GrantTarget, PolicyChange, QuestionOp, Reply};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--frames-per-second", "10000"]);
    wait_healthy(port).await;
    let connect = |role: &'static str, name: &'static str| {
        let (url, token) = (url.clone(), cli_token(dir.path(), role, name));
        async move {
            let mut c = Client::connect(&url, Form::MsgPack).await;
            c.auth(&token).await;
            c
        }
    };

    let mut chair = connect("moderator", "主持人").await;
    ok(&mut chair, Command::SetCommentPolicy { change: PolicyChange::Review(true) }).await;
    let mut member = connect("member", "甲").await;
    ok(&mut member, Command::RaiseHand).await;
    ok(&mut chair, Command::GrantFloor { target: GrantTarget::NextHand, limit_ms: Some(600_000) }).await;
    let mut viewer = connect("viewer", "网友").await;
    let held = match viewer.post(&demo(), "重启前待审").await {
        ServerMsg::Ack { seq, held: true, .. } => seq,
        other => panic!("{other:?}"),
    };
    let id = common::ask(&mut viewer, "重启前的问题").await;
    ok(&mut chair, Command::ModerateQuestion { id, op: QuestionOp::Publish }).await;
    // The checkpoint is written ~200 ms after the last change.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    hub.kill().unwrap();
    hub.wait().unwrap();

    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--frames-per-second", "10000"]);
    wait_healthy(port).await;
    let mut chair = connect("moderator", "主持人").await;
    let (_, state) = sub_state(&mut chair).await;
    assert!(state.comment_modes.review, "review mode survives the crash");
    assert!(state.questions.iter().any(|q| q.id == id && q.text == "重启前的问题"));
    assert_eq!(
        state.floor.holder.map(|p| p.to_string()),
        Some("member:甲".to_string()),
        "the speaker keeps the turn for a while, in case they reconnect"
    );
    assert!(state.present.iter().all(|p| p.id != "member:甲"), "but is not present");
    match ok(&mut chair, Command::ApproveComment { seq: held }).await {
        Reply::Approved { comment } => assert_eq!(comment.text, "重启前待审"),
        other => panic!("{other:?}"),
    }
    assert!(cmd(&mut chair, Command::ApproveComment { seq: held }).await.is_err());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    hub.kill().unwrap();
    hub.wait().unwrap();

    // The minutes cover both runs, and the audit chain is whole.
    let minutes = std::process::Command::new(BIN)
        .args(["export", "--activity", "demo", "--format", "json"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(minutes.status.success(), "{}", String::from_utf8_lossy(&minutes.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&minutes.stdout).unwrap();
    assert_eq!(summary["turns"].as_array().unwrap().len(), 1, "the turn before the crash");
    let actions: Vec<&str> = summary["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["comment_policy_set", "floor_granted", "question_published", "comment_approved"],
        "one chain across the crash"
    );
    let verified = std::process::Command::new(BIN)
        .args(["verify-record", "--activity", "demo"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}
