//! The hub's configuration file through the real binary: `serve --config FILE` takes its keys,
//! `SHANGLIANG_*` variables override them and flags override both (checked through what the
//! hub announces in `welcome`); `config check` names bad keys by line; `config example` passes
//! its own check.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_shangliang");

struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `welcome.limits` of a viewer on the hub at `port` (waits up to 20 s for it to start).
async fn limits(port: u16) -> serde_json::Value {
    let http = reqwest::Client::new();
    let mut token = None;
    for _ in 0..200 {
        if let Ok(r) = http.post(format!("http://127.0.0.1:{port}/api/activities/demo/viewer-token")).json(&serde_json::json!({"name": "看客"})).send().await {
            token = r.json::<serde_json::Value>().await.ok().and_then(|v| v["token"].as_str().map(String::from));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = token.expect("the hub answers on the configured port");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await.unwrap();
    ws.send(Message::Text(serde_json::json!({"t": "auth", "v": 1, "token": token}).to_string().into())).await.unwrap();
    let Some(Ok(Message::Text(t))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() else { panic!("no welcome") };
    let w: serde_json::Value = serde_json::from_str(&t).unwrap();
    w["limits"].clone()
}

#[tokio::test]
async fn serve_takes_the_file_the_environment_overrides_it_and_flags_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        format!(
            "# a hub for this test\nlisten = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nrtc_udp_port = 0\ncomments_per_minute = 11\nframes_per_second = 12\nidle_timeout_secs = 13\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let _hub = Hub(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&file)
            .args(["--idle-timeout-secs", "33"])
            .env("SHANGLIANG_FRAMES_PER_SECOND", "22")
            .env("SHANGLIANG_IDLE_TIMEOUT_SECS", "23")
            .env_remove("SHANGLIANG_LISTEN")
            .env_remove("SHANGLIANG_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let l = limits(port).await;
    assert_eq!(l["comments_per_minute"], 11, "from the file: {l}");
    assert_eq!(l["frames_per_second"], 22, "the environment beats the file: {l}");
    assert_eq!(l["idle_timeout_ms"], 33_000, "the flag beats the environment: {l}");
}

#[test]
fn config_check_names_each_problem_with_its_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:8080\"\nflush_ms = \"soon\"\n\ncolour = \"red\"\nno_demo = 1\n").unwrap();
    let out = Command::new(BIN).args(["config", "check"]).arg(&file).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("line 2: `flush_ms`") && lines[0].contains("soon"), "{text}");
    assert!(lines[1].contains("line 4: unknown key `colour`"), "{text}");
    assert!(lines[2].contains("line 5: `no_demo` wants true or false"), "{text}");
    // And serve refuses to start with it.
    let out = Command::new(BIN).args(["serve", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 4: unknown key `colour`"));
}

#[test]
fn config_example_documents_every_key_and_passes_its_own_check() {
    let out = Command::new(BIN).args(["config", "example"]).output().unwrap();
    assert!(out.status.success());
    let example = String::from_utf8(out.stdout).unwrap();
    for key in ["listen = \"127.0.0.1:8080\"", "comments_per_minute = 20", "# env: SHANGLIANG_COMMENTS_PER_MINUTE", "no_demo = false", "# env: SHANGLIANG_NATS"] {
        assert!(example.contains(key), "the example lacks {key:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.toml");
    std::fs::write(&file, &example).unwrap();
    let out = Command::new(BIN).args(["config", "check"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0", "--rtc-udp-port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stderr).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a log line within 20 s").expect("a log line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(v["level"].is_string() && v["fields"]["message"].is_string() && v["timestamp"].is_string(), "{v}");
}
