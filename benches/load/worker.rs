//! A viewer worker process: connects its share of viewers from its own source address on a
//! current-thread runtime, records latency and gaps, reports JSON lines on stdout and
//! takes `stop` on stdin.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use shangliang_signaling::{ActivityId, ClientMsg, Form, ServerMsg, encode_client};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Args;
use crate::proto::{self, Frame};

#[derive(Default)]
struct Stats {
    connected: u64,
    failed: u64,
    dropped: u64,
    retries: u64,
    /// Deliveries counted (each comment once per viewer), all viewers.
    recv: u64,
    /// Of `recv`, those counted by viewers that later dropped.
    recv_dropped: u64,
    gaps: u64,
    gap_seqs: u64,
    thinned: u64,
    frames: u64,
    first_error: Option<String>,
    close_reasons: std::collections::BTreeMap<String, u64>,
}

struct Shared {
    stats: RefCell<Stats>,
    hist: RefCell<Histogram<u64>>,
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Entry point of `--role worker`.
pub fn run(args: Args) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, main(args));
    // Exit without tearing down thousands of connections one by one.
    std::process::exit(0);
}

async fn main(args: Args) {
    let deadline = Instant::now() + proto::secs(args.deadline);
    let shared = Rc::new(Shared {
        stats: RefCell::default(),
        hist: RefCell::new(proto::new_hist()),
    });
    let addr = match proto::url_addr(&args.url) {
        Ok(a) => a,
        Err(e) => {
            emit(serde_json::json!({"ev": "fatal", "error": e}));
            return;
        }
    };
    let topic = ActivityId::new(&args.topic).expect("topic id");
    let token = args.token.clone().unwrap_or_default();
    let n = args.viewers;
    let sem = Rc::new(Semaphore::new(args.ramp.max(1)));
    let ramp_start = Instant::now();
    for i in 0..n {
        let v = Viewer {
            idx: i,
            url: args.url.clone(),
            addr,
            src: args.src_ip,
            token: token.clone(),
            topic: topic.clone(),
            buf: args.buf,
            rcvbuf: args.rcvbuf,
            full: args.full_decode,
        };
        tokio::task::spawn_local(v.run(shared.clone(), sem.clone()));
    }
    // Stop on `stop`, or when the parent goes away (EOF), or at the deadline.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::task::spawn_local(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "stop" {
                break;
            }
        }
        let _ = stop_tx.send(true);
    });
    let mut ramp_reported = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop_rx.changed() => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
        let s = shared.stats.borrow();
        if !ramp_reported && s.connected + s.failed >= n as u64 {
            ramp_reported = true;
            emit(serde_json::json!({
                "ev": "connected", "connected": s.connected, "failed": s.failed,
                "retries": s.retries, "ramp_s": ramp_start.elapsed().as_secs_f64(),
                "first_error": s.first_error,
            }));
        }
        emit(serde_json::json!({
            "ev": "progress", "connected": s.connected, "failed": s.failed,
            "dropped": s.dropped, "recv": s.recv, "recv_alive": s.recv - s.recv_dropped,
        }));
    }
    let s = shared.stats.borrow();
    let h = shared.hist.borrow();
    let tck = proto::clk_tck();
    emit(serde_json::json!({
        "ev": "final",
        "connected": s.connected, "failed": s.failed, "dropped": s.dropped, "retries": s.retries,
        "recv": s.recv, "recv_dropped": s.recv_dropped, "gaps": s.gaps, "gap_seqs": s.gap_seqs,
        "thinned": s.thinned, "frames": s.frames, "first_error": s.first_error,
        "close_reasons": s.close_reasons,
        "cpu_s": proto::proc_cpu_s(std::process::id(), tck),
        "rss_mb": proto::proc_rss_mb(std::process::id()),
        "hist": proto::hist_to_b64(&h),
    }));
}

struct Viewer {
    idx: usize,
    url: String,
    addr: SocketAddr,
    src: Option<Ipv4Addr>,
    token: String,
    topic: ActivityId,
    buf: usize,
    rcvbuf: usize,
    full: bool,
}

type Ws = WebSocketStream<TcpStream>;

const ATTEMPTS: u32 = 4;

impl Viewer {
    async fn run(self, shared: Rc<Shared>, sem: Rc<Semaphore>) {
        let mut joined = None;
        {
            let _permit = sem.acquire().await.expect("semaphore");
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    shared.stats.borrow_mut().retries += 1;
                    let jitter = (self.idx as u64 * 7919) % 250;
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt) + jitter))
                        .await;
                }
                match tokio::time::timeout(Duration::from_secs(15), self.join()).await {
                    Ok(Ok(j)) => {
                        joined = Some(j);
                        break;
                    }
                    Ok(Err(e)) => {
                        let mut s = shared.stats.borrow_mut();
                        s.first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        let mut s = shared.stats.borrow_mut();
                        s.first_error
                            .get_or_insert_with(|| "join timed out after 15 s".into());
                    }
                }
            }
        }
        let Some((ws, offset, ping_every)) = joined else {
            shared.stats.borrow_mut().failed += 1;
            return;
        };
        shared.stats.borrow_mut().connected += 1;
        self.watch(ws, offset, ping_every, &shared).await;
    }

    /// Connect, `auth` → `welcome`, `sub` → `subscribed`. Returns the offset and ping period.
    async fn join(&self) -> Result<(Ws, u64, Option<Duration>), String> {
        let mut ws =
            proto::connect_ws(&self.url, self.addr, self.src, self.rcvbuf, proto::ws_config(self.buf))
                .await?;
        let auth = ClientMsg::Auth {
            v: shangliang_signaling::PROTOCOL_VERSION,
            token: self.token.clone(),
        };
        ws.send(Message::Binary(encode_client(Form::MsgPack, &auth)))
            .await
            .map_err(|e| format!("send auth: {e}"))?;
        let idle = match next_msg(&mut ws).await? {
            ServerMsg::Welcome { limits, .. } => limits.idle_timeout_ms,
            other => return Err(format!("expected welcome, got {other:?}")),
        };
        let sub = ClientMsg::Sub {
            topic: self.topic.clone(),
            resume: None,
            last: None,
        };
        ws.send(Message::Binary(encode_client(Form::MsgPack, &sub)))
            .await
            .map_err(|e| format!("send sub: {e}"))?;
        let offset = match next_msg(&mut ws).await? {
            ServerMsg::Subscribed { offset, .. } => offset.0,
            other => return Err(format!("expected subscribed, got {other:?}")),
        };
        // Ping at a third of the idle timeout so the hub never closes an idle viewer.
        let ping = (idle > 0)
            .then(|| Duration::from_millis(u64::from(idle) / 3).max(Duration::from_millis(500)));
        Ok((ws, offset, ping))
    }

    async fn watch(&self, mut ws: Ws, offset: u64, ping_every: Option<Duration>, shared: &Shared) {
        let mut last_to = offset;
        let mut max_seq = offset;
        let mut mine: u64 = 0;
        let mut scratch = Vec::new();
        let mut ping_id: u32 = 0;
        // Spread the pings of thousands of viewers over the period.
        let far = Duration::from_secs(86_400);
        let period = ping_every.unwrap_or(far);
        let phase = period.mul_f64((self.idx % 997) as f64 / 997.0);
        let ping_sleep = tokio::time::sleep(phase.max(Duration::from_millis(1)));
        tokio::pin!(ping_sleep);
        let reason: String = loop {
            tokio::select! {
                msg = ws.next() => {
                    let bytes = match msg {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Text(t))) => break format!("text frame: {}", &t.as_str()[..t.len().min(80)]),
                        Some(Ok(Message::Close(c))) => break format!("close {}", c.map(|c| c.code.to_string()).unwrap_or_default()),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => break format!("error: {e}"),
                        None => break "eof".into(),
                    };
                    let now = proto::now_us();
                    let Some(frame) = proto::decode_frame(&bytes, self.full, &mut scratch) else { continue };
                    let Frame::Batch(b) = frame else { continue };
                    let mut s = shared.stats.borrow_mut();
                    s.frames += 1;
                    if b.from != last_to + 1 {
                        s.gaps += 1;
                        s.gap_seqs += b.from.saturating_sub(last_to + 1);
                    }
                    last_to = last_to.max(b.to);
                    s.thinned += u64::from(b.thinned);
                    let mut h = shared.hist.borrow_mut();
                    for &(seq, stamp) in &b.stamped {
                        if seq > max_seq {
                            max_seq = seq;
                            mine += 1;
                            s.recv += 1;
                            h.saturating_record(now.saturating_sub(stamp).max(1));
                        }
                    }
                    scratch = b.stamped;
                }
                _ = &mut ping_sleep => {
                    ping_id = ping_id.wrapping_add(1);
                    let ping = encode_client(Form::MsgPack, &ClientMsg::Ping { id: ping_id });
                    if let Err(e) = ws.send(Message::Binary(ping)).await {
                        break format!("send ping: {e}");
                    }
                    ping_sleep.as_mut().reset(Instant::now() + period);
                }
            }
        };
        let mut s = shared.stats.borrow_mut();
        s.dropped += 1;
        s.recv_dropped += mine;
        let key: String = reason.chars().take(60).collect();
        *s.close_reasons.entry(key).or_default() += 1;
    }
}

/// The next protocol message (skipping pings/pongs at the websocket level).
async fn next_msg(ws: &mut Ws) -> Result<ServerMsg, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                return shangliang_signaling::decode_server(Form::MsgPack, &b)
                    .map_err(|e| format!("decode: {e}"));
            }
            Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
            Some(Ok(Message::Text(t))) => return Err(format!("text frame: {t}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("eof".into()),
        }
    }
}
