//! Polls and statements in Chromium (issue 17): `tests/browser/consensus.mjs` against an
//! in-process hub — the console prepares and launches a poll, a phone-sized watch page answers it
//! and sees the coalesced tally, closing freezes it, and a statement is voted on its card.
//!
//! Same prerequisites as `tests/browser.rs` (Chromium, Node.js, `web-client/dist`,
//! `tests/browser/node_modules`; made with `npm ci` when missing).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestHub;
use shangliang_signaling::Role;

const NODE_TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} (is Node.js installed?): {e}"));
    assert!(status.success(), "`{program} {}` in {} failed: {status}", args.join(" "), dir.display());
}

fn prerequisites() {
    assert!(chromium().is_file(), "the browser tests need Chromium at {} (apt-get install -y chromium)", chromium().display());
    let web = root().join("web-client");
    if !web.join("dist/index.html").is_file() {
        if !web.join("node_modules").is_dir() {
            run(&web, "npm", &["ci", "--no-audit", "--no-fund"]);
        }
        run(&web, "npm", &["run", "build"]);
    }
    let driver = root().join("tests/browser");
    if !driver.join("node_modules/playwright-core").is_dir() {
        run(&driver, "npm", &["ci", "--no-audit", "--no-fund"]);
    }
}

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
