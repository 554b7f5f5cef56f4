//! The `players` role: one load process holding `--players` simulated LL-HLS players, all
//! from one source address, each with its own keep-alive connection. A player behaves as hls.js
//! does at the live edge:
//!
//! ```text
//! GET index.m3u8                                  the live playlist; the init segment (EXT-X-MAP)
//! GET the newest part                             start at the live edge
//! loop {
//!     GET index.m3u8?_HLS_msn=M&_HLS_part=P       blocking reload for the preload-hinted part
//!     GET every part listed after the last one it has (a new EXT-X-MAP first: a switch);
//!         fell out of the part window? the whole segments after it first
//! }
//! ```
//!
//! In `--notified` mode (the static-file floor: nginx serving a mirrored copy cannot hold a
//! request until a part exists) the blocking reload is replaced by waiting for the parent's
//! "a new playlist is on disk" line on stdin, then a plain `GET index.m3u8`: the same requests
//! for the same bytes, at the moment a blocking reload would have been answered.
//!
//! Only requests that end inside `[--window-start-us, --window-end-us]` are counted. At the end
//! the process prints one JSON line (counters, latency histograms as base64 HdrHistogram V2).

use std::io::BufRead as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::watch;

use super::http::Conn;
use super::playlist::{self, Pos};
use super::{Args, hist_to_b64, new_hist, now_us};

/// What a process's players did inside the window.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
    playlists: AtomicU64,
    parts: AtomicU64,
    segments: AtomicU64,
    inits: AtomicU64,
    /// Answers other than 200.
    refused: AtomicU64,
    /// Connection errors and timeouts.
    failed: AtomicU64,
    connects: AtomicU64,
    /// Players that had played a part when the window opened.
    playing_at_start: AtomicU64,
}

struct Shared {
    base: String,
    addr: SocketAddr,
    src: Option<IpAddr>,
    window: (u64, u64),
    counters: Counters,
    /// Part first-frame date-time → arrival of the part's last byte, µs.
    latency: Mutex<Histogram<u64>>,
    /// Part end (date-time + duration) → arrival, µs: what serving adds.
    delivery: Mutex<Histogram<u64>>,
    notify: Option<watch::Receiver<u64>>,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn in_window(&self, t: u64) -> bool {
        t >= self.window.0 && t <= self.window.1
    }

    fn count(&self, kind: &AtomicU64, bytes: usize) {
        if self.in_window(now_us()) {
            kind.fetch_add(1, Ordering::Relaxed);
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    fn error(&self, counter: &AtomicU64, msg: String) {
        if self.in_window(now_us()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut e = self.errors.lock().expect("errors");
        if e.len() < 5 {
            e.push(msg);
        }
    }
}

const REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// Runs the role; prints the JSON line; exits.
pub fn run(args: Args) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let report = rt.block_on(play(args));
    println!("{report}");
    // Players stuck in a request past the window are not waited for.
    std::process::exit(0);
}

fn parse_base(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url.strip_prefix("http://").ok_or("--url must be http://HOST:PORT/path")?;
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: SocketAddr = hostport.parse().map_err(|e| format!("{hostport}: {e}"))?;
    Ok((addr, format!("/{}", path.trim_end_matches('/'))))
}

async fn play(args: Args) -> serde_json::Value {
    let (addr, base) = match parse_base(&args.url) {
        Ok(v) => v,
        Err(e) => return json!({ "ev": "fatal", "error": e }),
    };
    let notify = args.notified.then(|| {
        let (tx, rx) = watch::channel(0u64);
        // The parent writes one line per new playlist on disk.
        std::thread::spawn(move || {
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                if line.is_err() {
                    break;
                }
                tx.send_replace(n as u64 + 1);
            }
        });
        rx
    });
    let shared = Arc::new(Shared {
        base,
        addr,
        src: args.src_ip.map(IpAddr::V4),
        window: (args.window_start_us, args.window_end_us),
        counters: Counters::default(),
        latency: Mutex::new(new_hist()),
        delivery: Mutex::new(new_hist()),
        notify,
        errors: Mutex::new(Vec::new()),
    });
    let n = args.count;
    let (start, ramp_us) = (args.start_us, (args.ramp * 1e6) as u64);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + ramp_us * i as u64 / n.max(1) as u64;
        let s = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(at.saturating_sub(now_us()))).await;
            player(&s).await;
        }));
    }
    let end = args.window_end_us;
    // Wait for the players to stop (each stops at the window's end, after its request in flight).
    let wait = Duration::from_micros(end.saturating_sub(now_us())) + REQUEST_LIMIT + Duration::from_secs(2);
    let _ = tokio::time::timeout(wait, futures_util::future::join_all(tasks)).await;
    let c = &shared.counters;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    json!({
        "ev": "final",
        "players": n,
        "playing_at_start": g(&c.playing_at_start),
        "requests": g(&c.requests),
        "bytes": g(&c.bytes),
        "playlists": g(&c.playlists),
        "parts": g(&c.parts),
        "segments": g(&c.segments),
        "inits": g(&c.inits),
        "refused": g(&c.refused),
        "failed": g(&c.failed),
        "connects": g(&c.connects),
        "latency": hist_to_b64(&shared.latency.lock().expect("hist")),
        "delivery": hist_to_b64(&shared.delivery.lock().expect("hist")),
        "errors": *shared.errors.lock().expect("errors"),
    })
}

/// One player until the window ends.
async fn player(s: &Shared) {
    let mut conn = Conn::new(s.src, s.addr);
    let mut pos: Option<Pos> = None;
    let mut hint: Option<Pos> = None;
    let mut map = String::new();
    let mut notify = s.notify.clone();
    let mut counted_start = false;
    let c = &s.counters;
    while now_us() < s.window.1 {
        if !counted_start && now_us() >= s.window.0 {
            counted_start = true;
            if pos.is_some() {
                c.playing_at_start.fetch_add(1, Ordering::Relaxed);
            }
        }
        let path = match (&mut notify, hint) {
            (Some(rx), _) if pos.is_some() => {
                let left = Duration::from_micros(s.window.1.saturating_sub(now_us()));
                if !matches!(tokio::time::timeout(left, rx.changed()).await, Ok(Ok(()))) {
                    break;
                }
                format!("{}/index.m3u8", s.base)
            }
            (None, Some((m, p))) => format!("{}/index.m3u8?_HLS_msn={m}&_HLS_part={p}", s.base),
            _ => format!("{}/index.m3u8", s.base),
        };
        let text = match conn.get(&path, REQUEST_LIMIT).await {
            Ok((200, body)) => {
                s.count(&c.playlists, body.len());
                body
            }
            Ok((status, body)) => {
                s.error(&c.refused, format!("{status} {path}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
                hint = None;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Err(e) => {
                s.error(&c.failed, e);
                hint = None;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let pl = playlist::parse(&String::from_utf8_lossy(&text));
        hint = pl.hint;
        if pl.ended {
            break;
        }
        // At the start: the live edge (the newest part); then everything after the last one.
        let todo: Vec<playlist::Media> = match pos {
            None => pl.newest_part().cloned().into_iter().collect(),
            Some(at) => pl.after(at).into_iter().cloned().collect(),
        };
        for m in todo {
            if m.map != map && !m.map.is_empty() {
                match conn.get(&format!("{}/{}", s.base, m.map), REQUEST_LIMIT).await {
                    Ok((200, b)) => {
                        s.count(&c.inits, b.len());
                        map = m.map.clone();
                    }
                    Ok((status, _)) => s.error(&c.refused, format!("{status} {}", m.map)),
                    Err(e) => s.error(&c.failed, e),
                }
            }
            match conn.get(&format!("{}/{}", s.base, m.uri), REQUEST_LIMIT).await {
                Ok((200, b)) => {
                    let t = now_us();
                    if m.pos.1 == playlist::WHOLE {
                        s.count(&c.segments, b.len());
                    } else {
                        s.count(&c.parts, b.len());
                        if s.in_window(t) && m.pdt_us > 0 {
                            let _ = s.latency.lock().expect("hist").record(t.saturating_sub(m.pdt_us).max(1));
                            let _ = s.delivery.lock().expect("hist").record(t.saturating_sub(m.pdt_us + m.dur_us).max(1));
                        }
                    }
                    pos = Some(m.pos);
                }
                Ok((status, _)) => {
                    s.error(&c.refused, format!("{status} {}", m.uri));
                    break;
                }
                Err(e) => {
                    s.error(&c.failed, e);
                    break;
                }
            }
        }
        if pos.is_none() {
            // Nothing to play yet (no part listed): do not spin.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    c.connects.fetch_add(conn.connects, Ordering::Relaxed);
}
