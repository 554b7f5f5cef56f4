//! What the organisers' behaviour tests over HTTP share: committees and staff set up as the
//! operator would, a small JSON client for the REST API, and websocket helpers for an
//! activity other than the demo.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shangliang::admin::accounts::NewAccount;
use shangliang::admin::{Actor, CommitteeId, Level, StaffRole};
use shangliang::organise::Organisers;
use shangliang_signaling::consult::{Command, ConsultEvent, Reply};
use shangliang_signaling::{ActivityId, ClientMsg, ErrorCode, Form, ServerMsg};

use crate::common::Client;

pub const HOUR: u64 = 3_600_000;
pub const PASSWORD: &str = "correct horse battery";
/// How long anything over the network may take here.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn now_ms() -> u64 {
    shangliang::organise::now_ms()
}

/// Province `sn` and its city `sn-xa`; organisers `prov.org`, `xian.org`, moderator `prov.mod`.
pub fn bootstrap(o: &Organisers) {
    let op = Actor::Operator { name: "test".into() };
    let cid = |s: &str| CommitteeId::new(s).unwrap();
    o.add_committee(&op, cid("sn"), "陕西省政协", Level::Province, None).unwrap();
    o.add_committee(&op, cid("sn-xa"), "西安市政协", Level::City, Some(cid("sn"))).unwrap();
    for (user, committee, role) in
        [("prov.org", "sn", StaffRole::Organiser), ("xian.org", "sn-xa", StaffRole::Organiser), ("prov.mod", "sn", StaffRole::Moderator)]
    {
        let req = NewAccount { username: user.into(), name: user.into(), committee: cid(committee), role, password: PASSWORD.into() };
        o.add_user(&op, req).unwrap();
    }
}

/// The organisers' REST API of one hub.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: String) -> Api {
        Api { http: reqwest::Client::new(), base }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut rq = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")) })
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn sign_in(&self, user: &str) -> String {
        let (s, v) = self.post("/api/admin/sign-in", None, json!({"username": user, "password": PASSWORD})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// Asserts a 2xx answer and returns its body.
    pub async fn ok(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, Some(token), body).await;
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    }
}

/// A websocket client authenticated with `token` and subscribed to `activity`; returns it with
/// the comment modes of its first `state`.
pub async fn join(url: &str, token: &str, activity: &ActivityId) -> (Client, shangliang_signaling::consult::CommentModes) {
    let mut c = Client::connect(url, Form::Json).await;
    c.auth(token).await;
    match c.sub(activity, None).await {
        ServerMsg::Subscribed { .. } => {}
        other => panic!("sub refused: {other:?}"),
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match c.try_recv(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            Some(Ok(ServerMsg::State { state, .. })) => return (c, state.comment_modes),
            Some(Ok(_)) => {}
            other => panic!("no state after subscribed: {other:?}"),
        }
    }
}

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(20_000);

/// Sends a moderation command for `activity` and waits for its answer.
pub async fn cmd_in(c: &mut Client, activity: &ActivityId, command: Command) -> Result<Reply, ErrorCode> {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.send(&ClientMsg::Cmd { id, topic: activity.clone(), cmd: command }).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match c.try_recv(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            Some(Ok(ServerMsg::Reply { id: i, reply })) if i == id => return Ok(reply),
            Some(Ok(ServerMsg::Error { id: Some(i), code, .. })) if i == id => return Err(code),
            Some(Ok(_)) => {}
            other => panic!("no answer to {id}: {other:?}"),
        }
    }
}

/// Waits (bounded) for an event that `pick` accepts.
pub async fn event_in<T>(c: &mut Client, mut pick: impl FnMut(&ConsultEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match c.try_recv(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            Some(Ok(ServerMsg::Event { event, .. })) => {
                if let Some(t) = pick(&event) {
                    return t;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("no such event within {WAIT:?}: {other:?}"),
        }
    }
}

/// The refusal code of a post, or `None` if it was acknowledged.
pub async fn post_code(c: &mut Client, activity: &ActivityId, text: &str) -> Option<ErrorCode> {
    match c.post(activity, text).await {
        ServerMsg::Ack { .. } => None,
        ServerMsg::Error { code, .. } => Some(code),
        other => panic!("{other:?}"),
    }
}

/// Waits (bounded) until the activity's stored audit chain, read over REST, holds every action
/// in `want`; returns the entries.
pub async fn chain_with(api: &Api, token: &str, id: &str, want: &[&str]) -> Vec<Value> {
    chain_until(api, token, id, want, |_| true).await
}

/// [`chain_with`], and until `done` accepts the entries (the chain is written a moment after
/// the change that made them).
pub async fn chain_until(api: &Api, token: &str, id: &str, want: &[&str], done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = api.ok(reqwest::Method::GET, &format!("/api/admin/activities/{id}/audit-chain"), token, None).await;
        assert_eq!(v["verified"], true, "the chain verifies: {v}");
        let entries = v["entries"].as_array().unwrap().clone();
        let have: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
        if want.iter().all(|w| have.contains(w)) && done(&entries) {
            return entries;
        }
        assert!(tokio::time::Instant::now() < deadline, "the chain lacks some of {want:?}: {have:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
