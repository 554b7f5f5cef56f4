//! Forwarding bench: the SFU against a plain UDP forwarder of the same packets, in one run.
//!
//! ```text
//! cargo build --release -p shangliang-sfu --example forward_bench
//! ./target/release/examples/forward_bench [N1,N2,...] [seconds per phase]
//! ```
//!
//! One publisher (a webrtc bot: 30 fps × 5 × 1200 B VP8-like video + 50 pps audio) and, for each
//! N, two phases of `seconds` each:
//!
//! 1. **SFU**: N WHEP viewers (light sans-I/O receivers, see `light.rs`) of the SFU, which runs
//!    in a child process (`--serve sfu`) on its one UDP port: ICE-lite, DTLS, SRTP on, batched
//!    sends.
//! 2. **Floor**: the publisher pauses; the same packet pattern goes as plain RTP over UDP to a
//!    second child (`--serve plain`), which sends each packet to N plain receivers with one
//!    `send_to` per packet per receiver — no SRTP, no ICE, no batching.
//!
//! For both it prints forwarded packets per child CPU-second (utime + stime of the child from
//! `/proc/<pid>/stat`), loss at the receivers, the ratio SFU / floor, datagrams per `sendmsg`
//! and the SFU's resident memory per viewer. It stops stepping once the SFU's loss exceeds 5 %,
//! and ends with the largest N below 1 % loss.
#![allow(missing_docs)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod light;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use shangliang_sfu::{SessionId, Sfu, SfuConfig};

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
    String::from_utf8(bytes).unwrap()
}

/// CPU time of process `pid` in seconds (utime + stime; clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the comm field: state is f[0]; utime is field 14 overall → f[11], stime f[12].
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Resident memory of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// The SFU child: WHIP/WHEP/STATS over stdin/stdout, hex-encoded SDP.
fn serve_sfu() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sfu = Sfu::new(SfuConfig { max_viewers_per_node: 100_000, max_pending_viewers: 100_000, ..SfuConfig::default() });
        let stdin = BufReader::new(std::io::stdin());
        let mut out = std::io::stdout();
        for line in stdin.lines() {
            let line = line.unwrap();
            let mut it = line.splitn(2, ' ');
            let reply = match (it.next(), it.next()) {
                (Some("WHIP"), Some(h)) => match sfu.whip("bench", "publisher", &unhex(h)).await {
                    Ok((id, a)) => format!("OK {} {}", id.0, hex(&a)),
                    Err(e) => format!("ERR {e}"),
                },
                (Some("WHEP"), Some(h)) => match sfu.whep("bench", &unhex(h)).await {
                    Ok((id, a)) => format!("OK {} {}", id.0, hex(&a)),
                    Err(e) => format!("ERR {e}"),
                },
                (Some("STATS"), _) => {
                    let (s, io) = (sfu.stats(), sfu.io_stats());
                    format!("STATS {} {} {} {} {} {}", s.forwarded_packets, s.ingested_packets, s.lagged_packets, s.peer_connections, io.sends, io.datagrams_sent)
                }
                _ => "ERR unknown".into(),
            };
            writeln!(out, "{reply}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// The floor child: one UDP socket; every datagram it receives goes to every registered
/// receiver, one `send_to` each. Commands: `DEST <addr>`, `STATS`.
fn serve_plain() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dests: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    {
        let (sock, dests, sent) = (sock.try_clone().unwrap(), Arc::clone(&dests), Arc::clone(&sent));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut local: Vec<SocketAddr> = Vec::new();
            loop {
                let Ok((n, _)) = sock.recv_from(&mut buf) else { return };
                if let Ok(d) = dests.try_lock()
                    && d.len() != local.len()
                {
                    local.clone_from(&d);
                }
                for to in &local {
                    if sock.send_to(&buf[..n], to).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut out = std::io::stdout();
    writeln!(out, "ADDR {}", sock.local_addr().unwrap()).unwrap();
    out.flush().unwrap();
    for line in BufReader::new(std::io::stdin()).lines() {
        let line = line.unwrap();
        let reply = match line.split_once(' ') {
            Some(("DEST", a)) => {
                dests.lock().unwrap().push(a.parse().unwrap());
                "OK".to_owned()
            }
            _ if line == "STATS" => format!("STATS {}", sent.load(Ordering::Relaxed)),
            _ => "ERR unknown".into(),
        };
        writeln!(out, "{reply}").unwrap();
        out.flush().unwrap();
    }
}

/// A child process and its line protocol.
struct Remote {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl Remote {
    fn spawn(what: &str) -> Arc<Remote> {
        let mut child = Command::new(std::env::current_exe().unwrap()).args(["--serve", what]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let io = (child.stdin.take().unwrap(), BufReader::new(child.stdout.take().unwrap()));
        Arc::new(Remote { child, io: Mutex::new(io) })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn read_line(&self) -> String {
        let mut io = self.io.lock().unwrap();
        let mut reply = String::new();
        io.1.read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }

    fn call(&self, line: &str) -> String {
        let mut io = self.io.lock().unwrap();
        writeln!(io.0, "{line}").unwrap();
        io.0.flush().unwrap();
        let mut reply = String::new();
        io.1.read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }

    fn offer(&self, verb: &str, sdp: &str) -> Result<(SessionId, String), String> {
        let r = self.call(&format!("{verb} {}", hex(sdp)));
        let mut it = r.splitn(3, ' ');
        if it.next() != Some("OK") {
            return Err(r);
        }
        let id = SessionId(it.next().unwrap().parse().unwrap());
        Ok((id, unhex(it.next().unwrap())))
    }

    fn numbers(&self, line: &str) -> Vec<u64> {
        self.call(line).split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// One light WHEP viewer of the SFU child.
async fn sfu_viewer(remote: &Arc<Remote>, received: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> Result<(), String> {
    let (viewer, offer) = light::SrtpViewer::new();
    let r = Arc::clone(remote);
    let (_id, answer) = blocking(move || r.offer("WHEP", &offer)).await?;
    let connected = Arc::new(AtomicBool::new(false));
    tokio::spawn(viewer.run(answer, received, Arc::clone(&connected), stop));
    let t = Instant::now();
    while !connected.load(Ordering::SeqCst) {
        if t.elapsed() > Duration::from_secs(20) {
            return Err("not connected within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The publisher's packet pattern as plain RTP over UDP (no SRTP): 30 fps × 5 × 1200 B of
/// payload and 50 pps of audio, for `dur`. Returns the number of packets sent.
async fn plain_publisher(to: SocketAddr, dur: Duration) -> u64 {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let video = vec![0xabu8; 1212];
    let audio = vec![0xfcu8; 23];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let frame = Duration::from_micros(1_000_000 / 30);
    let mut next_frame = start;
    let mut sent = 0;
    while start.elapsed() < dur {
        tick.tick().await;
        let now = Instant::now();
        if sock.send_to(&audio, to).await.is_ok() {
            sent += 1;
        }
        while next_frame <= now {
            for _ in 0..5 {
                if sock.send_to(&video, to).await.is_ok() {
                    sent += 1;
                }
            }
            next_frame += frame;
        }
    }
    sent
}

struct Row {
    n: usize,
    sfu_rate: f64,
    sfu_cores: f64,
    sfu_per_cpu: f64,
    ingest_loss: f64,
    sfu_loss: f64,
    worst_viewer_loss: f64,
    per_send: f64,
    rss_per_viewer_kib: f64,
    floor_per_cpu: f64,
    floor_loss: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        return match args.get(i + 1).map(String::as_str) {
            Some("plain") => serve_plain(),
            _ => serve_sfu(),
        };
    }
    let steps: Vec<usize> = args.get(1).map_or(vec![25, 100, 200, 400], |s| s.split(',').map(|x| x.parse().unwrap()).collect());
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    println!("load average at start: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let sfu = Remote::spawn("sfu");
    let plain = Remote::spawn("plain");
    let plain_addr: SocketAddr = plain.read_line().strip_prefix("ADDR ").unwrap().parse().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows = rt.block_on(async move {
        let r = Arc::clone(&sfu);
        let answerer: Box<Answerer> = Box::new(move |offer: String| {
            let r = Arc::clone(&r);
            Box::pin(async move { blocking(move || r.offer("WHIP", &offer)).await.expect("whip") })
        });
        let publisher = Publisher::start_via(Signal::Remote(&*answerer), 30, 5, 1200).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss0 = rss_kib(sfu.pid());
        let stop = Arc::new(AtomicBool::new(false));
        let mut sfu_rx: Vec<Arc<AtomicU64>> = Vec::new();
        let mut plain_rx: Vec<Arc<AtomicU64>> = Vec::new();
        let mut rows = Vec::new();
        println!("| viewers | SFU fwd pkt/s | SFU CPU (cores) | SFU pkt per CPU-s | floor pkt per CPU-s | SFU/floor | loss publisher→SFU | SFU loss (worst viewer) | floor loss | datagrams per sendmsg | SFU RSS per viewer |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for n in steps {
            // Phase 1: the SFU with N viewers.
            let setup = Instant::now();
            while sfu_rx.len() < n {
                // Up to 32 viewers connect at once (ICE and DTLS take a few round trips each).
                let wave: Vec<_> = (0..(n - sfu_rx.len()).min(32))
                    .map(|_| {
                        let (sfu, stop, c) = (Arc::clone(&sfu), Arc::clone(&stop), Arc::new(AtomicU64::new(0)));
                        tokio::spawn(async move { sfu_viewer(&sfu, Arc::clone(&c), stop).await.map(|()| c) })
                    })
                    .collect();
                for w in wave {
                    match w.await.unwrap() {
                        Ok(c) => sfu_rx.push(c),
                        Err(e) => {
                            println!("viewer {} could not join: {e}; stopping", sfu_rx.len() + 1);
                            return rows;
                        }
                    }
                }
            }
            eprintln!("{n} viewers connected in {:?}", setup.elapsed());
            publisher.pause.store(false, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let s = Arc::clone(&sfu);
            let s0 = blocking(move || s.numbers("STATS")).await;
            let (c0, rx0): (f64, Vec<u64>) = (cpu_seconds(sfu.pid()), sfu_rx.iter().map(|c| c.load(Ordering::Relaxed)).collect());
            let sent0 = publisher.sent_video.load(Ordering::Relaxed) + publisher.sent_audio.load(Ordering::Relaxed);
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let s = Arc::clone(&sfu);
            let s1 = blocking(move || s.numbers("STATS")).await;
            let (c1, rx1): (f64, Vec<u64>) = (cpu_seconds(sfu.pid()), sfu_rx.iter().map(|c| c.load(Ordering::Relaxed)).collect());
            let sent = publisher.sent_video.load(Ordering::Relaxed) + publisher.sent_audio.load(Ordering::Relaxed) - sent0;
            let wall = t0.elapsed().as_secs_f64();
            let rss = rss_kib(sfu.pid());
            let fwd = (s1[0] - s0[0]) as f64;
            let cpu = c1 - c0;
            let got: Vec<u64> = rx1.iter().zip(&rx0).map(|(a, b)| a - b).collect();
            let loss_of = |g: u64| if sent > 0 { (1.0 - g as f64 / sent as f64).max(0.0) } else { 0.0 };
            let sfu_loss = loss_of(got.iter().sum::<u64>() / n as u64);
            let worst = got.iter().map(|g| loss_of(*g)).fold(0.0, f64::max);
            let ingest_loss = loss_of(s1[1] - s0[1]);
            let sends = (s1[4] - s0[4]).max(1) as f64;
            let per_send = (s1[5] - s0[5]) as f64 / sends;

            // Phase 2: the floor with N plain receivers.
            publisher.pause.store(true, Ordering::SeqCst);
            while plain_rx.len() < n {
                let (sock, state) = light::socket();
                let addr = sock.local_addr().unwrap();
                let c = Arc::new(AtomicU64::new(0));
                tokio::spawn(light::count_datagrams(sock, state, Arc::clone(&c), Arc::clone(&stop)));
                let p = Arc::clone(&plain);
                blocking(move || p.call(&format!("DEST {addr}"))).await;
                plain_rx.push(c);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let p = Arc::clone(&plain);
            let f0 = blocking(move || p.numbers("STATS")).await[0];
            let (pc0, prx0): (f64, u64) = (cpu_seconds(plain.pid()), plain_rx.iter().map(|c| c.load(Ordering::Relaxed)).sum());
            let psent = plain_publisher(plain_addr, Duration::from_secs(secs)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let p = Arc::clone(&plain);
            let f1 = blocking(move || p.numbers("STATS")).await[0];
            let (pc1, prx1): (f64, u64) = (cpu_seconds(plain.pid()), plain_rx.iter().map(|c| c.load(Ordering::Relaxed)).sum());
            let floor_per_cpu = if pc1 > pc0 { (f1 - f0) as f64 / (pc1 - pc0) } else { f64::NAN };
            let floor_loss = (1.0 - (prx1 - prx0) as f64 / (psent * n as u64) as f64).max(0.0);
            publisher.pause.store(false, Ordering::SeqCst);

            let row = Row {
                n,
                sfu_rate: fwd / wall,
                sfu_cores: cpu / wall,
                sfu_per_cpu: if cpu > 0.0 { fwd / cpu } else { f64::NAN },
                ingest_loss,
                sfu_loss,
                worst_viewer_loss: worst,
                per_send,
                rss_per_viewer_kib: rss.saturating_sub(rss0) as f64 / n as f64,
                floor_per_cpu,
                floor_loss,
            };
            println!(
                "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} % | {:.2} % ({:.2} %) | {:.2} % | {:.2} | {:.0} KiB |",
                row.n,
                row.sfu_rate,
                row.sfu_cores,
                row.sfu_per_cpu,
                row.floor_per_cpu,
                row.sfu_per_cpu / row.floor_per_cpu,
                row.ingest_loss * 100.0,
                row.sfu_loss * 100.0,
                row.worst_viewer_loss * 100.0,
                row.floor_loss * 100.0,
                row.per_send,
                row.rss_per_viewer_kib,
            );
            let saturated = row.sfu_loss > 0.05;
            rows.push(row);
            if saturated {
                println!("SFU loss above 5 %: stopping at {n} viewers");
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        publisher.stop().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        rows
    });
    match rows.iter().filter(|r| r.sfu_loss < 0.01).map(|r| r.n).max() {
        Some(n) => println!("largest N below 1 % loss: {n}"),
        None => println!("no step below 1 % loss"),
    }
}
