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

use std::time::Duration;

use common::TestHub;
use common::browser::{prerequisites, root, run_driver};
use shangliang_signaling::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_camera_reaches_the_public_only_after_the_chair_puts_them_on_stage() {
    let chromium = prerequisites();
    let h = TestHub::start(|c| c.web_dir = Some(root().join("web-client/dist"))).await;
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(root().join("tests/browser/stage.mjs"))
        .arg(format!("http://{}", h.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium)
        .env("SHANGLIANG_MEMBER_TOKEN", h.token(Role::Member, "王委员"))
        .env("SHANGLIANG_MEMBER2_TOKEN", h.token(Role::Member, "李委员"))
        .env("SHANGLIANG_MODERATOR_TOKEN", h.token(Role::Moderator, "主持人"));
    let text = run_driver(cmd, "tests/browser/stage.mjs", Duration::from_secs(240)).await;
    assert!(text.contains("PASS"), "{text}");
}
