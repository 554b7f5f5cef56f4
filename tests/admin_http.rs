//! The organisers' side over HTTP and the websocket, on a real hub: sign in, schedule, invite,
//! open, run, close, archive — each step authorised by committee and role, each refusal in
//! the one error shape with a stable code — and the hub serving what was scheduled.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestHub};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shangliang::admin::accounts::NewAccount;
use shangliang::admin::{Actor, CommitteeId, Level, StaffRole};
use shangliang_signaling::{ActivityId, ErrorCode, Form, ServerMsg};

const HOUR: u64 = 3_600_000;
const PASSWORD: &str = "correct horse battery";

fn now_ms() -> u64 {
    shangliang::organise::now_ms()
}

/// Province `sn` and its city `sn-xa`, an organiser in each, set up as the operator would
/// with the CLI.
fn bootstrap(h: &TestHub) {
    let o = h.hub.organisers.as_ref().expect("the embedded hub has the organisers' side");
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

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
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

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    async fn sign_in(&self, user: &str) -> String {
        let (s, v) = self.post("/api/admin/sign-in", None, json!({"username": user, "password": PASSWORD})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }
}

/// Asserts the one error shape and returns the code.
fn refused(status: StatusCode, v: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{v}");
    assert_eq!(v["error"], want_code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "exactly error and message: {v}");
}

async fn member(h: &TestHub, token: &str, activity: &ActivityId) -> Client {
    let mut c = Client::connect(&h.url(), Form::Json).await;
    c.auth(token).await;
    match c.sub(activity, None).await {
        ServerMsg::Subscribed { .. } => {}
        other => panic!("sub refused: {other:?}"),
    }
    c
}

#[tokio::test]
async fn an_activity_is_scheduled_run_and_archived_by_its_committee_only() {
    let h = TestHub::start(|_| {}).await;
    bootstrap(&h);
    let api = Api { http: reqwest::Client::new(), base: h.http("") };

    // Signing in: a wrong password and no token are refused in the one shape.
    let (s, v) = api.post("/api/admin/sign-in", None, json!({"username": "prov.org", "password": "wrong password"})).await;
    refused(s, &v, 401, "bad_credentials");
    let (s, v) = api.call(reqwest::Method::GET, "/api/admin/activities", None, None).await;
    refused(s, &v, 401, "unauthenticated");
    let prov = api.sign_in("prov.org").await;
    let city = api.sign_in("xian.org").await;
    let moderator = api.sign_in("prov.mod").await;

    // Schedule: bad input and someone else's committee are refused.
    let start = now_ms() + HOUR / 2;
    let draft = json!({
        "id": "urban-rural", "title": "推进城乡融合发展网络议政", "topic": "以县城为重要载体推进城乡融合发展",
        "kind": "livestream", "scheduled_start_ms": start, "planned_end_ms": start + 2 * HOUR,
    });
    let (s, v) = api.post("/api/admin/activities", Some(&prov), json!({"title": "x"})).await;
    refused(s, &v, 400, "bad_request");
    let mut bad = draft.clone();
    bad["planned_end_ms"] = json!(start - 1);
    refused_pair(api.post("/api/admin/activities", Some(&prov), bad).await, 400, "bad_schedule");
    let mut theirs = draft.clone();
    theirs["committee"] = json!("sn");
    refused_pair(api.post("/api/admin/activities", Some(&city), theirs).await, 403, "committee_forbidden");
    refused_pair(api.post("/api/admin/activities", Some(&moderator), draft.clone()).await, 403, "role_forbidden");
    let (s, v) = api.post("/api/admin/activities", Some(&prov), draft.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!((v["state"].as_str(), v["committee"]["level"].as_str()), (Some("scheduled"), Some("province")));
    assert_eq!(v["rules"]["waiting_page"], true);
    refused_pair(api.post("/api/admin/activities", Some(&prov), draft.clone()).await, 409, "already_exists");
    let id = ActivityId::new("urban-rural").unwrap();

    // The hub lists it publicly, as scheduled.
    let public: Value = reqwest::get(h.http("/api/activities")).await.unwrap().json().await.unwrap();
    let listed = public.as_array().unwrap().iter().find(|a| a["id"] == "urban-rural").expect("listed by GET /api/activities");
    assert_eq!(listed["state"], "scheduled");

    // A city organiser neither sees nor runs it; the province's list has it, the city's not.
    refused_pair(api.get("/api/admin/activities/urban-rural", &city).await, 403, "committee_forbidden");
    refused_pair(api.post("/api/admin/activities/urban-rural/open", Some(&city), json!({})).await, 403, "committee_forbidden");
    refused_pair(api.call(reqwest::Method::PATCH, "/api/admin/activities/urban-rural", Some(&city), Some(json!({"title": "改"}))).await, 403, "committee_forbidden");
    refused_pair(api.post("/api/admin/activities/urban-rural/invitations", Some(&city), json!({"name": "x", "role": "guest"})).await, 403, "committee_forbidden");
    let (_, mine) = api.get("/api/admin/activities", &prov).await;
    assert_eq!(mine["activities"].as_array().unwrap().len(), 1);
    let (_, theirs) = api.get("/api/admin/activities", &city).await;
    assert!(theirs["activities"].as_array().unwrap().is_empty(), "{theirs}");

    // Invite a member; the link yields their token, subject = the person.
    let (s, inv) = api
        .post("/api/admin/activities/urban-rural/invitations", Some(&prov), json!({"person": "m-wang", "name": "王委员", "role": "member", "committee": "sn-xa"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let link = inv["link"].as_str().unwrap();
    let link_token = link.split("invite=").nth(1).unwrap().to_owned();
    let (s, pass) = api.post("/api/invitations/redeem", None, json!({"token": link_token})).await;
    assert_eq!(s, StatusCode::OK, "{pass}");
    assert_eq!((pass["subject"].as_str(), pass["role"].as_str()), (Some("m-wang"), Some("member")));
    let member_token = pass["token"].as_str().unwrap().to_owned();

    // Before it opens the member may watch (the waiting page) but not comment.
    let mut wang = member(&h, &member_token, &id).await;
    match wang.post(&id, "开始了吗？").await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::NotAllowed),
        other => panic!("a comment before the opening was taken: {other:?}"),
    }

    // Too early? Not at half an hour before. Open: live everywhere, comments taken.
    let (s, v) = api.post("/api/admin/activities/urban-rural/open", Some(&moderator), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "open");
    let r: Value = reqwest::get(h.http("/api/activities/urban-rural")).await.unwrap().json().await.unwrap();
    assert_eq!(r["state"], "live");
    let seq = wang.post_ok(&id, "支持以县城为载体").await;

    // The moderator takes the console with a moderator token for this activity only; the
    // city organiser gets none.
    let (s, console) = api.post("/api/admin/activities/urban-rural/console-token", Some(&moderator), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{console}");
    refused_pair(api.post("/api/admin/activities/urban-rural/console-token", Some(&city), json!({})).await, 403, "committee_forbidden");
    let mut chair = member(&h, console["token"].as_str().unwrap(), &id).await;
    let hide = shangliang_signaling::consult::Command::HideComment { seq, reason: "测试".into() };
    chair.send(&shangliang_signaling::ClientMsg::Cmd { id: 7, topic: id.clone(), cmd: hide }).await;
    let t = Instant::now();
    loop {
        match chair.recv().await {
            ServerMsg::Reply { id: 7, .. } => break,
            ServerMsg::Error { id: Some(7), code, message } => panic!("the console's command was refused: {code:?} {message}"),
            _ => assert!(t.elapsed() < Duration::from_secs(10), "no answer to the console's command"),
        }
    }

    // Settings during the session: applied, noted.
    let (s, v) = api.call(reqwest::Method::PATCH, "/api/admin/activities/urban-rural/settings", Some(&prov), Some(json!({"slow_mode_ms": 15_000}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["settings"]["slow_mode_ms"], 15_000);
    assert_eq!(v["changes"].as_array().unwrap().len(), 1, "{v}");
    // Only the planned end may change while live.
    refused_pair(api.call(reqwest::Method::PATCH, "/api/admin/activities/urban-rural", Some(&prov), Some(json!({"title": "改"}))).await, 409, "locked_while_live");
    refused_pair(api.call(reqwest::Method::DELETE, "/api/admin/activities/urban-rural", Some(&prov), None).await, 409, "bad_transition");

    // Pause, resume, close: closed is read-only.
    for (action, state) in [("pause", "paused"), ("resume", "open"), ("close", "closed")] {
        let (s, v) = api.post(&format!("/api/admin/activities/urban-rural/{action}"), Some(&prov), json!({"reason": "按议程"})).await;
        assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some(state)), "{action}: {v}");
    }
    let t = Instant::now();
    loop {
        match wang.post(&id, "还能发言吗").await {
            ServerMsg::Error { code, .. } => {
                assert_eq!(code, ErrorCode::NotAllowed);
                break;
            }
            _ => assert!(t.elapsed() < Duration::from_secs(5), "comments still taken after the close"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    refused_pair(api.call(reqwest::Method::PATCH, "/api/admin/activities/urban-rural/settings", Some(&prov), Some(json!({"slow_mode_ms": 0}))).await, 409, "read_only");
    refused_pair(api.post("/api/admin/activities/urban-rural/archive", Some(&moderator), json!({})).await, 403, "role_forbidden");
    let (s, v) = api.post("/api/admin/activities/urban-rural/archive", Some(&prov), json!({})).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("archived")), "{v}");
    refused_pair(api.post("/api/admin/activities/urban-rural/open", Some(&prov), json!({})).await, 409, "bad_transition");
    refused_pair(api.post("/api/admin/activities/urban-rural/bogus", Some(&prov), json!({})).await, 404, "not_found");

    // Revoked: the link no longer admits.
    let inv_id = inv["invitation"]["id"].as_str().unwrap();
    let (s, v) = api.post(&format!("/api/admin/activities/urban-rural/invitations/{inv_id}/revoke"), Some(&prov), json!({"reason": "重复"})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("revoked")), "{v}");
    refused_pair(api.post("/api/invitations/redeem", None, json!({"token": link_token})).await, 410, "invitation_revoked");
    refused_pair(api.post("/api/invitations/redeem", None, json!({"token": "forged.link.token"})).await, 401, "invitation_invalid");

    // The audit log has every step, with who did it.
    let (s, log) = api.get("/api/admin/activities/urban-rural/audit", &prov).await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|n| n["action"].as_str().unwrap()).collect();
    for want in ["activity_scheduled", "invitation_issued", "invitation_used", "activity_opened", "settings_changed", "activity_paused", "activity_closed", "activity_archived", "invitation_revoked", "invitation_refused"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let (_, list) = api.get("/api/admin/activities/urban-rural/invitations", &prov).await;
    assert_eq!(list["invitations"][0]["uses"], 1, "{list}");
}

fn refused_pair((s, v): (StatusCode, Value), status: u16, code: &str) {
    refused(s, &v, status, code);
}

#[tokio::test]
async fn an_activity_deleted_before_its_start_is_gone_from_the_organisers_list() {
    let h = TestHub::start(|_| {}).await;
    bootstrap(&h);
    let api = Api { http: reqwest::Client::new(), base: h.http("") };
    let prov = api.sign_in("prov.org").await;
    let start = now_ms() + 2 * HOUR;
    let (s, v) = api
        .post("/api/admin/activities", Some(&prov), json!({"title": "县域议政", "topic": "县城建设", "kind": "room", "scheduled_start_ms": start, "planned_end_ms": start + HOUR}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    refused_pair(api.post(&format!("/api/admin/activities/{id}/open"), Some(&prov), json!({})).await, 409, "too_early");
    let (s, _) = api.call(reqwest::Method::DELETE, &format!("/api/admin/activities/{id}"), Some(&prov), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    refused_pair(api.get(&format!("/api/admin/activities/{id}"), &prov).await, 404, "no_such_activity");
}
