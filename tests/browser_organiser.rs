//! The organiser's console in Chromium (issue 14): `tests/browser/organiser.mjs` signs in,
//! creates a livestream with the checked form, invites a member and a guest, opens it; the member
//! joins from the invitation link and the public page goes from waiting to live. Screenshots in
//! `target/screenshots/organiser-*.png`. Needs what `tests/browser.rs` needs (Chromium, Node.js,
//! the built web client, `tests/browser/node_modules`), made by `common::browser::prerequisites`.

mod admin_support;
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestHub;
use common::browser::{prerequisites, root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organiser_creates_invites_and_opens_a_livestream_and_the_member_joins_by_the_link() {
    let chromium = prerequisites();
    let hub = TestHub::start(|cfg| cfg.web_dir = Some(root().join("web-client/dist"))).await;
    admin_support::bootstrap(hub.hub.organisers.as_ref().unwrap());
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let child = tokio::process::Command::new("node")
        .arg(root().join("tests/browser/organiser.mjs"))
        .arg(format!("http://{}", hub.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium)
        .env("SHANGLIANG_STAFF_USER", "prov.org")
        .env("SHANGLIANG_STAFF_PASSWORD", admin_support::PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node (is Node.js installed?)");
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("organiser.mjs did not finish in time")
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "organiser.mjs failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(stdout.contains("PASS"), "{stdout}");
    for shot in ["organiser-validation", "organiser-invitations", "organiser-public-waiting", "organiser-member-joined", "organiser-public-live"] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "no screenshot {shot}");
    }
}
