//! The server under test: the hub spawned from its binary, the in-harness baseline spawned as
//! a child process, or an already running hub. Also mints tokens through the hub's CLI.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Args;

/// A server process we started; killed on drop.
pub struct Spawned {
    pub child: Child,
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the run talks to.
pub struct Target {
    pub kind: &'static str,
    pub url: String,
    pub pid: Option<u32>,
    pub viewer_token: String,
    pub member_tokens: Vec<String>,
    pub spawned: Option<Spawned>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")
}

fn wait_healthz(port: u16, child: &mut Child, timeout: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("hub exited early: {status}"));
        }
        if healthz(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "GET /healthz on port {port} not 200 after {timeout:?}"
    ))
}

/// `hub-bin token --data-dir DIR --activity TOPIC --role ROLE --name NAME --ttl 2h`.
pub fn mint(
    hub_bin: &Path,
    data_dir: &Path,
    topic: &str,
    role: &str,
    name: &str,
) -> Result<String, String> {
    let out = Command::new(hub_bin)
        .args(["token", "--data-dir"])
        .arg(data_dir)
        .args([
            "--activity",
            topic,
            "--role",
            role,
            "--name",
            name,
            "--ttl",
            "2h",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", hub_bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "token minting failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let tok = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    if tok.is_empty() {
        return Err("token minting printed nothing".into());
    }
    Ok(tok)
}

fn mint_all(args: &Args, data_dir: &Path) -> Result<(String, Vec<String>), String> {
    let viewer = match &args.viewer_token {
        Some(t) => t.clone(),
        None => mint(
            &args.hub_bin,
            data_dir,
            &args.topic,
            "viewer",
            "load-viewer",
        )?,
    };
    let members = if !args.member_token.is_empty() {
        args.member_token.clone()
    } else {
        (0..args.posters.max(1))
            .map(|i| {
                mint(
                    &args.hub_bin,
                    data_dir,
                    &args.topic,
                    "member",
                    &format!("load-poster-{i}"),
                )
            })
            .collect::<Result<_, _>>()?
    };
    Ok((viewer, members))
}

/// Sets up the server under test.
pub fn setup(args: &Args) -> Result<Target, String> {
    if args.baseline {
        let port = free_port();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = args
            .server_log
            .clone()
            .unwrap_or_else(|| dir.path().join("baseline.log"));
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args([
                "--role",
                "baseline-server",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--topic", &args.topic, "--buf", &args.buf.to_string()])
            .args(["--flush-ms", &args.flush_ms.to_string()])
            .args(["--deadline", &format!("{}", deadline_s(args))])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("spawn baseline: {e}"))?;
        wait_healthz(port, &mut child, Duration::from_secs(20))?;
        let pid = child.id();
        return Ok(Target {
            kind: "baseline",
            url: format!("ws://127.0.0.1:{port}/ws"),
            pid: Some(pid),
            viewer_token: "baseline-viewer".into(),
            member_tokens: vec!["baseline-member".into()],
            spawned: Some(Spawned {
                child,
                log,
                _dir: Some(dir),
            }),
        });
    }
    if args.spawn_hub {
        let port = free_port();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let log = args
            .server_log
            .clone()
            .unwrap_or_else(|| dir.path().join("hub.log"));
        // Four times what a poster needs: posts reach a starved hub in bursts.
        let per_poster_min = (args.rate / args.posters.max(1) as f64 * 60.0 * 4.0).ceil() as u32;
        let cpm = args.comments_per_minute.unwrap_or(per_poster_min.max(120));
        let mut child = Command::new(&args.hub_bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .args(["--comments-per-minute", &cpm.to_string()])
            .args([
                "--thinning-max-per-sec",
                &args.thinning_max_per_sec.to_string(),
            ])
            .args(&args.hub_arg)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("hub.out")).map_err(|e| e.to_string())?)
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| {
                format!(
                    "spawn {}: {e} (build it: cargo build --release)",
                    args.hub_bin.display()
                )
            })?;
        if let Err(e) = wait_healthz(port, &mut child, Duration::from_secs(60)) {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = tail
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            let _ = child.kill();
            return Err(format!("{e}\nhub log:\n{tail}"));
        }
        let (viewer_token, member_tokens) = mint_all(args, &data)?;
        let pid = child.id();
        return Ok(Target {
            kind: "hub",
            url: format!("ws://127.0.0.1:{port}/ws"),
            pid: Some(pid),
            viewer_token,
            member_tokens,
            spawned: Some(Spawned {
                child,
                log,
                _dir: Some(dir),
            }),
        });
    }
    // An already running hub.
    let (viewer_token, member_tokens) = match (&args.viewer_token, &args.data_dir) {
        (Some(v), _) if !args.member_token.is_empty() => (v.clone(), args.member_token.clone()),
        (_, Some(dir)) => mint_all(args, dir)?,
        _ => return Err("against a running hub give --data-dir (to mint tokens) or --viewer-token and --member-token".into()),
    };
    Ok(Target {
        kind: "hub",
        url: args.url.clone(),
        pid: args.server_pid,
        viewer_token,
        member_tokens,
        spawned: None,
    })
}

/// Upper bound on a whole run, for the self-stopping deadlines of child processes.
pub fn deadline_s(args: &Args) -> f64 {
    args.ramp_timeout + args.duration + args.drain + 120.0
}
