//! Bad clients get their documented error or close code, and nobody else notices.

mod common;

use common::{Client, Ended, TestHub, demo};
use futures_util::SinkExt;
use shangliang_signaling::{ClientMsg, ErrorCode, Form, Role, ServerMsg, close, limits};
use tokio_tungstenite::tungstenite::Message;

fn error_code(m: &ServerMsg) -> ErrorCode {
    match m {
        ServerMsg::Error { code, .. } => *code,
        other => panic!("expected error, got {other:?}"),
    }
}

/// A bystander that must keep receiving while others misbehave.
async fn bystander(hub: &TestHub) -> (Client, shangliang_signaling::Seq) {
    let mut v = hub.client(Role::Viewer, "bystander").await;
    match v.sub(&demo(), None).await {
        ServerMsg::Subscribed { offset, .. } => (v, offset),
        other => panic!("{other:?}"),
    }
}

async fn bystander_still_receives(hub: &TestHub, v: &mut Client, after: shangliang_signaling::Seq) {
    let mut poster = hub.client(Role::Member, "poster").await;
    let seq = poster.post_ok(&demo(), "still here").await;
    let got = v.collect(after, 1).await;
    assert_eq!(got[0], (seq, "still here".to_string()));
}

#[tokio::test]
async fn malformed_frame_gets_bad_frame_error_and_the_connection_stays() {
    let hub = TestHub::start(|_| {}).await;
    let (mut by, offset) = bystander(&hub).await;
    let mut c = hub.client(Role::Viewer, "v").await;
    c.send_raw(Message::Binary(vec![0xc1, 0xff, 0x00].into())).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::BadFrame);
    c.send_raw(Message::Text(r#"{"t":"post","id":"x"}"#.into())).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::BadFrame);
    // Still usable.
    c.send(&ClientMsg::Ping { id: 42 }).await;
    assert_eq!(c.recv().await, ServerMsg::Pong { id: 42 });
    bystander_still_receives(&hub, &mut by, offset).await;
}

#[tokio::test]
async fn unknown_message_type_gets_unknown_type_error() {
    let hub = TestHub::start(|_| {}).await;
    let mut c = Client::connect(&hub.url(), Form::Json).await;
    c.auth(&hub.token(Role::Viewer, "v")).await;
    c.send_raw(Message::Text(r#"{"t":"self_destruct","now":true}"#.into())).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::UnknownType);
    c.send(&ClientMsg::Ping { id: 1 }).await;
    assert_eq!(c.recv().await, ServerMsg::Pong { id: 1 });
}

#[tokio::test]
async fn repeated_garbage_closes_with_4400() {
    let hub = TestHub::start(|_| {}).await;
    let mut c = hub.client(Role::Viewer, "v").await;
    for _ in 0..10 {
        c.send_raw(Message::Binary(vec![0xc1].into())).await;
    }
    assert_eq!(c.ended().await, Ended::Closed(close::PROTOCOL, "too many bad frames".into()));
}

#[tokio::test]
async fn oversized_frame_closes_with_1009_and_others_are_unaffected() {
    let hub = TestHub::start(|_| {}).await;
    let (mut by, offset) = bystander(&hub).await;
    let mut c = hub.client(Role::Viewer, "v").await;
    c.send_raw(Message::Binary(vec![0x90; limits::MAX_CLIENT_FRAME_BYTES + 1].into())).await;
    match c.ended().await {
        Ended::Closed(code, _) => assert_eq!(code, close::TOO_BIG),
        Ended::Eof => panic!("expected close 1009, the socket just ended"),
    }
    bystander_still_receives(&hub, &mut by, offset).await;
}

#[tokio::test]
async fn frames_before_auth_are_unauthorised_with_4401() {
    let hub = TestHub::start(|_| {}).await;
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.send(&ClientMsg::Sub { topic: demo(), resume: None, last: None }).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::Unauthenticated);
    assert_eq!(c.ended().await, Ended::Closed(close::UNAUTHENTICATED, "unauthenticated".into()));
}

#[tokio::test]
async fn forged_token_is_refused() {
    let hub = TestHub::start(|_| {}).await;
    let other = TestHub::start(|_| {}).await; // another secret
    let forged = other.token(Role::Moderator, "mallory");
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.send(&ClientMsg::Auth { v: 1, token: forged }).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::InvalidToken);
    assert_eq!(c.ended().await, Ended::Closed(close::UNAUTHENTICATED, "invalid token".into()));
}

#[tokio::test]
async fn expired_token_is_refused() {
    let hub = TestHub::start(|_| {}).await;
    let expired = hub.token_with(Role::Viewer, "late", "demo", -5);
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.send(&ClientMsg::Auth { v: 1, token: expired }).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::TokenExpired);
    assert_eq!(c.ended().await, Ended::Closed(close::UNAUTHENTICATED, "token expired".into()));
}

#[tokio::test]
async fn wrong_protocol_version_is_refused() {
    let hub = TestHub::start(|_| {}).await;
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.send(&ClientMsg::Auth { v: 99, token: hub.token(Role::Viewer, "v") }).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::VersionUnsupported);
    assert_eq!(c.ended().await, Ended::Closed(close::VERSION, "version unsupported".into()));
}

#[tokio::test]
async fn token_for_another_activity_cannot_subscribe_or_post_here() {
    let hub = TestHub::start(|_| {}).await;
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.auth(&hub.token_with(Role::Member, "m", "demo-room", 600)).await;
    assert_eq!(error_code(&c.sub(&demo(), None).await), ErrorCode::Forbidden);
    assert_eq!(error_code(&c.post(&demo(), "hi").await), ErrorCode::Forbidden);
}

#[tokio::test]
async fn invalid_comments_are_refused_with_their_codes() {
    let hub = TestHub::start(|_| {}).await;
    let mut c = hub.client(Role::Viewer, "v").await;
    assert_eq!(error_code(&c.post(&demo(), "   ").await), ErrorCode::TextEmpty);
    assert_eq!(error_code(&c.post(&demo(), &"字".repeat(501)).await), ErrorCode::TextTooLong);
    assert_eq!(error_code(&c.post(&demo(), "bell\u{7}").await), ErrorCode::TextInvalid);
    assert!(matches!(c.post(&demo(), &"字".repeat(500)).await, ServerMsg::Ack { .. }));
}

#[tokio::test]
async fn comment_rate_limit_applies_per_identity() {
    let hub = TestHub::start(|cfg| cfg.comments_per_minute = 3).await;
    let mut c = hub.client(Role::Viewer, "chatty").await;
    let mut refused = 0;
    for i in 0..6 {
        if let ServerMsg::Error { code, .. } = c.post(&demo(), &format!("{i}")).await {
            assert_eq!(code, ErrorCode::RateLimited);
            refused += 1;
        }
    }
    assert_eq!(refused, 3, "burst of 3 allowed, then refused");
    // Another identity is not affected.
    let mut other = hub.client(Role::Viewer, "quiet").await;
    assert!(matches!(other.post(&demo(), "hi").await, ServerMsg::Ack { .. }));
}

#[tokio::test]
async fn flooding_client_is_closed_with_4429() {
    let hub = TestHub::start(|cfg| cfg.frames_per_second = 20).await;
    let (mut by, offset) = bystander(&hub).await;
    let mut c = hub.client(Role::Viewer, "flood").await;
    let mut code = None;
    for i in 0..4000u32 {
        if c.ws.send(Message::Binary(shangliang_signaling::encode_client(Form::MsgPack, &ClientMsg::Ping { id: i }))).await.is_err() {
            break;
        }
        if i % 50 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        }
    }
    if let Ended::Closed(c, _) = c.ended().await {
        code = Some(c);
    }
    assert_eq!(code, Some(close::FLOOD));
    bystander_still_receives(&hub, &mut by, offset).await;
}
