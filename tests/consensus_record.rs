//! Polls, statements and votes survive `kill -9` of the hub (they are in the driver's
//! checkpoint), and the exported minutes gain the "共识与分歧" section citing the sources.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Client, demo};
use serde_json::{Value, json};
use shangliang_signaling::{ClientMsg, ErrorCode, Form, ServerMsg};

use common::process::{BIN, cli_token, spawn_hub, wait_healthy};
use common::services::free_port;

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

async fn req(c: &mut Client, req: Value) -> Result<Value, ErrorCode> {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.send(&ClientMsg::Consensus { id, topic: demo(), req }).await;
    loop {
        match c.recv().await {
            ServerMsg::ConsensusReply { id: i, reply } if i == id => return Ok(reply),
            ServerMsg::Error { id: Some(i), code, .. } if i == id => return Err(code),
            _ => {}
        }
    }
}

fn export(dir: &std::path::Path, format: &str) -> String {
    let out = Command::new(BIN).args(["export", "--activity", "demo", "--format", format]).arg("--data-dir").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn polls_statements_and_votes_survive_kill_9_and_the_minutes_cite_their_sources() {
    const VOTERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--frames-per-second", "10000"]);
    wait_healthy(port).await;
    let tokens: Vec<String> = (0..VOTERS).map(|i| cli_token(dir.path(), "viewer", &format!("v{i}"))).collect();
    let chair_token = cli_token(dir.path(), "moderator", "主持人");
    let connect = |token: &String| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let mut c = Client::connect(&url, Form::MsgPack).await;
            c.auth(&token).await;
            c
        }
    };

    let mut chair = connect(&chair_token).await;
    let seq = chair.post_ok(&demo(), "社区食堂应向老人优惠").await;
    let promoted = req(&mut chair, json!({"c": "statement_promote", "seq": seq.0})).await.unwrap()["statement"].as_u64().unwrap();
    let left = req(&mut chair, json!({"c": "statement_create", "text": "停车位应优先给住户"})).await.unwrap()["statement"].as_u64().unwrap();
    let right = req(&mut chair, json!({"c": "statement_create", "text": "停车位应向访客开放"})).await.unwrap()["statement"].as_u64().unwrap();
    let closed = req(&mut chair, json!({"c": "poll_create", "spec": {"question": "食堂开在哪里？", "kind": "single_choice", "options": ["东门", "西门"]}})).await.unwrap()["poll"]
        .as_u64()
        .unwrap();
    let open = req(&mut chair, json!({"c": "poll_create", "spec": {"question": "打分", "kind": "rating", "min": 1, "max": 5, "changeable": false}})).await.unwrap()["poll"]
        .as_u64()
        .unwrap();
    for p in [closed, open] {
        req(&mut chair, json!({"c": "poll_launch", "poll": p})).await.unwrap();
    }
    for (i, t) in tokens.iter().enumerate() {
        let mut v = connect(t).await;
        // Everyone agrees with the promoted comment; half the room each with one of the others.
        let camp = i % 2 == 0;
        for (s, agree) in [(promoted, true), (left, camp), (right, !camp)] {
            let vote = if agree { "agree" } else { "disagree" };
            req(&mut v, json!({"c": "statement_vote", "statement": s, "vote": vote})).await.unwrap();
        }
        req(&mut v, json!({"c": "poll_answer", "poll": closed, "answer": {"a": "choice", "option": usize::from(i < 10)}})).await.unwrap();
        req(&mut v, json!({"c": "poll_answer", "poll": open, "answer": {"a": "rating", "value": 4}})).await.unwrap();
    }
    req(&mut chair, json!({"c": "poll_close", "poll": closed})).await.unwrap();
    req(&mut chair, json!({"c": "recompute"})).await.unwrap();
    // The checkpoint is written ~200 ms after the last change (and after the recompute).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hub.kill().unwrap();
    hub.wait().unwrap();

    let mut hub = spawn_hub(dir.path(), port, &["--comments-per-minute", "100000", "--frames-per-second", "10000"]);
    wait_healthy(port).await;
    let mut v0 = connect(&tokens[0]).await;
    let state = req(&mut v0, json!({"c": "state"})).await.unwrap();
    assert_eq!(state["statements"].as_array().unwrap().len(), 3, "{state}");
    let tally = |p: u64| state["tallies"].as_array().unwrap().iter().find(|t| t["poll"] == p).cloned().unwrap();
    assert_eq!((tally(closed)["state"].clone(), tally(closed)["counts"].clone()), (json!("closed"), json!([6, 10])));
    assert_eq!((tally(open)["state"].clone(), tally(open)["voters"].clone()), (json!("open"), json!(VOTERS)));
    // Once per identity holds across the crash; the standing vote is still there.
    assert_eq!(req(&mut v0, json!({"c": "poll_answer", "poll": open, "answer": {"a": "rating", "value": 1}})).await, Err(ErrorCode::AlreadyAnswered));
    let again = req(&mut v0, json!({"c": "statement_vote", "statement": promoted, "vote": "agree"})).await.unwrap();
    assert_eq!(again["outcome"], "unchanged");
    let next = req(&mut v0, json!({"c": "statement_next"})).await.unwrap();
    assert_eq!(next["statements"], json!([]), "nothing left to vote on: {next}");
    let mut chair = connect(&chair_token).await;
    req(&mut chair, json!({"c": "poll_close", "poll": open})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hub.kill().unwrap();
    hub.wait().unwrap();

    // The minutes: consensus (the promoted comment, cited by its seq), the divisive pair,
    // group sizes, both polls.
    let md = export(dir.path(), "markdown");
    let section = &md[md.find("## 共识与分歧").expect("the section is in the minutes")..];
    let consensus = &section[section.find("### 各组共同赞成").unwrap()..section.find("### 各组共同反对").unwrap()];
    assert!(consensus.contains("社区食堂应向老人优惠") && consensus.contains(&format!("评论 #{}", seq.0)), "{consensus}");
    let divisive = &section[section.find("### 分歧").unwrap()..section.find("### 投票结果").unwrap()];
    assert!(divisive.contains("停车位应优先给住户") && divisive.contains("停车位应向访客开放"), "{divisive}");
    let groups = section.lines().find(|l| l.starts_with("- 意见分组")).unwrap();
    assert!(groups.contains("16 计入") && groups.matches(" 8 人").count() == 2, "two camps of 8: {groups}");
    assert!(section.contains("**P1 食堂开在哪里？**") && section.contains("| 东门 | 6 |") && section.contains("| 西门 | 10 |"), "{section}");
    assert!(section.contains("**P2 打分**") && section.contains("平均分 (Mean): 4.00"), "{section}");
    // JSON keeps the consensus part beside the session's; the audit chain holds the polls.
    let json: Value = serde_json::from_str(&export(dir.path(), "json")).unwrap();
    assert_eq!(json["consensus"]["polls"].as_array().unwrap().len(), 2);
    let actions: Vec<&str> = json["audit"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["statement_promoted", "statement_written", "statement_written", "poll_created", "poll_created", "poll_launched", "poll_launched", "poll_closed", "poll_closed"]
    );
    let verified = Command::new(BIN).args(["verify-record", "--activity", "demo"]).arg("--data-dir").arg(dir.path()).output().unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}
