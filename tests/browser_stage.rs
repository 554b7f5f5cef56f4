//! The stage behind the chair in Chromium (issue 13, "Broken" 4; `tests/browser/stage.mjs`): a
//! member's camera in the livestream's room reaches the other members but not the watch page
//! until the moderator clicks 上台 in the console; then the watch page plays them with their name
//! and the member's page says 直播中; 下台 takes them off the programme. Screenshots go to
//! `target/screenshots/stage-*.png`.
//!
//! Needs Node.js, `chromium`, `web-client/dist` and `tests/browser/node_modules` (made here when
//! missing; `.ci/run` makes them beforehand).
#![allow(missing_docs)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestHub;
use common::browser::{prerequisites, root};
use shangliang_signaling::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_camera_reaches_the_public_only_after_the_chair_puts_them_on_stage() {
    let chromium = prerequisites();
    let h = TestHub::start(|c| c.web_dir = Some(root().join("web-client/dist"))).await;
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let child = tokio::process::Command::new("node")
        .arg(root().join("tests/browser/stage.mjs"))
        .arg(format!("http://{}", h.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium)
        .env("SHANGLIANG_MEMBER_TOKEN", h.token(Role::Member, "王委员"))
        .env("SHANGLIANG_MEMBER2_TOKEN", h.token(Role::Member, "李委员"))
        .env("SHANGLIANG_MODERATOR_TOKEN", h.token(Role::Moderator, "主持人"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node (is Node.js installed?)");
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("stage.mjs did not finish within 240 s")
        .expect("node");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "tests/browser/stage.mjs failed ({}):\n{text}", out.status);
    assert!(text.contains("PASS"), "{text}");
}
