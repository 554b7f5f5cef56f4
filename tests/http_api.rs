//! The HTTP side: health, metrics, activities, anonymous viewer tokens.

mod common;

use common::{Client, TestHub};
use shangliang_signaling::{Form, Role, ServerMsg};

#[tokio::test]
async fn healthz_metrics_and_activities_answer() {
    let hub = TestHub::start(|_| {}).await;
    let http = reqwest::Client::new();
    let health: serde_json::Value = http.get(hub.http("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let list: serde_json::Value = http.get(hub.http("/api/activities")).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"demo") && ids.contains(&"demo-room"), "{ids:?}");
    let demo = list.as_array().unwrap().iter().find(|a| a["id"] == "demo").unwrap();
    assert_eq!(demo["kind"], "livestream");
    assert_eq!(demo["state"], "live");
    let _c = hub.client(Role::Viewer, "counted").await;
    let metrics = http.get(hub.http("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shangliang_connections"), "{metrics}");
    let missing = http.get(hub.http("/api/activities/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn viewer_token_lets_the_public_watch_and_comment() {
    let hub = TestHub::start(|_| {}).await;
    let http = reqwest::Client::new();
    let resp: serde_json::Value = http
        .post(hub.http("/api/activities/demo/viewer-token"))
        .json(&serde_json::json!({ "name": "热心市民" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = resp["token"].as_str().unwrap();
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    match c.auth(token).await {
        ServerMsg::Welcome { you, .. } => {
            assert_eq!(you.role, Role::Viewer);
            assert_eq!(you.name, "热心市民");
        }
        _ => unreachable!(),
    }
    assert!(matches!(c.post(&common::demo(), "提个问题").await, ServerMsg::Ack { .. }));
}

#[tokio::test]
async fn viewer_tokens_are_rate_limited_per_address_and_names_checked() {
    let hub = TestHub::start(|cfg| cfg.viewer_tokens_per_minute = 2).await;
    let http = reqwest::Client::new();
    let bad = http
        .post(hub.http("/api/activities/demo/viewer-token"))
        .json(&serde_json::json!({ "name": "a\u{0}b" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = http
            .post(hub.http("/api/activities/demo/viewer-token"))
            .json(&serde_json::json!({ "name": "n" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 429, 429], "the bad request used one of the two");
    let unknown = http
        .post(hub.http("/api/activities/nope/viewer-token"))
        .json(&serde_json::json!({ "name": "n" }))
        .send()
        .await
        .unwrap();
    assert!(unknown.status() == 404 || unknown.status() == 429);
}
