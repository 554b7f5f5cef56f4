//! Media in a real browser: `tests/browser/media.mjs` drives Debian's Chromium (fake camera and
//! microphone) against an in-process hub — two members in a room decode each other's video over
//! websocket media signalling; a page without camera permission (mDNS-only candidates) watches
//! the stage through WHEP and decodes it. Screenshots go to `target/screenshots/`.
//!
//! Needs Node.js, `chromium` (`apt-get install -y chromium`) and `tests/browser/node_modules`
//! (`cd tests/browser && npm ci`; made here when missing, and by `.ci/run`).
#![allow(missing_docs)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::TestHub;
use common::browser::run_driver;
use shangliang_signaling::Role;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prerequisites() -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "the browser media test needs Chromium at {} — install it with `apt-get install -y chromium` (or set CHROMIUM)",
        chromium.display()
    );
    let driver = root().join("tests/browser");
    if !driver.join("node_modules/playwright-core").is_dir() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&driver)
            .status()
            .unwrap_or_else(|e| panic!("the browser media test needs Node.js and npm (`apt-get install -y nodejs npm`): {e}"));
        assert!(status.success(), "`npm ci` in tests/browser failed ({status}); the test needs playwright-core there");
    }
    chromium
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_see_each_other_and_an_mdns_only_whep_viewer_watches_the_stage() {
    let chromium = prerequisites();
    let h = TestHub::start(|_| {}).await; // the SFU on an ephemeral port
    // "demo" is a livestream: the public (the WHEP viewer below) sees only who is on stage. The
    // chair seats 甲委员 before they arrive (issue 13: the stage behind the chair).
    let mut chair = h.client(Role::Moderator, "主持人").await;
    common::ok(&mut chair, shangliang_signaling::consult::Command::SetStage { participant: shangliang_signaling::consult::ParticipantId::new("member:甲委员"), on: true }).await;
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(root().join("tests/browser/media.mjs"))
        .arg(format!("http://{}", h.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium)
        .env("SHANGLIANG_MEDIA_ACTIVITY", "demo")
        .env("SHANGLIANG_MEDIA_TOKEN_A", h.token(Role::Member, "甲委员"))
        .env("SHANGLIANG_MEDIA_TOKEN_B", h.token(Role::Guest, "乙专家"));
    let text = run_driver(cmd, "tests/browser/media.mjs", Duration::from_secs(240)).await;
    assert!(text.contains("media browser test: ok"));
    // Everything the browsers opened is released once they are gone.
    let t = std::time::Instant::now();
    while h.hub.media.sfu.stats().peer_connections != 0 {
        assert!(t.elapsed() < Duration::from_secs(45), "peer connections left: {:?}", h.hub.media.sfu.stats());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
