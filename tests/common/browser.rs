//! What the Chromium tests need before they start: Chromium itself, the built web client and the
//! driver's `playwright-core` (tests/browser), built or installed once per test binary.

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Chromium: `$CHROMIUM`, or Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Runs `program args` in `dir`; panics unless it succeeds.
pub fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} (is Node.js installed?): {e}"));
    assert!(status.success(), "`{program} {}` in {} failed: {status}", args.join(" "), dir.display());
}

/// Checks for Chromium, builds `web-client/dist` if missing and installs the driver if missing
/// (once per test binary, so concurrent tests never run npm together); returns Chromium's path.
pub fn prerequisites() -> PathBuf {
    let chromium = chromium();
    assert!(chromium.is_file(), "the browser tests need Chromium at {} (apt-get install -y chromium, or set CHROMIUM)", chromium.display());
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
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
    });
    chromium
}

/// Runs a Node driver script (`cmd`, its arguments and environment set by the caller) to the
/// end, killed if the test ends first; returns its stdout and stderr, and panics with both
/// unless it exits 0 within `limit`. `name` says which script in the messages.
pub async fn run_driver(mut cmd: tokio::process::Command, name: &str, limit: std::time::Duration) -> String {
    use std::process::Stdio;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node (is Node.js installed?)");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {} s", limit.as_secs()))
        .expect("node");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "{name} failed ({}):\n{text}", out.status);
    text
}
