//! Load harness for live comments: real websocket viewers in several worker processes (each
//! binding its own source address), posters stamping each comment with its send time, and
//! one JSON line of results. `docs/load-harness.md` explains the options and the figures.
//!
//! ```text
//! cargo bench --bench load -- --baseline --viewers 2000 --rate 50 --duration 10 --procs 2
//! cargo bench --bench load -- --spawn-hub --viewers 18000 --rate 100 --duration 30
//! ```

#![recursion_limit = "256"]

#[path = "load/baseline.rs"]
mod baseline;
#[path = "load/cli.rs"]
mod cli;
#[path = "load/poster.rs"]
mod poster;
#[path = "load/proto.rs"]
mod proto;
#[path = "load/target.rs"]
mod target;
#[path = "load/worker.rs"]
mod worker;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use clap::Parser as _;
use serde_json::{Value, json};
use shangliang_signaling::ActivityId;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Most sockets one process should hold (the hard limit is 20,000 open files).
const MAX_PER_PROC: usize = 18_000;

fn main() {
    let args = cli::Args::parse();
    match args.role.as_deref() {
        Some("worker") => worker::run(args),
        Some("baseline-server") => baseline::run(args),
        Some(other) => {
            eprintln!("unknown --role {other}");
            std::process::exit(2);
        }
        None => {
            proto::self_check();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            match rt.block_on(parent(args)) {
                Ok(()) => {}
                Err(e) => {
                    eprintln!("load: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[load {}] {}", chrono_ish(), msg.as_ref());
}

fn chrono_ish() -> String {
    let us = proto::now_us();
    let s = (us / 1_000_000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Latest report of each kind from each worker.
#[derive(Default)]
struct Reports {
    connected: Vec<Option<Value>>,
    progress: Vec<Option<Value>>,
    finals: Vec<Option<Value>>,
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn sum(vs: &[Option<Value>], k: &str) -> u64 {
    vs.iter().flatten().map(|v| u(v, k)).sum()
}

async fn pump(
    rx: &mut mpsc::UnboundedReceiver<(usize, Value)>,
    reps: &mut Reports,
    until: Instant,
) {
    while let Ok(Some((i, v))) = tokio::time::timeout_at(until, rx.recv()).await {
        let slot = match v.get("ev").and_then(Value::as_str) {
            Some("connected") => &mut reps.connected,
            Some("progress") => &mut reps.progress,
            Some("final") => &mut reps.finals,
            Some("fatal") => {
                log(format!("worker {i} fatal: {v}"));
                &mut reps.finals
            }
            _ => continue,
        };
        slot[i] = Some(v);
        return;
    }
}

async fn parent(args: cli::Args) -> Result<(), String> {
    if args.viewers > 0 && args.procs == 0 {
        return Err("--procs must be at least 1".into());
    }
    let procs = args.procs.max(1);
    if args.viewers.div_ceil(procs) > MAX_PER_PROC {
        return Err(format!(
            "{} viewers over {procs} processes is more than {MAX_PER_PROC} sockets per process: use --procs {}",
            args.viewers,
            args.viewers.div_ceil(MAX_PER_PROC)
        ));
    }
    if args.posters > 250 * 200 {
        return Err("too many posters".into());
    }
    if usize::from(args.first_src) + procs > 255 {
        return Err("too many processes for 127.0.0.x source addresses".into());
    }
    let topic = ActivityId::new(&args.topic).map_err(|e| e.to_string())?;
    let tck = proto::clk_tck();
    let t_run = Instant::now();

    let mut target = target::setup(&args)?;
    log(format!(
        "target {} at {} (pid {:?})",
        target.kind, target.url, target.pid
    ));
    let addr = proto::url_addr(&target.url)?;
    let pid = target.pid;
    let rss = || pid.and_then(proto::proc_rss_mb);
    let cpu = || pid.and_then(|p| proto::proc_cpu_s(p, tck));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss();
    let cpu_idle = cpu();

    // ---- viewers: worker processes ----
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Value)>();
    let mut workers = Vec::new();
    let ramp_each = args.ramp.div_ceil(procs).max(1);
    for i in 0..procs {
        let n = args.viewers / procs + usize::from(i < args.viewers % procs);
        let src = format!("127.0.0.{}", usize::from(args.first_src) + i);
        let mut child = Command::new(&exe)
            .args([
                "--role",
                "worker",
                "--url",
                &target.url,
                "--viewers",
                &n.to_string(),
            ])
            .args([
                "--src-ip",
                &src,
                "--token",
                &target.viewer_token,
                "--topic",
                &args.topic,
            ])
            .args([
                "--ramp",
                &ramp_each.to_string(),
                "--buf",
                &args.buf.to_string(),
                "--rcvbuf",
                &args.rcvbuf.to_string(),
            ])
            .args(["--deadline", &target::deadline_s(&args).to_string()])
            .args(if args.full_decode {
                &["--full-decode"][..]
            } else {
                &[][..]
            })
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn worker: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send((i, v)).is_err()
                {
                    break;
                }
            }
        });
        workers.push(Worker { child, stdin });
    }
    drop(tx);
    let mut reps = Reports {
        connected: vec![None; procs],
        progress: vec![None; procs],
        finals: vec![None; procs],
    };
    let ramp_t0 = Instant::now();
    let ramp_until = ramp_t0 + proto::secs(args.ramp_timeout);
    let mut last_log = Instant::now();
    while reps.connected.iter().any(Option::is_none) && Instant::now() < ramp_until {
        pump(&mut rx, &mut reps, ramp_until).await;
        if reps.finals.iter().any(Option::is_some) {
            return Err("a worker failed during the ramp".into());
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            last_log = Instant::now();
            log(format!(
                "ramp: {} connected, {} failed of {}",
                sum(&reps.progress, "connected"),
                sum(&reps.progress, "failed"),
                args.viewers
            ));
        }
    }
    let ramp_s = ramp_t0.elapsed().as_secs_f64();
    let connected = sum(&reps.connected, "connected").max(sum(&reps.progress, "connected"));
    let failed = sum(&reps.connected, "failed");
    log(format!(
        "ramp done in {ramp_s:.1} s: {connected} connected, {failed} failed"
    ));
    for c in reps.connected.iter().flatten() {
        if let Some(e) = c.get("first_error").and_then(Value::as_str) {
            log(format!("first connect error: {e}"));
            break;
        }
    }
    // Let the server settle, then take RSS with everyone connected.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = rss();
    let cpu_connected = cpu();

    // ---- posters ----
    let mut posters = Vec::new();
    for i in 0..args.posters {
        let tok = &target.member_tokens[i % target.member_tokens.len()];
        posters.push(poster::join(&target.url, addr, tok, i).await?);
    }
    let dropped_before = sum(&reps.progress, "dropped");
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + proto::secs(args.duration);
    let drain = proto::secs(args.drain);
    let cpu_start = cpu();
    log(format!(
        "posting {} comments/s from {} posters for {} s",
        args.rate, args.posters, args.duration
    ));
    let live = std::sync::Arc::new(poster::Live::default());
    let post_task = tokio::spawn(poster::run_all(
        posters,
        topic,
        args.rate,
        start,
        end,
        drain,
        live.clone(),
    ));
    // Keep consuming reports while posting (the pipes must not fill up).
    while Instant::now() < end {
        pump(&mut rx, &mut reps, end).await;
    }
    let posting_done = Instant::now();
    // Drain: until every post is answered and every acked comment is counted by every viewer
    // still connected, or `--drain` seconds after posting stopped.
    let drain_until = posting_done + drain;
    loop {
        use std::sync::atomic::Ordering::Relaxed;
        let alive = connected.saturating_sub(sum(&reps.progress, "dropped"));
        let expect = live.acked.load(Relaxed) * alive;
        let got = sum(&reps.progress, "recv_alive");
        let answered = live.answered.load(Relaxed) >= live.posted.load(Relaxed);
        let posters_done = live.running.load(Relaxed) == 0 || answered;
        if (posters_done && got >= expect) || Instant::now() >= drain_until {
            break;
        }
        pump(&mut rx, &mut reps, drain_until).await;
    }
    // Posters give up on unanswered posts at the same deadline.
    let posted = post_task.await.map_err(|e| e.to_string())?;
    let drain_s = posting_done.elapsed().as_secs_f64();
    let cpu_end = cpu();
    let rss_end = rss();
    let window_s = Instant::now().duration_since(start).as_secs_f64();

    // ---- collect ----
    for w in &mut workers {
        if let Some(mut s) = w.stdin.take() {
            let _ = s.write_all(b"stop\n").await;
            let _ = s.flush().await;
        }
    }
    let fin_until = Instant::now() + Duration::from_secs(20);
    while reps.finals.iter().any(Option::is_none) && Instant::now() < fin_until {
        pump(&mut rx, &mut reps, fin_until).await;
    }
    for w in &mut workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), w.child.wait()).await;
        let _ = w.child.start_kill();
    }
    let exited = target
        .spawned
        .as_mut()
        .and_then(|s| s.child.try_wait().ok().flatten())
        .map(|s| s.to_string());
    if let (Some(status), Some(s)) = (&exited, &target.spawned) {
        let text = std::fs::read_to_string(&s.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        log(format!(
            "server exited during the run ({status}); its log ends:"
        ));
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
    }
    drop(target.spawned.take());

    let finals: Vec<&Value> = reps.finals.iter().flatten().collect();
    if finals.len() < procs {
        log(format!(
            "only {} of {procs} workers sent their final report: totals are short",
            finals.len()
        ));
    }
    let fsum = |k: &str| finals.iter().map(|v| u(v, k)).sum::<u64>();
    let mut hist = proto::new_hist();
    for f in &finals {
        if let Some(h) = f
            .get("hist")
            .and_then(Value::as_str)
            .and_then(proto::hist_from_b64)
        {
            let _ = hist.add(&h);
        }
    }
    let viewers_connected = fsum("connected");
    let dropped = fsum("dropped");
    let stayed = viewers_connected.saturating_sub(dropped);
    let expected = posted.acked * stayed;
    let received = fsum("recv") - fsum("recv_dropped");
    let mut close_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for f in &finals {
        if let Some(m) = f.get("close_reasons").and_then(Value::as_object) {
            for (k, v) in m {
                *close_reasons.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
            }
        }
    }
    let loadgen_cpu: f64 = finals
        .iter()
        .filter_map(|v| v.get("cpu_s").and_then(Value::as_f64))
        .sum();
    let server_cpu = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => Some(proto::r3(b - a)),
        _ => None,
    };
    let per_viewer_kib = match (rss_idle, rss_connected) {
        (Some(a), Some(b)) if viewers_connected > 0 => {
            Some(proto::r3((b - a) * 1024.0 / viewers_connected as f64))
        }
        _ => None,
    };
    // The same growth at the end of the posting run (after the drain): what the connections,
    // their buffers and the history cost once comments have flowed.
    let per_viewer_kib_end = match (rss_idle, rss_end) {
        (Some(a), Some(b)) if viewers_connected > 0 => {
            Some(proto::r3((b - a) * 1024.0 / viewers_connected as f64))
        }
        _ => None,
    };
    let lat = proto::hist_summary_ms(&hist);
    let result = json!({
        "target": target.kind,
        "url": target.url,
        "viewers_target": args.viewers,
        "viewers_connected": viewers_connected,
        "viewers_failed": fsum("failed"),
        "viewers_dropped": dropped,
        "viewers_dropped_during_post": dropped.saturating_sub(dropped_before),
        "connect_retries": fsum("retries"),
        "close_reasons": close_reasons,
        "procs": procs,
        "posters": args.posters,
        "rate_target": args.rate,
        "rate_achieved": proto::r3(posted.posted as f64 / args.duration.max(0.001)),
        "comments_posted": posted.posted,
        "comments_acked": posted.acked,
        "comments_held": posted.held,
        "comments_unanswered": posted.unanswered,
        "post_errors": posted.errors,
        "post_first_error": posted.first_error,
        "per_poster_posted_acked_unanswered": posted.per_poster,
        "deliveries_expected": expected,
        "deliveries_received": received,
        "delivery_ratio": if expected > 0 { Some(proto::r3(received as f64 / expected as f64)) } else { None },
        "gaps": fsum("gaps"),
        "gap_seqs": fsum("gap_seqs"),
        "thinning": {"thinned_deliveries": fsum("thinned"), "hub_thinning_max_per_sec": if target.kind == "hub" && args.spawn_hub { Some(args.thinning_max_per_sec) } else { None }},
        "frames_received": fsum("frames"),
        "latency_ms": lat,
        "ack_latency_ms": proto::hist_summary_ms(&posted.ack_hist),
        "server_pid": pid,
        "server_rss_mb_idle": rss_idle.map(proto::r3),
        "server_rss_mb_connected": rss_connected.map(proto::r3),
        "server_rss_mb": rss_end.map(proto::r3),
        "rss_per_viewer_kib": per_viewer_kib,
        "rss_per_viewer_kib_end": per_viewer_kib_end,
        "server_cpu_s": server_cpu,
        "server_cpu_s_ramp": match (cpu_idle, cpu_connected) { (Some(a), Some(b)) => Some(proto::r3(b - a)), _ => None },
        "server_cpu_util": server_cpu.map(|c| proto::r3(c / window_s)),
        "deliveries_per_server_cpu_s": server_cpu.filter(|c| *c > 0.0).map(|c| (received as f64 / c).round()),
        "frames_per_server_cpu_s": server_cpu.filter(|c| *c > 0.0).map(|c| (fsum("frames") as f64 / c).round()),
        "loadgen_cpu_s": proto::r3(loadgen_cpu),
        "loadgen_rss_mb": proto::r3(finals.iter().filter_map(|v| v.get("rss_mb").and_then(Value::as_f64)).sum::<f64>()),
        "workers_reported": finals.len(),
        "duration_s": proto::r3(args.duration),
        "window_s": proto::r3(window_s),
        "ramp_s": proto::r3(ramp_s),
        "drain_s": proto::r3(drain_s),
        "total_s": proto::r3(t_run.elapsed().as_secs_f64()),
        "buf_bytes": args.buf,
        "rcvbuf_bytes": args.rcvbuf,
        "decoder": if args.full_decode { "decode_server" } else { "fast" },
        "baseline_flush_ms": if target.kind == "baseline" { Some(args.flush_ms) } else { None },
        "server_exited": exited,
    });
    let line = result.to_string();
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{line}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    Ok(())
}
