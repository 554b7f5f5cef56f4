//! What the players play against, all local processes the bench starts and stops: the hub
//! (from its binary), the two nginx (the cache of `docs/operations.md`, and plain static files),
//! and the mirror — one player of the parent's own that follows the hub by blocking reloads and
//! copies every playlist, part, segment and init segment, byte for byte, into the static root.
//! Also /proc readings of a process and the hub's HLS request counters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::http::Conn;
use super::now_us;
use super::playlist::{self, Pos};

/// A child process stopped on drop: SIGTERM (nginx's master then stops its workers), SIGKILL
/// after 5 s.
pub struct Proc {
    pub child: Child,
    pub what: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("local addr").port()
}

async fn wait_listening(port: u16, p: &mut Proc, timeout: Duration, log: &Path) -> Result<(), String> {
    let t = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Err(format!("{} exited ({status}): {}", p.what, tail(log)));
        }
        if t.elapsed() > timeout {
            return Err(format!("{} did not listen on {port} in {timeout:?}: {}", p.what, tail(log)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The last 20 lines of a log.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The hub: `serve` on a free port with a fresh data directory, its edge opened for the
/// players (each load process is one address holding thousands of connections; a blocked
/// reload is a pending connection), nginx on 127.0.0.1 trusted as the proxy.
pub async fn spawn_hub(bin: &Path, dir: &Path, max_pending: usize, extra: &[String]) -> Result<(Proc, u16), String> {
    let port = free_port();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let log = dir.join("hub.log");
    let child = Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .args(["--rtc-udp-port", "0", "--trusted-proxy", "127.0.0.1/32"])
        .args(["--max-pending-connections", &max_pending.to_string(), "--max-pending-per-address", &max_pending.to_string()])
        .args(extra)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("spawn {}: {e} (build it: cargo build --release)", bin.display()))?;
    let mut p = Proc { child, what: "the hub" };
    wait_listening(port, &mut p, Duration::from_secs(60), &log).await?;
    Ok((p, port))
}

/// `hub token --data-dir … --activity demo --role member --name …`.
pub fn mint(bin: &Path, dir: &Path, name: &str) -> Result<String, String> {
    let out = Command::new(bin)
        .args(["token", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--activity", "demo", "--role", "member", "--name", name, "--ttl", "4h"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().lines().last().map(str::trim) {
        Some(t) if out.status.success() && !t.is_empty() => Ok(t.to_owned()),
        _ => Err(format!("token minting failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// The `http {}` snippet of docs/operations.md between its `nginx-hls` markers (the same
/// configuration tests/hls_nginx.rs runs).
pub fn documented_config() -> Result<String, String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).map_err(|e| e.to_string())?;
    let block = doc
        .split("<!-- nginx-hls-begin -->")
        .nth(1)
        .and_then(|r| r.split("<!-- nginx-hls-end -->").next())
        .ok_or("docs/operations.md lost its nginx-hls block")?;
    let s = block.trim().trim_start_matches("```nginx").trim_end_matches("```").to_owned();
    for must in ["server 127.0.0.1:8080;", "listen 80;", "/var/cache/nginx/shangliang"] {
        if !s.contains(must) {
            return Err(format!("the documented nginx configuration lost {must:?}"));
        }
    }
    Ok(s)
}

/// nginx, as one process tree in `dir`, with `body` inside `http {}`. Both nginx of the run
/// get the same process settings (two workers for two cores, room for 10,000 players each).
pub async fn spawn_nginx(dir: &Path, port: u16, body: &str) -> Result<(Proc, Vec<u32>), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let d = dir.display();
    let user = if std::fs::read_to_string("/proc/self/status").unwrap_or_default().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) {
        "user root;\n"
    } else {
        ""
    };
    let conf = format!(
        "worker_processes 2;\nworker_rlimit_nofile 19500;\n{user}pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 16384; multi_accept on; }}\n\
         http {{\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         access_log off;\n  sendfile on; tcp_nopush on; tcp_nodelay on;\n\
         keepalive_timeout 75s; keepalive_requests 1000000;\n{body}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), &conf).map_err(|e| e.to_string())?;
    let log = dir.join("error.log");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(&log)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start nginx (apt-get install nginx): {e}"))?;
    let mut p = Proc { child, what: "nginx" };
    wait_listening(port, &mut p, Duration::from_secs(10), &log).await?;
    // Its workers, for CPU: the children of the master.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let master = p.child.id();
    let mut pids = vec![master];
    pids.extend(children(master));
    Ok((p, pids))
}

fn children(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let after = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
        if after.split_whitespace().nth(1).and_then(|s| s.parse::<u32>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// nginx with the documented cache in front of the hub.
pub async fn nginx_cache(dir: &Path, hub_port: u16) -> Result<(Proc, Vec<u32>, u16), String> {
    let port = free_port();
    let d = dir.display().to_string();
    let body = documented_config()?
        .replace("server 127.0.0.1:8080;", &format!("server 127.0.0.1:{hub_port};"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port} backlog=16384;"))
        .replace("/var/cache/nginx/shangliang", &format!("{d}/cache"));
    let (p, pids) = spawn_nginx(dir, port, &body).await?;
    Ok((p, pids, port))
}

/// nginx serving `root` (which holds `hls/demo/…`) as plain static files, with the hub's
/// content types and cache headers.
pub async fn nginx_static(dir: &Path, root: &Path) -> Result<(Proc, Vec<u32>, u16), String> {
    let port = free_port();
    let body = format!(
        "  server {{\n    listen 127.0.0.1:{port} backlog=16384;\n    root {};\n\
         types {{ application/vnd.apple.mpegurl m3u8; video/mp4 mp4 m4s; }}\n\
         location ~ \\.m3u8$ {{ add_header Cache-Control \"public, max-age=1\"; add_header Access-Control-Allow-Origin *; }}\n\
         location /hls/ {{ add_header Cache-Control \"public, max-age=31536000, immutable\"; add_header Access-Control-Allow-Origin *; }}\n  }}",
        root.display()
    );
    let (p, pids) = spawn_nginx(dir, port, &body).await?;
    Ok((p, pids, port))
}

// ---------------------------------------------------------------------------------------------
// /proc

/// Clock ticks per second of /proc/<pid>/stat.
pub fn clk_tck() -> f64 {
    Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0)
}

/// User + system CPU seconds of the processes so far.
pub fn cpu_s(pids: &[u32], tck: f64) -> f64 {
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let f: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / tck)
        })
        .sum()
}

/// Resident set size, MiB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

/// Open files.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// From the hub's /metrics: `shangliang_hls_requests_total` by kind, and the blocked-request gauge.
pub async fn hub_metrics(conn: &mut Conn) -> (BTreeMap<String, u64>, u64) {
    let Ok((200, body)) = conn.get("/metrics", Duration::from_secs(5)).await else { return (BTreeMap::new(), 0) };
    let text = String::from_utf8_lossy(&body);
    let mut kinds = BTreeMap::new();
    let mut blocked = 0;
    for l in text.lines() {
        if let Some(l) = l.strip_prefix("shangliang_hls_requests_total{") {
            let Some((labels, value)) = l.split_once("} ") else { continue };
            let Some(kind) = labels.split(',').find_map(|kv| kv.strip_prefix("kind=\"")) else { continue };
            kinds.insert(kind.trim_end_matches('"').to_owned(), value.trim().parse::<f64>().unwrap_or(0.0) as u64);
        } else if let Some(v) = l.strip_prefix("shangliang_hls_blocked_requests ") {
            blocked = v.trim().parse::<f64>().unwrap_or(0.0) as u64;
        }
    }
    (kinds, blocked)
}

// ---------------------------------------------------------------------------------------------
// The mirror

/// What the mirror saw and asked the hub for.
#[derive(Default)]
pub struct MirrorStats {
    /// The hub's requests the mirror made (subtracted from the hub's counters).
    pub requests: AtomicU64,
    /// When each part first appeared (µs), for "parts produced in the window".
    pub appeared: Mutex<Vec<u64>>,
    pub errors: AtomicU64,
}

impl MirrorStats {
    /// Parts that appeared in `[a, b]`.
    pub fn parts_between(&self, a: u64, b: u64) -> usize {
        self.appeared.lock().expect("appeared").iter().filter(|&&t| t >= a && t <= b).count()
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Follows the hub by blocking reloads until `stop`; copies into `root/hls/demo/` every init,
/// part and segment before the playlist that lists it, then the playlist, then bumps `notify`.
pub async fn mirror(hub: SocketAddr, root: PathBuf, stats: Arc<MirrorStats>, notify: watch::Sender<u64>, mut stop: watch::Receiver<bool>) {
    let dir = root.join("hls/demo");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("mirror: {e}");
        return;
    }
    let mut conn = Conn::new(None, hub);
    let mut have: BTreeSet<String> = BTreeSet::new();
    let mut parts_seen: BTreeSet<Pos> = BTreeSet::new();
    let mut hint: Option<Pos> = None;
    let limit = Duration::from_secs(10);
    while !*stop.borrow() {
        let path = match hint {
            Some((m, p)) => format!("/hls/demo/index.m3u8?_HLS_msn={m}&_HLS_part={p}"),
            None => "/hls/demo/index.m3u8".to_owned(),
        };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let got = tokio::select! {
            r = conn.get(&path, limit) => r,
            _ = stop.changed() => break,
        };
        let text = match got {
            Ok((200, b)) => b,
            _ => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                hint = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let pl = playlist::parse(&String::from_utf8_lossy(&text));
        hint = pl.hint;
        let t = now_us();
        let mut wanted: Vec<String> = Vec::new();
        for m in pl.parts.iter().chain(pl.segments.iter()) {
            if !m.map.is_empty() && !have.contains(&m.map) && !wanted.contains(&m.map) {
                wanted.push(m.map.clone());
            }
            if !have.contains(&m.uri) {
                wanted.push(m.uri.clone());
            }
            if m.pos.1 != playlist::WHOLE && parts_seen.insert(m.pos) {
                stats.appeared.lock().expect("appeared").push(t);
            }
        }
        let mut ok = true;
        for name in wanted {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            match conn.get(&format!("/hls/demo/{name}"), limit).await {
                Ok((200, b)) if write_atomic(&dir, &name, &b).is_ok() => {
                    have.insert(name);
                }
                _ => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    ok = false;
                }
            }
        }
        if ok && write_atomic(&dir, "index.m3u8", &text).is_ok() {
            notify.send_modify(|n| *n += 1);
        }
        if pl.ended {
            break;
        }
    }
}
