//! Forwarding bench: one publisher (~1.5 Mbit/s VP8-like video + 50 pps audio) and N
//! receive-only WHEP viewers. The SFU runs in a **child process** (this binary with `--serve`),
//! the bots in this one, so the SFU's CPU time (from `/proc/<pid>/stat`) is its own.
//!
//! ```text
//! cargo run --release -p shangliang-sfu --example forward_bench -- [N1,N2,...] [seconds]
//! ```
//!
//! For each N it prints forwarded packets per SFU CPU-second, the SFU's CPU use, and loss seen
//! by the viewers; it stops stepping once loss exceeds 2 %.
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use shangliang_sfu::{SessionId, Sfu, SfuConfig};
use webrtc::media_stream::track_remote::TrackRemoteEvent;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
    String::from_utf8(bytes).unwrap()
}

/// CPU time of this process in clock ticks (utime + stime).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the comm field: state is f[0]; utime is field 14 overall → f[11], stime f[12].
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sfu = Sfu::new(SfuConfig {
            max_viewers_per_node: 10_000,
            ..SfuConfig::default()
        });
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
                (Some("WHEP"), Some(h)) => {
                    let t = std::time::Instant::now();
                    let r = match sfu.whep("bench", &unhex(h)).await {
                        Ok((id, a)) => format!("OK {} {}", id.0, hex(&a)),
                        Err(e) => format!("ERR {e}"),
                    };
                    if t.elapsed() > Duration::from_millis(500) {
                        eprintln!("slow whep: {:?} ({})", t.elapsed(), &r[..r.len().min(40)]);
                    }
                    r
                }
                (Some("STATS"), _) => {
                    let s = sfu.stats();
                    format!("STATS {} {} {} {} {}", s.forwarded_packets, cpu_ticks(), s.lagged_packets, s.ingested_packets, s.peer_connections)
                }
                _ => "ERR unknown".into(),
            };
            writeln!(out, "{reply}").unwrap();
            out.flush().unwrap();
        }
    });
}

struct Remote {
    _child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl Remote {
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

    /// (forwarded, SFU CPU ticks, lagged, ingested)
    fn stats(&self) -> (u64, u64, u64, u64) {
        let r = self.call("STATS");
        let v: Vec<u64> = r.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
        (v[0], v[1], v[2], v[3])
    }
}

async fn viewer(remote: &Arc<Remote>, received: &Arc<AtomicU64>) -> Result<Bot, String> {
    let mut b = bot().await;
    b.recv_only(RtpCodecKind::Audio).await;
    b.recv_only(RtpCodecKind::Video).await;
    let offer = b.offer().await;
    let r = Arc::clone(remote);
    let (_id, answer) = tokio::task::spawn_blocking(move || r.offer("WHEP", &offer)).await.unwrap()?;
    b.accept_answer(answer).await;
    b.wait_connected().await;
    let mut tracks = std::mem::replace(&mut b.tracks, tokio::sync::mpsc::unbounded_channel().1);
    let received = Arc::clone(received);
    tokio::spawn(async move {
        while let Some(t) = tracks.recv().await {
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                while let Some(ev) = t.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(_) = ev {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    Ok(b)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        return serve();
    }
    let steps: Vec<usize> = args.get(1).map_or(vec![10, 25, 50, 100, 200], |s| s.split(',').map(|x| x.parse().unwrap()).collect());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut child = Command::new(std::env::current_exe().unwrap()).arg("--serve").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let io = (child.stdin.take().unwrap(), BufReader::new(child.stdout.take().unwrap()));
    let remote = Arc::new(Remote { _child: child, io: Mutex::new(io) });

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let r = Arc::clone(&remote);
        let answerer: Box<Answerer> = Box::new(move |offer: String| {
            let r = Arc::clone(&r);
            Box::pin(async move { tokio::task::spawn_blocking(move || r.offer("WHIP", &offer)).await.unwrap().expect("whip") })
        });
        // 30 fps × 5 packets × 1200 bytes ≈ 1.44 Mbit/s of video, plus 50 pps audio.
        let publisher = Publisher::start_via(Signal::Remote(&*answerer), 30, 5, 1200).await;
        let received = Arc::new(AtomicU64::new(0));
        let mut viewers = Vec::new();
        println!("| viewers | forwarded pkt/s | SFU CPU (cores) | forwarded pkt per SFU CPU-second | loss publisher→SFU | loss at viewers | SFU fan-out lagged |");
        println!("|---|---|---|---|---|---|---|");
        'steps: for n in steps {
            let setup = Instant::now();
            while viewers.len() < n {
                match viewer(&remote, &received).await {
                    Ok(v) => viewers.push(v),
                    Err(e) => {
                        println!("viewer {} could not join: {e}; stopping", viewers.len() + 1);
                        break 'steps;
                    }
                }
            }
            eprintln!("{n} viewers connected in {:?}", setup.elapsed());
            tokio::time::sleep(Duration::from_secs(2)).await;
            let r = Arc::clone(&remote);
            let (f0, c0, l0, i0) = tokio::task::spawn_blocking(move || r.stats()).await.unwrap();
            let rx0 = received.load(Ordering::Relaxed);
            let sent0 = publisher.sent_video.load(Ordering::Relaxed) + publisher.sent_audio.load(Ordering::Relaxed);
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let r = Arc::clone(&remote);
            let (f1, c1, l1, i1) = tokio::task::spawn_blocking(move || r.stats()).await.unwrap();
            let wall = t0.elapsed().as_secs_f64();
            let rx = received.load(Ordering::Relaxed) - rx0;
            let sent = publisher.sent_video.load(Ordering::Relaxed) + publisher.sent_audio.load(Ordering::Relaxed) - sent0;
            let cpu = (c1 - c0) as f64 / 100.0;
            let fwd = (f1 - f0) as f64;
            let expected = (sent * n as u64) as f64;
            let ingest_loss = if sent > 0 { (1.0 - (i1 - i0) as f64 / sent as f64).max(0.0) } else { 0.0 };
            let loss = if expected > 0.0 { (1.0 - rx as f64 / expected).max(0.0) } else { 0.0 };
            println!(
                "| {n} | {:.0} | {:.2} | {:.0} | {:.2} % | {:.2} % | {} |",
                fwd / wall,
                cpu / wall,
                if cpu > 0.0 { fwd / cpu } else { f64::NAN },
                ingest_loss * 100.0,
                loss * 100.0,
                l1 - l0
            );
            if loss > 0.02 {
                println!("loss above 2 %: stopping at {n} viewers");
                break;
            }
        }
        publisher.stop().await;
        for v in viewers {
            let _ = v.pc.close().await;
        }
    });
}
