//! LL-HLS players at scale (issue 10): N simulated players that play the programme as hls.js
//! does — blocking playlist reload for the preload-hinted part, then that part; whole segments
//! when one falls behind — against, in one run and from one live source:
//!
//! - **hub**: the hub directly (its blocked reloads wait on the programme's `watch`);
//! - **nginx**: nginx with the `proxy_cache` configuration of `docs/operations.md` in front;
//! - **static**: nginx serving a byte-for-byte copy of the same files as plain static files
//!   (the floor: what serving these bytes costs without an origin).
//!
//! ```text
//! cargo build --release --bin shangliang
//! cargo bench --bench hls_players -- --hub-bin target/release/shangliang --players 1000,5000,10000 --duration 30
//! ```
//!
//! The bench starts everything itself and stops it at the end: the hub (fresh data directory),
//! a WHIP stage publisher in this process (H.264 + Opus encoded once by ffmpeg, sent in real
//! time: `tests/support/whip_publisher.rs`), both nginx, and the players in load processes of
//! at most `--per-proc` players each, each binding its own source address 127.0.0.x (a process
//! may hold 20,000 files; one address has ~28,000 ephemeral ports per destination).
//!
//! **How the static floor is made fair.** The parent runs one more player, the *mirror*, on the
//! hub directly: it follows the programme by blocking reloads and writes every init, part and
//! segment, then the playlist that lists them, into nginx's static root (atomic renames), and
//! tells the load processes (a line on their stdin) that a new playlist is there. A static
//! server cannot hold a request until a part exists, so static players wait for that line where
//! the others wait in a blocking reload, then `GET index.m3u8` and the new part: the same
//! requests for the same bytes at the moment a blocking reload would have been answered. The
//! mirror runs in every scenario (its own requests are subtracted from the hub's counters).
//!
//! Per scenario and N, after the ramp and a warm-up, inside a window of `--duration` seconds:
//! requests/s and bytes/s the players received, origin (hub) requests per part produced, hub
//! and nginx CPU-seconds per player-second (/proc/PID/stat), the latency each player saw from a
//! part's first-frame date-time (`EXT-X-PROGRAM-DATE-TIME` + the parts before it in the
//! segment; the hub stamps it with the frame's arrival time) to the part's last byte, and from
//! the part's end to arrival (what serving adds), p50/p95/p99; the hub's most open files, RSS
//! and blocked requests. One markdown table on stdout (and `--json-out`).

#[path = "hls_players/http.rs"]
mod http;
#[path = "hls_players/origin.rs"]
mod origin;
#[path = "hls_players/player.rs"]
mod player;
#[path = "hls_players/playlist.rs"]
mod playlist;
#[path = "../tests/support/whip_publisher.rs"]
mod whip_publisher;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clap::Parser;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

/// LL-HLS player bench: the hub, nginx's cache in front of it, and nginx serving static copies.
#[derive(Parser, Debug, Clone)]
#[command(name = "hls_players", about)]
pub struct Args {
    /// Hub binary (`cargo build --release --bin shangliang`).
    #[arg(long, env = "SHANGLIANG_BIN", default_value = "target/release/shangliang")]
    pub hub_bin: PathBuf,
    /// Players, comma-separated: each N is run in every scenario.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub players: Vec<usize>,
    /// Scenarios, comma-separated, in this order: hub, nginx, static.
    #[arg(long, value_delimiter = ',', default_value = "hub,nginx,static")]
    pub scenarios: Vec<String>,
    /// Seconds of measurement per scenario (after the ramp and the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Seconds over which players start (default: one second per 1,000 players, at least 2).
    #[arg(long)]
    pub ramp_secs: Option<f64>,
    /// Seconds of play after the ramp before the window opens.
    #[arg(long, default_value_t = 4.0)]
    pub warmup: f64,
    /// Most players per load process (each process binds its own source address).
    #[arg(long, default_value_t = 2500)]
    pub per_proc: usize,
    /// Last octet of the first load process's source address 127.0.0.x (127.0.0.1 is nginx's,
    /// trusted by the hub as the proxy).
    #[arg(long, default_value_t = 10)]
    pub first_src: u8,
    /// The stage camera: an ffmpeg lavfi source (640x360 test pattern: ~1.5 Mbit/s of H.264 with a
    /// keyframe every 0.5 s, about a real stage camera's rate).
    #[arg(long, default_value = "testsrc2=size=640x360")]
    pub source: String,
    /// Extra argument for the hub's `serve` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub hub_arg: Vec<String>,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Keep the temporary directory (hub data, logs, nginx configs) and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,

    // ---- internal: the `players` role ----
    /// Internal: `players`.
    #[arg(long, hide = true)]
    pub role: Option<String>,
    /// Internal: the players' base URL (`http://127.0.0.1:PORT/hls/demo`).
    #[arg(long, hide = true, default_value = "")]
    pub url: String,
    /// Internal: players in this load process.
    #[arg(long, hide = true, default_value_t = 0)]
    pub count: usize,
    /// Internal: the source address the process binds.
    #[arg(long, hide = true)]
    pub src_ip: Option<Ipv4Addr>,
    /// Internal: when the first player starts (µs since the Unix epoch).
    #[arg(long, hide = true, default_value_t = 0)]
    pub start_us: u64,
    /// Internal: seconds over which the process's players start.
    #[arg(long, hide = true, default_value_t = 0.0)]
    pub ramp: f64,
    /// Internal: the measurement window's start (µs since the Unix epoch).
    #[arg(long, hide = true, default_value_t = 0)]
    pub window_start_us: u64,
    /// Internal: the window's end; the players stop there.
    #[arg(long, hide = true, default_value_t = 0)]
    pub window_end_us: u64,
    /// Internal: static mode (wait for a line on stdin instead of a blocking reload).
    #[arg(long, hide = true)]
    pub notified: bool,
}

/// Microseconds since the Unix epoch (one machine: every process's clock agrees).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Latency histogram, µs, 1 µs to 10 min.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// A histogram, V2-serialised and base64, for the report line.
pub fn hist_to_b64(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2Serializer::new().serialize(h, &mut buf).expect("serialise histogram");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

fn hist_from_b64(s: &str) -> Option<Histogram<u64>> {
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    Deserializer::new().deserialize(&mut &raw[..]).ok()
}

fn main() {
    let args = Args::parse();
    match args.role.as_deref() {
        Some("players") => player::run(args),
        Some(other) => {
            eprintln!("unknown --role {other}");
            std::process::exit(2);
        }
        None => {
            playlist::self_check();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            if let Err(e) = rt.block_on(parent(args)) {
                eprintln!("hls_players: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn log(msg: impl AsRef<str>) {
    let s = now_us() / 1_000_000 % 86_400;
    eprintln!("[hls_players {:02}:{:02}:{:02}] {}", s / 3600, s / 60 % 60, s % 60, msg.as_ref());
}

/// Everything a scenario needs of the running setup.
struct Setup {
    hub_pid: u32,
    hub_addr: SocketAddr,
    cache: Option<(u16, Vec<u32>)>,
    statics: Option<(u16, Vec<u32>)>,
    mirror: Arc<origin::MirrorStats>,
    notify: watch::Receiver<u64>,
    tck: f64,
}

async fn parent(args: Args) -> Result<(), String> {
    if args.players.contains(&0) {
        return Err("--players: every N must be at least 1".into());
    }
    for s in &args.scenarios {
        if !["hub", "nginx", "static"].contains(&s.as_str()) {
            return Err(format!("unknown scenario {s:?} (hub, nginx, static)"));
        }
    }
    let most = args.players.iter().copied().max().unwrap_or(0);
    let per_proc = args.per_proc.clamp(1, 9000);
    if usize::from(args.first_src) + most.div_ceil(per_proc) > 254 || args.first_src < 2 {
        return Err("not enough 127.0.0.x source addresses: raise --per-proc or lower --first-src (≥ 2)".into());
    }
    let tmp = tempfile::Builder::new().prefix("hls-players-").tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path().to_path_buf();
    log(format!("working directory {}", dir.display()));

    // The hub, with room for every player's connection.
    // A quarter more than the players: the edge keeps its last eighth for addresses holding few.
    let (hub, hub_port) = origin::spawn_hub(&args.hub_bin, &dir, (most * 5 / 4 + 2000).min(19_000), &args.hub_arg).await?;
    let hub_addr: SocketAddr = ([127, 0, 0, 1], hub_port).into();
    log(format!("hub pid {} on {hub_addr}", hub.child.id()));

    // The stage: one WHIP publisher, encoded once, sent in real time, looping.
    let token = origin::mint(&args.hub_bin, &dir, "王委员")?;
    let media = {
        let (d, src) = (dir.clone(), args.source.clone());
        tokio::task::spawn_blocking(move || whip_publisher::encode(&d, "stage", &src, 440, 10)).await.map_err(|e| e.to_string())?
    };
    let publisher = whip_publisher::WhipPublisher::start(&format!("http://{hub_addr}"), "demo", &token, Arc::new(media), 0x4000_0000).await;
    log("publisher on stage; waiting for the programme");
    let mut probe = http::Conn::new(None, hub_addr);
    let t = std::time::Instant::now();
    loop {
        if let Ok((200, b)) = probe.get("/hls/demo/index.m3u8", Duration::from_secs(5)).await
            && playlist::parse(&String::from_utf8_lossy(&b)).segments.len() >= 2
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err(format!("the programme did not come on air in 60 s: {}", origin::tail(&dir.join("hub.log"))));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The mirror, then both nginx.
    let static_root = dir.join("static");
    let mirror = Arc::new(origin::MirrorStats::default());
    let (notify_tx, notify) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mirror_task = tokio::spawn(origin::mirror(hub_addr, static_root.clone(), Arc::clone(&mirror), notify_tx, stop_rx));
    let wants = |s: &str| args.scenarios.iter().any(|x| x == s);
    let cache = if wants("nginx") { Some(origin::nginx_cache(&dir.join("nginx-cache"), hub_port).await?) } else { None };
    let statics = if wants("static") { Some(origin::nginx_static(&dir.join("nginx-static"), &static_root).await?) } else { None };
    let setup = Setup {
        hub_pid: hub.child.id(),
        hub_addr,
        cache: cache.as_ref().map(|(_, pids, port)| (*port, pids.clone())),
        statics: statics.as_ref().map(|(_, pids, port)| (*port, pids.clone())),
        mirror: Arc::clone(&mirror),
        notify,
        tck: origin::clk_tck(),
    };

    let mut rows = Vec::new();
    for &n in &args.players {
        for s in &args.scenarios {
            log(format!("{s}: {n} players"));
            let row = scenario(&args, &setup, s, n, per_proc).await?;
            log(format!("{s}: {row}"));
            rows.push(row);
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), mirror_task).await;
    publisher.stop().await;
    drop((cache, statics, hub));

    println!("{}", table(&rows));
    if let Some(p) = &args.json_out {
        std::fs::write(p, serde_json::to_string_pretty(&rows).unwrap_or_default()).map_err(|e| e.to_string())?;
    }
    if args.keep {
        log(format!("kept {}", tmp.keep().display()));
    }
    Ok(())
}

fn sleep_until_us(t: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_micros(t.saturating_sub(now_us())))
}

/// One scenario at N players: load processes, samples of the hub, the row.
async fn scenario(args: &Args, s: &Setup, kind: &str, n: usize, per_proc: usize) -> Result<Value, String> {
    let (port, pids, notified) = match kind {
        "hub" => (s.hub_addr.port(), vec![], false),
        "nginx" => s.cache.clone().map(|(p, pids)| (p, pids, false)).ok_or("no nginx")?,
        _ => s.statics.clone().map(|(p, pids)| (p, pids, true)).ok_or("no static nginx")?,
    };
    let url = format!("http://127.0.0.1:{port}/hls/demo");
    let procs = n.div_ceil(per_proc);
    let ramp = args.ramp_secs.unwrap_or((n as f64 / 1000.0).max(2.0));
    let start = now_us() + 1_000_000;
    let ws = start + ((ramp + args.warmup) * 1e6) as u64;
    let we = ws + (args.duration * 1e6) as u64;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for i in 0..procs {
        let count = n / procs + usize::from(i < n % procs);
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(["--role", "players", "--url", &url, "--count", &count.to_string()])
            .args(["--src-ip", &format!("127.0.0.{}", usize::from(args.first_src) + i)])
            .args(["--start-us", &start.to_string(), "--ramp", &ramp.to_string()])
            .args(["--window-start-us", &ws.to_string(), "--window-end-us", &we.to_string()]);
        if notified {
            cmd.arg("--notified");
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn a load process: {e}"))?;
        stdins.push(child.stdin.take());
        children.push(child);
    }
    // Static players: one line per new playlist on disk.
    let forward = notified.then(|| {
        let mut rx = s.notify.clone();
        let mut pipes: Vec<_> = stdins.drain(..).flatten().collect();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                for p in &mut pipes {
                    let _ = p.write_all(b"\n").await;
                }
                if now_us() > we + 1_000_000 {
                    break;
                }
            }
        })
    });

    // Before the window, at its start, during it (samples), at its end.
    let mut metrics = http::Conn::new(None, s.hub_addr);
    sleep_until_us(ws).await;
    let (m0, _) = origin::hub_metrics(&mut metrics).await;
    let (hub0, nginx0, mirror0) = (origin::cpu_s(&[s.hub_pid], s.tck), origin::cpu_s(&pids, s.tck), s.mirror.requests.load(Ordering::Relaxed));
    let (mut max_fds, mut max_rss, mut max_blocked) = (0usize, 0f64, 0u64);
    while now_us() < we {
        max_fds = max_fds.max(origin::fds(s.hub_pid));
        max_rss = max_rss.max(origin::rss_mb(s.hub_pid));
        let (_, blocked) = origin::hub_metrics(&mut metrics).await;
        max_blocked = max_blocked.max(blocked);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = sleep_until_us(we) => {}
        }
    }
    let (m1, _) = origin::hub_metrics(&mut metrics).await;
    let (hub1, nginx1, mirror1) = (origin::cpu_s(&[s.hub_pid], s.tck), origin::cpu_s(&pids, s.tck), s.mirror.requests.load(Ordering::Relaxed));
    let parts = s.mirror.parts_between(ws, we);

    // The load processes' reports.
    let mut finals = Vec::new();
    for mut c in children {
        let Some(out) = c.stdout.take() else { continue };
        let mut lines = tokio::io::BufReader::new(out).lines();
        let line = tokio::time::timeout(Duration::from_secs(40), lines.next_line()).await;
        match line {
            Ok(Ok(Some(l))) => finals.push(serde_json::from_str::<Value>(&l).map_err(|e| format!("a load process said {l:?}: {e}"))?),
            _ => log("a load process did not report"),
        }
        let _ = c.kill().await;
    }
    if let Some(f) = forward {
        f.abort();
    }
    let sum = |k: &str| finals.iter().map(|v| v[k].as_u64().unwrap_or(0)).sum::<u64>();
    let mut lat = new_hist();
    let mut del = new_hist();
    for f in &finals {
        if let Some(h) = f["latency"].as_str().and_then(hist_from_b64) {
            let _ = lat.add(h);
        }
        if let Some(h) = f["delivery"].as_str().and_then(hist_from_b64) {
            let _ = del.add(h);
        }
    }
    let errors: Vec<Value> = finals.iter().flat_map(|f| f["errors"].as_array().cloned().unwrap_or_default()).take(5).collect();
    let secs = (we - ws) as f64 / 1e6;
    let origin_total: u64 = m1.iter().map(|(k, v)| v.saturating_sub(m0.get(k).copied().unwrap_or(0))).sum();
    let origin = origin_total.saturating_sub(mirror1 - mirror0);
    let player_secs = sum("playing_at_start").max(1) as f64 * secs;
    let q = |h: &Histogram<u64>, p: f64| if h.is_empty() { Value::Null } else { json!((h.value_at_quantile(p) as f64 / 1000.0).round()) };
    Ok(json!({
        "scenario": kind,
        "players": n,
        "playing": sum("playing_at_start"),
        "window_s": secs,
        "requests_per_s": (sum("requests") as f64 / secs).round(),
        "mbytes_per_s": ((sum("bytes") as f64 / secs / 1e6) * 100.0).round() / 100.0,
        "parts_downloaded": sum("parts"),
        "segments_downloaded": sum("segments"),
        "parts_produced": parts,
        "origin_requests": origin,
        "origin_requests_per_part": if parts > 0 { json!(((origin as f64 / parts as f64) * 100.0).round() / 100.0) } else { Value::Null },
        "hub_cpu_ms_per_player_s": ((hub1 - hub0) * 1000.0 / player_secs * 1000.0).round() / 1000.0,
        "nginx_cpu_ms_per_player_s": if pids.is_empty() { Value::Null } else { json!(((nginx1 - nginx0) * 1000.0 / player_secs * 1000.0).round() / 1000.0) },
        "hub_cpu_s": ((hub1 - hub0) * 100.0).round() / 100.0,
        "latency_ms": { "p50": q(&lat, 0.5), "p95": q(&lat, 0.95), "p99": q(&lat, 0.99), "count": lat.len() },
        "delivery_ms": { "p50": q(&del, 0.5), "p95": q(&del, 0.95), "p99": q(&del, 0.99) },
        "refused": sum("refused"),
        "failed": sum("failed"),
        "connects": sum("connects"),
        "hub_max_fds": max_fds,
        "hub_max_rss_mb": max_rss.round(),
        "hub_max_blocked": max_blocked,
        "load_processes": procs,
        "reports": finals.len(),
        "errors": errors,
    }))
}

fn table(rows: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | players (playing) | req/s | MB/s | origin req/part | hub CPU ms/player-s | nginx CPU ms/player-s | latency p50/p95/p99 ms | serving p50/p95/p99 ms | errors | hub fds / RSS MB / blocked (max) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let f = |v: &Value| match v {
        Value::Null => "–".to_owned(),
        v => v.to_string(),
    };
    for r in rows {
        out.push_str(&format!(
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {}/{}/{} | {}/{}/{} | {} refused, {} failed | {} / {} / {} |\n",
            r["scenario"].as_str().unwrap_or(""),
            r["players"],
            r["playing"],
            f(&r["requests_per_s"]),
            f(&r["mbytes_per_s"]),
            f(&r["origin_requests_per_part"]),
            f(&r["hub_cpu_ms_per_player_s"]),
            f(&r["nginx_cpu_ms_per_player_s"]),
            f(&r["latency_ms"]["p50"]),
            f(&r["latency_ms"]["p95"]),
            f(&r["latency_ms"]["p99"]),
            f(&r["delivery_ms"]["p50"]),
            f(&r["delivery_ms"]["p95"]),
            f(&r["delivery_ms"]["p99"]),
            r["refused"],
            r["failed"],
            r["hub_max_fds"],
            r["hub_max_rss_mb"],
            r["hub_max_blocked"],
        ));
    }
    out
}
