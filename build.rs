//! Builds the web client (`web-client/` → `web-client/dist`) when its sources are newer than
//! the last build, so that `cargo run --release -- serve` on a fresh clone serves the whole
//! product; `src/server/http/web.rs` embeds `web-client/dist` into the binary (`rust-embed`).
//!
//! - Fresh output (`dist/index.html` newer than every source file): nothing runs. `.ci/run`
//!   and the browser tests build the client themselves first, so `cargo test` never runs npm
//!   alongside them.
//! - Stale or missing, npm present: `npm ci` (only when `node_modules` is older than the lock
//!   file) and `npm run build`, under an exclusive lock on `web-client/.build.lock` so that two
//!   cargo processes (a test build and `cargo fuzz`, say) never run npm in one directory at once.
//! - npm absent, the build failing, or `SHANGLIANG_SKIP_WEB_BUILD=1`: a cargo warning; the hub
//!   builds and serves a page that says how to build the client (the API works regardless).
//!
//! Reruns only when a web-client source or `dist/index.html` (or this file, or the skip variable)
//! changes: never for Rust edits, so test builds stay as fast as before. While `dist/` is
//! missing it reruns on every build (a cheap `npm --version`), so installing Node.js and
//! building again is enough.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The web client's inputs, relative to `web-client/`. A directory counts with all its files.
const INPUTS: &[&str] = &[
    "src",
    "public",
    "packages/client/src",
    "packages/client/package.json",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SHANGLIANG_SKIP_WEB_BUILD");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = root.join("web-client");
    let note = build_web_client(&web);
    // What the "not built" page says about why (web.rs shows it; empty when built).
    println!("cargo::rustc-env=SHANGLIANG_WEB_BUILD_NOTE={}", note.unwrap_or_default());
}

/// Returns why the client is not built, or `None` when `dist/` is up to date.
fn build_web_client(web: &Path) -> Option<String> {
    if !web.join("package.json").is_file() {
        return Some("this source tree has no web-client/".into());
    }
    for input in INPUTS {
        let p = web.join(input);
        // Only existing paths: cargo reruns a build script on every build while a path it
        // watches is missing.
        if p.exists() {
            println!("cargo::rerun-if-changed={}", p.display());
        }
    }
    // Also the output: a hand-made `npm run build` is then embedded by the next cargo build, and
    // while it is missing (npm absent, the build failed) cargo runs this script on every build,
    // so that installing Node.js and building again is enough.
    println!("cargo::rerun-if-changed={}", web.join("dist/index.html").display());
    if is_fresh(web) {
        return None;
    }
    if std::env::var_os("SHANGLIANG_SKIP_WEB_BUILD").is_some_and(|v| !v.is_empty() && v != "0") {
        warn("SHANGLIANG_SKIP_WEB_BUILD is set: web-client/dist is not rebuilt");
        return Some("SHANGLIANG_SKIP_WEB_BUILD was set when the hub was built".into());
    }
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    if !Command::new(&npm).arg("--version").output().is_ok_and(|o| o.status.success()) {
        warn("Node.js/npm not found: the hub will serve a page saying how to build the web client (install Node.js >= 20.19 and build again)");
        return Some("Node.js (npm) was not found when the hub was built".into());
    }
    let lock = match std::fs::File::create(web.join(".build.lock")) {
        Ok(f) => f,
        Err(e) => return Some(failed(format!("cannot create web-client/.build.lock: {e}"))),
    };
    if let Err(e) = lock.lock() {
        return Some(failed(format!("cannot lock web-client/.build.lock: {e}")));
    }
    // Another cargo process may have built it while this one waited for the lock.
    if is_fresh(web) {
        return None;
    }
    let installed = mtime(&web.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < mtime(&web.join("package-lock.json")) {
        // (Progress goes to the build log, not cargo warnings: cargo replays a package's
        // warnings on every later build, which would claim npm runs each time.)
        eprintln!("web client: npm ci (first build: about a minute)");
        if let Err(e) = run(web, &npm, &["ci", "--no-audit", "--no-fund"]) {
            return Some(failed(e));
        }
    }
    eprintln!("web client: npm run build (web-client/dist)");
    if let Err(e) = run(web, &npm, &["run", "build"]) {
        return Some(failed(e));
    }
    None
}

fn failed(why: String) -> String {
    warn(&format!("the web client was not built: {why}"));
    format!("the web client's build failed when the hub was built: {why}")
}

fn warn(msg: &str) {
    println!("cargo::warning={msg}");
}

/// Runs `npm args` in `dir`; its output goes to cargo's build log (`-vv` shows it), the tail of
/// it into the error.
fn run(dir: &Path, npm: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(npm)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("`{npm} {}`: {e}", args.join(" ")))?;
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).rev().take(5).collect();
    Err(format!("`{npm} {}` failed ({}): {}", args.join(" "), out.status, tail.into_iter().rev().collect::<Vec<_>>().join(" | ")))
}

/// Whether `dist/index.html` is newer than every input file.
fn is_fresh(web: &Path) -> bool {
    let Some(built) = mtime(&web.join("dist/index.html")) else { return false };
    let mut newest = SystemTime::UNIX_EPOCH;
    for input in INPUTS {
        newest_in(&web.join(input), &mut newest);
    }
    built >= newest
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn newest_in(p: &Path, newest: &mut SystemTime) {
    let Ok(meta) = std::fs::metadata(p) else { return };
    if meta.is_dir() {
        for entry in std::fs::read_dir(p).into_iter().flatten().flatten() {
            newest_in(&entry.path(), newest);
        }
    } else if let Ok(m) = meta.modified() {
        *newest = (*newest).max(m);
    }
}
