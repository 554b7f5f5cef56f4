//! `/api/openapi.json` is a valid OpenAPI document by a validator nobody here wrote
//! (`openapi-spec-validator` from PyPI; `.ci/run` installs it), and real answers of the hub
//! match the schemas it declares (`openapi-schema-validator`).

mod common;

use std::process::Command;

use common::TestHub;
use serde_json::{Value, json};
use shangliang::admin::accounts::NewAccount;
use shangliang::admin::{Actor, CommitteeId, Level, StaffRole};

#[tokio::test]
async fn the_openapi_document_validates_and_the_answers_match_it() {
    let h = TestHub::start(|_| {}).await;
    let o = h.hub.organisers.as_ref().unwrap();
    let op = Actor::Operator { name: "test".into() };
    let sn = CommitteeId::new("sn").unwrap();
    o.add_committee(&op, sn.clone(), "陕西省政协", Level::Province, None).unwrap();
    let pw = "correct horse battery";
    o.add_user(&op, NewAccount { username: "prov.org".into(), name: "省政协组织者".into(), committee: sn, role: StaffRole::Organiser, password: pw.into() })
        .unwrap();

    let http = reqwest::Client::new();
    let doc: Value = http.get(h.http("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    for p in ["/api/admin/activities", "/api/admin/activities/{id}/{action}", "/api/invitations/redeem", "/api/admin/sign-in"] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    let mut samples = Vec::new();
    let mut call = async |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>, schema: &str| -> Value {
        let mut rq = http.request(method, h.http(path));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let v: Value = rq.send().await.unwrap().json().await.unwrap();
        samples.push(json!({"schema": schema, "body": v}));
        v
    };
    let signed = call(reqwest::Method::POST, "/api/admin/sign-in", None, Some(json!({"username": "prov.org", "password": pw})), "SignInResponse").await;
    let token = signed["token"].as_str().unwrap().to_owned();
    let t = Some(token.as_str());
    let start = shangliang::organise::now_ms() + 600_000;
    let a = call(
        reqwest::Method::POST,
        "/api/admin/activities",
        t,
        Some(json!({"title": "议政", "topic": "城乡融合", "kind": "livestream", "scheduled_start_ms": start, "planned_end_ms": start + 3_600_000})),
        "ActivityView",
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    call(reqwest::Method::GET, "/api/admin/activities", t, None, "ActivityListResponse").await;
    call(reqwest::Method::POST, &format!("/api/admin/activities/{id}/open"), t, Some(json!({})), "ActivityView").await;
    call(reqwest::Method::PATCH, &format!("/api/admin/activities/{id}/settings"), t, Some(json!({"slow_mode_ms": 5000})), "SettingsResponse").await;
    let inv = call(
        reqwest::Method::POST,
        &format!("/api/admin/activities/{id}/invitations"),
        t,
        Some(json!({"name": "李教授", "role": "guest", "affiliation": "西北大学"})),
        "CreatedInvitation",
    )
    .await;
    let link = inv["link"].as_str().unwrap().split("invite=").nth(1).unwrap().to_owned();
    call(reqwest::Method::POST, "/api/invitations/redeem", None, Some(json!({"token": link})), "RedeemResponse").await;
    call(reqwest::Method::GET, &format!("/api/admin/activities/{id}/invitations"), t, None, "InvitationListResponse").await;
    call(reqwest::Method::POST, &format!("/api/admin/activities/{id}/archive"), t, Some(json!({})), "ErrorBody").await;
    call(reqwest::Method::GET, "/api/admin/activities", None, None, "ErrorBody").await;

    let dir = tempfile::tempdir().unwrap();
    let (doc_path, samples_path) = (dir.path().join("openapi.json"), dir.path().join("samples.json"));
    std::fs::write(&doc_path, serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::write(&samples_path, serde_json::to_vec(&samples).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi/validate.py");
    let out = Command::new("python3").arg(script).arg(&doc_path).arg(&samples_path).output().expect("python3");
    assert!(
        out.status.success(),
        "the OpenAPI check failed (needs `pip install openapi-spec-validator`, as .ci/run does):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
