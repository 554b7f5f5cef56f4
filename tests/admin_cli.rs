//! The organisers' commands of the binary, on the data directory of a running hub: what the
//! CLI schedules, the hub lists and serves at once; the accounts it adds sign in over REST.

mod common;

use std::process::{Command, Output};

use common::TestHub;
use serde_json::{Value, json};

fn cli(h: &TestHub, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shangliang"))
        .args(args)
        .arg("--data-dir")
        .arg(h.dir.path())
        .env("SHANGLIANG_PASSWORD", "correct horse battery")
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn ok(h: &TestHub, args: &[&str]) -> String {
    let out = cli(h, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn public(h: &TestHub, id: &str) -> Value {
    reqwest::get(h.http(&format!("/api/activities/{id}"))).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn the_cli_schedules_invites_and_opens_on_a_running_hubs_data() {
    let h = TestHub::start(|_| {}).await;
    ok(&h, &["committee", "add", "--id", "sn", "--name", "陕西省政协", "--level", "province"]);
    ok(&h, &["committee", "add", "--id", "sn-xa", "--name", "西安市政协", "--level", "city", "--parent", "sn"]);
    let user = ok(&h, &["user", "add", "--username", "zhang.wei", "--name", "张伟", "--committee", "sn", "--role", "organiser"]);
    assert!(user.contains("zhang.wei (organiser of sn)"), "{user}");
    let id = ok(&h, &["activity", "create", "--id", "cli-made", "--title", "城乡融合议政", "--kind", "livestream", "--committee", "sn", "--start", "+20m"]);
    assert_eq!(id.trim(), "cli-made");

    // The running hub lists it at once, as scheduled.
    assert_eq!(public(&h, "cli-made").await["state"], "scheduled");
    let list = ok(&h, &["activity", "list"]);
    assert!(list.contains("cli-made") && list.contains("scheduled"), "{list}");

    // The account the CLI added signs in over REST and sees the activity.
    let http = reqwest::Client::new();
    let signed: Value = http
        .post(h.http("/api/admin/sign-in"))
        .json(&json!({"username": "zhang.wei", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed["token"].as_str().expect("signed in").to_owned();
    let a: Value = http.get(h.http("/api/admin/activities/cli-made")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!((a["title"].as_str(), a["access"].as_str()), (Some("城乡融合议政"), Some("organise")), "{a}");

    // The invitation printed by the CLI is redeemed at the hub.
    let inv = ok(&h, &["invite", "add", "--activity", "cli-made", "--name", "王委员", "--role", "member", "--person", "m-wang", "--committee", "sn-xa"]);
    let link = inv.lines().nth(1).unwrap();
    assert!(link.starts_with("/join/cli-made?invite="), "{inv}");
    let pass: Value = http
        .post(h.http("/api/invitations/redeem"))
        .json(&json!({"token": link.split("invite=").nth(1).unwrap()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pass["subject"], "m-wang", "{pass}");

    // Open and close by the CLI: the hub follows; a wrong step fails with the reason.
    assert_eq!(ok(&h, &["activity", "open", "--id", "cli-made"]).trim(), "cli-made open");
    assert_eq!(public(&h, "cli-made").await["state"], "live");
    let again = cli(&h, &["activity", "open", "--id", "cli-made"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("cannot open an activity that is open"), "{again:?}");
    ok(&h, &["activity", "close", "--id", "cli-made", "--reason", "议程结束"]);
    assert_eq!(public(&h, "cli-made").await["state"], "ended");
    let invitations = ok(&h, &["invite", "list", "--activity", "cli-made"]);
    assert!(invitations.contains("m-wang") && invitations.contains("uses 1"), "{invitations}");
    let bad = cli(&h, &["activity", "create", "--title", "x", "--kind", "seminar", "--committee", "sn"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("room or livestream"));
}
