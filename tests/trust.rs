//! Issue 13, the server side of a web client people trust: discipline follows the person
//! across a rename, a newcomer sees the stream's history after a restart, the review queue
//! lives in the server, and the stage is behind the chair.

mod common;

use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Client, TestHub, cmd, demo, event, items_through, ok, sub_state};
use serde_json::{Value, json};
use shangliang_signaling::consult::{Command, ConsultEvent, ParticipantId, PolicyChange, Reply};
use shangliang_signaling::{ClientMsg, ErrorCode, Form, ItemBody, Role, Seq, ServerMsg};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `POST /api/activities/demo/viewer-token` with `body`; the status and the JSON answer.
async fn viewer_token(hub: &TestHub, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(hub.http("/api/activities/demo/viewer-token"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn viewer(hub: &TestHub, token: &str) -> Client {
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.auth(token).await;
    c
}

fn refusal(m: ServerMsg) -> ErrorCode {
    match m {
        ServerMsg::Error { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// ---- 1. discipline follows the person ----

#[tokio::test]
async fn a_timed_out_viewer_who_changes_nickname_is_still_timed_out_and_a_banned_one_still_banned() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let (status, first) = viewer_token(&hub, json!({"name": "网友1234"})).await;
    assert_eq!(status, 200, "{first}");
    let subject = first["subject"].as_str().unwrap().to_owned();
    let mut v = viewer(&hub, first["token"].as_str().unwrap()).await;
    v.post_ok(&demo(), "第一条").await;
    ok(&mut chair, Command::Timeout { who: ParticipantId::new(subject.clone()), until_ms: now_ms() + 600_000, reason: "刷屏".into() }).await;
    assert_eq!(refusal(v.post(&demo(), "第二条").await), ErrorCode::TimedOut);

    // 更换昵称: the page hands its token back; the new token has the same subject, a new name.
    let (status, renamed) = viewer_token(&hub, json!({"name": "换个马甲", "token": first["token"]})).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["subject"], subject.as_str(), "a rename keeps the identity");
    assert_eq!(renamed["name"], "换个马甲");
    let mut v2 = viewer(&hub, renamed["token"].as_str().unwrap()).await;
    assert_eq!(refusal(v2.post(&demo(), "换了名字再来").await), ErrorCode::TimedOut);

    ok(&mut chair, Command::Ban { who: ParticipantId::new(subject.clone()), reason: "辱骂".into() }).await;
    let (_, again) = viewer_token(&hub, json!({"name": "第三个马甲", "token": renamed["token"]})).await;
    assert_eq!(again["subject"], subject.as_str());
    let mut v3 = viewer(&hub, again["token"].as_str().unwrap()).await;
    assert_eq!(refusal(v3.post(&demo(), "还是我").await), ErrorCode::Banned);
}

#[tokio::test]
async fn only_a_valid_viewer_token_of_the_same_activity_is_renewed() {
    let hub = TestHub::start(|_| {}).await;
    let (status, body) = viewer_token(&hub, json!({"name": "甲", "token": "not.a.token"})).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    let member = hub.token(Role::Member, "王委员");
    let (status, body) = viewer_token(&hub, json!({"name": "甲", "token": member})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "a member's subject is not handed to a viewer token");
    let other = hub.token_with(Role::Viewer, "乙", "other", 3600);
    let (status, _) = viewer_token(&hub, json!({"name": "甲", "token": other})).await;
    assert_eq!(status, 403, "a token of another activity");
    let expired = hub.token_with(Role::Viewer, "丙", "demo", -10);
    let (status, body) = viewer_token(&hub, json!({"name": "甲", "token": expired})).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("token_expired")));
    // Without a token: a fresh identity, as before.
    let (s1, a) = viewer_token(&hub, json!({"name": "甲"})).await;
    let (s2, b) = viewer_token(&hub, json!({"name": "甲"})).await;
    assert_eq!((s1, s2), (200, 200));
    assert_ne!(a["subject"], b["subject"]);
}

// ---- 2. a newcomer after a restart sees the stream's history ----

const BIN: &str = env!("CARGO_BIN_EXE_shangliang");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A hub process on `dir` (so it can be killed and started again on the same record).
struct HubProcess(Child);

impl HubProcess {
    async fn start(dir: &std::path::Path, port: u16) -> HubProcess {
        let child = Process::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--comments-per-minute", "100000", "--frames-per-second", "10000"])
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hub");
        // Owned at once, so a panic below still kills and reaps it.
        let hub = HubProcess(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
                && r.status().is_success()
            {
                return hub;
            }
            assert!(Instant::now() < deadline, "hub did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli_token(dir: &std::path::Path, role: &str, name: &str) -> String {
    let out = Process::new(BIN)
        .args(["token", "--activity", "demo", "--role", role, "--name", name])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run token command");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Subscribes with `last` and gathers what the catch-up brings: the `subscribed` offset, the
/// comments on screen (hides applied) and the live edge reached, checking that batches are
/// contiguous from the offset on.
async fn newcomer(c: &mut Client, last: Option<u32>, edge: Seq) -> (Seq, Vec<String>) {
    c.send(&ClientMsg::Sub { topic: demo(), resume: None, last }).await;
    let offset = loop {
        match c.recv().await {
            ServerMsg::Subscribed { offset, .. } => break offset,
            ServerMsg::Error { code, message, .. } => panic!("{code:?}: {message}"),
            _ => {}
        }
    };
    let mut shown: Vec<(Seq, String)> = Vec::new();
    let mut at = offset;
    while at < edge {
        if let ServerMsg::Batch { from, to, items, .. } = c.recv().await {
            assert_eq!(from, at.next(), "batches continue the subscribed offset without a gap");
            at = to;
            for i in items {
                match i.body {
                    ItemBody::Comment { text, .. } => shown.push((i.seq, text)),
                    ItemBody::Hide { target } => shown.retain(|(s, _)| *s != target),
                }
            }
        }
    }
    (offset, shown.into_iter().map(|(_, t)| t).collect())
}

#[tokio::test]
async fn a_newcomer_after_a_hub_restart_gets_the_last_comments_from_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let hub = HubProcess::start(dir.path(), port).await;
    let mut member = Client::connect(&url, Form::MsgPack).await;
    member.auth(&cli_token(dir.path(), "member", "王委员")).await;
    let mut seqs = Vec::new();
    for i in 0..120 {
        seqs.push(member.post_ok(&demo(), &format!("第{i}条")).await);
    }
    // One of the recent ones is hidden: the newcomer must not see it.
    let mut chair = Client::connect(&url, Form::MsgPack).await;
    chair.auth(&cli_token(dir.path(), "moderator", "主持人")).await;
    ok(&mut chair, Command::HideComment { seq: seqs[115], reason: "广告".into() }).await;
    drop((member, chair, hub));

    let _hub = HubProcess::start(dir.path(), port).await;
    let edge = Seq(121); // 120 comments and the hide
    let mut fresh = Client::connect(&url, Form::MsgPack).await;
    fresh.auth(&cli_token(dir.path(), "viewer", "新来的")).await;
    let (offset, shown) = newcomer(&mut fresh, Some(50), edge).await;
    assert_eq!(offset, Seq(71), "50 items before the edge");
    let want: Vec<String> = (71..120).filter(|i| *i != 115).map(|i| format!("第{i}条")).collect();
    assert_eq!(shown, want, "the last comments, read from the record after the restart, the hidden one left out");

    // More than the cap is served as the cap; without `last` the stream starts at the live edge.
    let mut greedy = Client::connect(&url, Form::MsgPack).await;
    greedy.auth(&cli_token(dir.path(), "viewer", "贪心")).await;
    let (offset, _) = newcomer(&mut greedy, Some(1_000_000), edge).await;
    assert_eq!(offset, Seq(121 - u64::from(shangliang_signaling::limits::MAX_SUB_LAST)));
    let mut plain = Client::connect(&url, Form::MsgPack).await;
    plain.auth(&cli_token(dir.path(), "viewer", "普通")).await;
    let (offset, shown) = newcomer(&mut plain, None, edge).await;
    assert_eq!((offset, shown.len()), (edge, 0));
}

// ---- 3. the review queue in the server ----

fn held_seqs(state: &shangliang_signaling::consult::Snapshot) -> Vec<Seq> {
    state.held.iter().map(|c| c.seq).collect()
}

async fn post_held(c: &mut Client, text: &str) -> Seq {
    match c.post(&demo(), text).await {
        ServerMsg::Ack { seq, held: true, .. } => seq,
        other => panic!("expected a held ack, got {other:?}"),
    }
}

#[tokio::test]
async fn held_comments_are_marked_by_the_server_rejected_with_a_reason_and_shown_to_their_author_as_pending() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    ok(&mut chair, Command::SetCommentPolicy { change: PolicyChange::Review(true) }).await;
    let (_, state) = sub_state(&mut chair).await;
    assert!(state.held.is_empty());
    let mut author = hub.client(Role::Viewer, "网友甲").await;
    sub_state(&mut author).await;
    let mut other = hub.client(Role::Viewer, "网友乙").await;
    sub_state(&mut other).await;

    let seq = post_held(&mut author, "请审核").await;
    let marked = event(&mut chair, |e| match e {
        ConsultEvent::CommentHeld { comment } => Some(comment.clone()),
        _ => None,
    })
    .await;
    assert_eq!((marked.seq, marked.text.as_str(), marked.author.name.as_str()), (seq, "请审核", "网友甲"), "the moderators learn which comment is held");
    let own = event(&mut author, |e| match e {
        ConsultEvent::CommentHeld { comment } => Some(comment.seq),
        _ => None,
    })
    .await;
    assert_eq!(own, seq, "the author learns it too");

    // A fresh subscription: the moderator's state lists it, the author's lists their own, others' nothing.
    let mut chair2 = hub.client(Role::Moderator, "副主持").await;
    assert_eq!(held_seqs(&sub_state(&mut chair2).await.1), vec![seq]);
    let mut author2 = Client::connect(&hub.url(), Form::MsgPack).await;
    author2.auth(&hub.token(Role::Viewer, "网友甲")).await;
    assert_eq!(held_seqs(&sub_state(&mut author2).await.1), vec![seq], "the author sees their own held comment after a reload");
    let mut other2 = hub.client(Role::Viewer, "网友乙").await;
    assert!(sub_state(&mut other2).await.1.held.is_empty(), "nobody else sees it");

    // Reject: not public, gone from the moderators' view, the author told, the reason logged.
    assert_eq!(ok(&mut chair, Command::RejectComment { seq, reason: "与议题无关".into() }).await, Reply::Done);
    event(&mut author, |e| matches!(e, ConsultEvent::CommentRejected { seq: s } if *s == seq).then_some(())).await;
    let items = items_through(&mut chair, seq.next()).await;
    assert!(items.iter().any(|i| i.body == ItemBody::Hide { target: seq }), "the moderators' view drops it: {items:?}");
    assert_eq!(cmd(&mut chair, Command::ApproveComment { seq }).await, Err(ErrorCode::NotHeld));
    assert_eq!(cmd(&mut chair, Command::RejectComment { seq, reason: "再拒".into() }).await, Err(ErrorCode::NotHeld));
    let mut public = hub.client(Role::Member, "委员").await;
    let public_seq = public.post_ok(&demo(), "公开的").await;
    assert_eq!(cmd(&mut chair, Command::RejectComment { seq: public_seq, reason: "x".into() }).await, Err(ErrorCode::NotHeld), "only held comments are rejected");
    assert_eq!(cmd(&mut author, Command::RejectComment { seq, reason: "x".into() }).await, Err(ErrorCode::Forbidden));
    let mut chair3 = hub.client(Role::Moderator, "主持人").await;
    assert!(sub_state(&mut chair3).await.1.held.is_empty());
    let log = hub.hub.record.audit_log(&demo()).await.unwrap();
    let rejected = log.iter().find(|e| e.action == "comment_rejected").expect("logged");
    assert_eq!((rejected.target.as_str(), rejected.reason.as_deref()), (format!("#{seq}").as_str(), Some("与议题无关")));
    // The public never saw any of it.
    let seen = items_through(&mut other, public_seq).await;
    assert!(seen.iter().all(|i| !matches!(&i.body, ItemBody::Comment { text, .. } if text == "请审核")));
}

#[tokio::test]
async fn turning_review_off_keeps_the_queue_until_the_moderator_releases_it_all_at_once() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    ok(&mut chair, Command::SetCommentPolicy { change: PolicyChange::Review(true) }).await;
    let mut watcher = hub.client(Role::Viewer, "旁观").await;
    sub_state(&mut watcher).await;
    let mut poster = hub.client(Role::Viewer, "网友").await;
    let a = post_held(&mut poster, "第一条待审").await;
    let b = post_held(&mut poster, "第二条待审").await;
    ok(&mut chair, Command::SetCommentPolicy { change: PolicyChange::Review(false) }).await;
    // Kept: still held, still listed, nothing stranded out of sight.
    let (_, state) = sub_state(&mut chair).await;
    assert_eq!(held_seqs(&state), vec![a, b], "review off keeps the held ones in the queue");
    assert!(!state.comment_modes.review);
    poster.post_ok(&demo(), "审核关闭后直接发布").await;
    // Released: one command, a public copy of each, in order.
    assert_eq!(ok(&mut chair, Command::ApproveAllHeld).await, Reply::ApprovedAll { count: 2 });
    let (_, state) = sub_state(&mut watcher).await;
    assert!(state.held.is_empty());
    // Two held originals, the direct comment, two copies (the `subscribed` offset may still
    // lag: an ack means durable, the flush to subscribers follows within a tick).
    let edge = Seq(5);
    let mut fresh = hub.client(Role::Viewer, "新人").await;
    fresh.send(&ClientMsg::Sub { topic: demo(), resume: None, last: Some(10) }).await;
    let items = items_through(&mut fresh, edge).await;
    let copies: Vec<(Option<Seq>, String)> = items
        .iter()
        .filter_map(|i| match &i.body {
            ItemBody::Comment { text, approves, .. } => Some((*approves, text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        copies,
        vec![(None, "审核关闭后直接发布".to_string()), (Some(a), "第一条待审".to_string()), (Some(b), "第二条待审".to_string())]
    );
    assert_eq!(ok(&mut chair, Command::ApproveAllHeld).await, Reply::ApprovedAll { count: 0 }, "an empty queue releases nothing");
    let log = hub.hub.record.audit_log(&demo()).await.unwrap();
    assert!(log.iter().any(|e| e.action == "comment_approved_all" && e.detail == "count=2"), "{log:?}");
}
