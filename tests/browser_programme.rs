//! The livestream programme in Chromium: two fake cameras publish onto the stage over WHIP, a
//! third browser plays the watch page through hls.js, and the floor handed from one speaker to
//! the other switches the picture; "低延迟" on a node that refuses WebRTC viewers falls back to
//! HLS by itself (`tests/browser/programme.mjs`).
//!
//! Needs Node.js, `chromium`, `ffmpeg` (to make the fake cameras' y4m files), `web-client/dist`
//! and `tests/browser/node_modules` (made here when missing; `.ci/run` makes them beforehand).
#![allow(missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::browser::{prerequisites, root, run};
use common::{Client, TestHub, ok};
use shangliang_signaling::consult::{Command, GrantTarget, ParticipantId};
use shangliang_signaling::Role;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A y4m file Chromium's fake capture loops: a noisy solid colour (so a viewer can tell the
/// cameras apart by the picture) of the given size.
fn fake_camera(dir: &Path, name: &str, colour: &str, size: &str) -> PathBuf {
    let path = dir.join(format!("{name}.y4m"));
    run(
        dir,
        "ffmpeg",
        &["-v", "error", "-y", "-f", "lavfi", "-i", &format!("color=c={colour}:size={size}:rate=30,noise=alls=12:allf=t"), "-t", "2", "-pix_fmt", "yuv420p", path.to_str().unwrap()],
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_plays_the_programme_with_hls_js_and_follows_the_floor_to_the_next_speaker() {
    let chromium = prerequisites();
    let web = root().join("web-client/dist");
    let h = TestHub::start(|c| {
        c.web_dir = Some(web.clone());
        // (The SFU takes one ephemeral UDP port.)
        // A node with no room for WebRTC viewers: the player's "低延迟" must fall back to HLS.
        c.sfu.max_viewers_per_node = 0;
    })
    .await;
    let (a, b) = ("甲委员", "乙委员");
    let pid = |name: &str| ParticipantId::new(format!("member:{name}"));
    // The speakers are present in the session (their websockets), as the floor requires.
    let mut chair = h.client(Role::Moderator, "主持人").await;
    let _present: Vec<Client> = vec![h.client(Role::Member, a).await, h.client(Role::Member, b).await];
    let cams = tempfile::tempdir().unwrap();
    let y4m_a = fake_camera(cams.path(), "a", "0xD02020", "320x240");
    let y4m_b = fake_camera(cams.path(), "b", "0x2020D0", "352x288");
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut child = tokio::process::Command::new("node")
        .arg(root().join("tests/browser/programme.mjs"))
        .arg(format!("http://{}", h.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium)
        .env("SHANGLIANG_TOKEN_A", h.token(Role::Member, a))
        .env("SHANGLIANG_TOKEN_B", h.token(Role::Member, b))
        .env("SHANGLIANG_PARTICIPANT_A", pid(a).as_str())
        .env("SHANGLIANG_PARTICIPANT_B", pid(b).as_str())
        .env("SHANGLIANG_Y4M_A", &y4m_a)
        .env("SHANGLIANG_Y4M_B", &y4m_b)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node (is Node.js installed?)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let conversation = async {
        while let Some(line) = stdout.next_line().await.expect("node stdout") {
            eprintln!("programme.mjs: {line}");
            let Some(request) = line.strip_prefix('@') else { continue };
            let answer = match request.split_once(' ') {
                Some(("floor", who)) => {
                    let target = pid(if who.trim() == "A" { a } else { b });
                    ok(&mut chair, Command::GrantFloor { target: GrantTarget::Participant(target), limit_ms: None }).await;
                    "ok".to_string()
                }
                _ => format!("unknown request {request:?}"),
            };
            stdin.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
        }
        child.wait().await.expect("node")
    };
    let status = tokio::time::timeout(Duration::from_secs(180), conversation).await.expect("programme.mjs did not finish within 180 s");
    let stderr = errors.await.unwrap();
    eprintln!("--- programme.mjs stderr ---\n{stderr}");
    assert!(status.success(), "programme.mjs failed ({status}):\n{stderr}");
}
