//! Polls and statements in Chromium (issue 17): `tests/browser/consensus.mjs` against an
//! in-process hub — the console prepares and launches a poll, a phone-sized watch page answers it
//! and sees the coalesced tally, closing freezes it, and a statement is voted on its card.
//!
//! Same prerequisites as `tests/browser.rs` (Chromium, Node.js, `web-client/dist`,
//! `tests/browser/node_modules`; made with `npm ci` when missing).

mod common;

use std::time::Duration;

use common::browser::{chromium, prerequisites, root};
use common::TestHub;
use shangliang_signaling::Role;

const NODE_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_answers_a_live_poll_on_the_watch_page_and_votes_on_a_statement() {
    prerequisites();
    let hub = TestHub::start(|cfg| cfg.web_dir = Some(root().join("web-client/dist"))).await;
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let child = tokio::process::Command::new("node")
        .arg(root().join("tests/browser/consensus.mjs"))
        .arg(format!("http://{}", hub.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium())
        .env("SHANGLIANG_MODERATOR_TOKEN", hub.token(Role::Moderator, "主持人"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(NODE_TIMEOUT, child).await.expect("consensus.mjs did not finish in time").expect("cannot run node");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(out.status.success(), "consensus.mjs failed ({}):\n{stderr}", out.status);
    assert!(stdout.contains("PASS"));
}
