//! Issue 13, the server side of a web client people trust: discipline follows the person
//! across a rename, a newcomer sees the stream's history after a restart, the review queue
//! lives in the server, and the stage is behind the chair.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Client, TestHub, demo, ok};
use serde_json::{Value, json};
use shangliang_signaling::consult::{Command, ParticipantId};
use shangliang_signaling::{ErrorCode, Form, Role, ServerMsg};

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
