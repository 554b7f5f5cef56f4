//! The hub as a child process on a data directory, for the tests that kill and restart it
//! (crash, tombstones after a restart, consensus after `kill -9`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The hub binary cargo built for this test.
pub const BIN: &str = env!("CARGO_BIN_EXE_shangliang");

/// `serve` on `127.0.0.1:port` with `dir` as its data directory, `extra` flags appended.
pub fn spawn_hub(dir: &Path, port: u16, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hub")
}

/// Waits (at most 20 s) until the hub on `port` answers `/healthz`.
pub async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "hub did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A token for the demo activity from `shangliang token` on `dir`.
pub fn cli_token(dir: &Path, role: &str, name: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--activity", "demo", "--role", role, "--name", name])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run token command");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
