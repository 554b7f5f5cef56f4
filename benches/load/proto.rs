//! What every role shares: clock, comment stamps, the zero-copy batch decoder (checked against
//! `decode_server` at start-up), websocket connect with a bound source address, histogram
//! (de)serialisation, and /proc readings of a server process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::Deserialize;
use shangliang_signaling::{
    ActivityId, Author, Epoch, Form, Item, ItemBody, Role, Seq, ServerMsg, decode_server,
    encode_batch, encode_item,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Microseconds since the Unix epoch (all processes are on one machine: clocks agree).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The text of a posted comment: its send time and a running number.
pub fn stamp_text(sent_us: u64, n: u64) -> String {
    format!("t={sent_us} #{n}")
}

/// The send time stamped into a comment's text, if it is one of ours.
pub fn parse_stamp(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("t=")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant figures.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// V2-serialised, base64.
pub fn hist_to_b64(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("serialise histogram");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Inverse of [`hist_to_b64`].
pub fn hist_from_b64(s: &str) -> Option<Histogram<u64>> {
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    Deserializer::new().deserialize(&mut &raw[..]).ok()
}

/// p50/p90/p99/p99.9/max of a µs histogram, in milliseconds.
pub fn hist_summary_ms(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if h.is_empty() {
        return serde_json::json!({"count": 0, "p50": null, "p90": null, "p99": null, "p999": null, "max": null});
    }
    serde_json::json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": ms(h.mean() as u64),
    })
}

// ---------------------------------------------------------------------------------------
// Zero-copy batch decoding. A viewer process decodes hundreds of thousands of frames a
// second on one core; `decode_server` allocates every author and text. This borrows them
// and skips the author. `self_check` proves it agrees with `decode_server` on frames built
// by the protocol crate's own `encode_batch`, and `--full-decode` switches it off.

#[derive(Deserialize)]
struct FastFrame<'a> {
    #[serde(borrow)]
    t: &'a str,
    #[serde(default)]
    from: u64,
    #[serde(default)]
    to: u64,
    #[serde(default)]
    thinned: u32,
    #[serde(default, borrow)]
    items: Vec<FastItem<'a>>,
}

#[derive(Deserialize)]
struct FastItem<'a> {
    seq: u64,
    #[serde(borrow)]
    body: FastBody<'a>,
}

#[derive(Deserialize)]
struct FastBody<'a> {
    #[serde(borrow)]
    k: &'a str,
    #[serde(default, borrow)]
    text: Option<&'a str>,
}

/// What a viewer needs from a `batch` frame.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct BatchView {
    /// First sequence number covered.
    pub from: u64,
    /// Last sequence number covered.
    pub to: u64,
    /// Items thinned out of the range.
    pub thinned: u32,
    /// (seq, send stamp in µs) of every comment of ours in the frame.
    pub stamped: Vec<(u64, u64)>,
}

/// A decoded server frame, as far as the harness cares.
pub enum Frame {
    /// A `batch`.
    Batch(BatchView),
    /// Anything else, fully decoded.
    Other(#[allow(dead_code)] Box<ServerMsg>),
}

/// Decodes a server frame (MessagePack), taking the fast path for batches unless `full`.
pub fn decode_frame(bytes: &[u8], full: bool, out: &mut Vec<(u64, u64)>) -> Option<Frame> {
    out.clear();
    if !full
        && let Ok(f) = rmp_serde::from_slice::<FastFrame<'_>>(bytes)
        && f.t == "batch"
    {
        for it in &f.items {
            if it.body.k == "comment"
                && let Some(stamp) = it.body.text.and_then(parse_stamp)
            {
                out.push((it.seq, stamp));
            }
        }
        return Some(Frame::Batch(BatchView {
            from: f.from,
            to: f.to,
            thinned: f.thinned,
            stamped: std::mem::take(out),
        }));
    }
    match decode_server(Form::MsgPack, bytes).ok()? {
        ServerMsg::Batch {
            from,
            to,
            thinned,
            items,
            ..
        } => {
            for it in items {
                if let ItemBody::Comment { text, .. } = &it.body
                    && let Some(stamp) = parse_stamp(text)
                {
                    out.push((it.seq.0, stamp));
                }
            }
            Some(Frame::Batch(BatchView {
                from: from.0,
                to: to.0,
                thinned,
                stamped: std::mem::take(out),
            }))
        }
        other => Some(Frame::Other(Box::new(other))),
    }
}

/// Proves the fast path and `decode_server` agree on frames made by `encode_batch`.
pub fn self_check() {
    let topic = ActivityId::new("demo").expect("topic");
    let items: Vec<Item> = (5..=8)
        .map(|seq| Item {
            seq: Seq(seq),
            ts: 1_700_000_000_000 + seq,
            body: if seq == 7 {
                ItemBody::Hide { target: Seq(5) }
            } else if seq == 8 {
                ItemBody::Comment {
                    author: author("x"),
                    text: "not stamped \u{4f60}\u{597d}".into(),
                    approves: None,
                }
            } else {
                ItemBody::Comment {
                    author: author("\u{5f20}\u{4e09}"),
                    text: stamp_text(1_764_000_000_000_000 + seq, seq),
                    approves: None,
                }
            },
        })
        .collect();
    let enc: Vec<Bytes> = items
        .iter()
        .map(|i| encode_item(Form::MsgPack, i))
        .collect();
    let frame = encode_batch(
        Form::MsgPack,
        &topic,
        Epoch(3),
        Seq(5),
        Seq(9),
        1,
        enc.iter().map(|b| b.as_ref()),
    );
    let mut scratch = Vec::new();
    let fast = match decode_frame(&frame, false, &mut scratch) {
        Some(Frame::Batch(b)) => b,
        _ => panic!("self-check: fast decoder did not see a batch"),
    };
    let full = match decode_frame(&frame, true, &mut scratch) {
        Some(Frame::Batch(b)) => b,
        _ => panic!("self-check: decode_server did not see a batch"),
    };
    assert_eq!(
        fast, full,
        "self-check: fast decoder disagrees with decode_server"
    );
    assert_eq!(
        fast.stamped,
        vec![(5, 1_764_000_000_000_005), (6, 1_764_000_000_000_006)]
    );
    assert_eq!((fast.from, fast.to, fast.thinned), (5, 9, 1));
}

/// An author for harness-made items.
pub fn author(name: &str) -> Author {
    Author {
        id: format!("load-{name}").into(),
        name: name.into(),
        role: Role::Member,
        verified: false,
    }
}

// ---------------------------------------------------------------------------------------
// Connecting.

/// Small buffers: tungstenite's defaults are 128 KiB each per connection.
pub fn ws_config(buf: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(buf)
        .write_buffer_size(buf)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// host:port of a ws:// URL on this machine (IP literal or `localhost`).
pub fn url_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .map_err(|e| format!("{url}: {e} (use an IP literal)"))
}

/// Opens a websocket from `src` (port chosen by the kernel) to `url`.
pub async fn connect_ws(
    url: &str,
    addr: SocketAddr,
    src: Option<Ipv4Addr>,
    rcvbuf: usize,
    cfg: WebSocketConfig,
) -> Result<WebSocketStream<TcpStream>, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if rcvbuf > 0 {
        // Before connect, so the window offered in the SYN already fits it.
        sock.set_recv_buffer_size(rcvbuf as u32)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = sock
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(cfg))
        .await
        .map_err(|e| format!("ws handshake: {e}"))?;
    Ok(ws)
}

// ---------------------------------------------------------------------------------------
// /proc readings.

/// Clock ticks per second for /proc/<pid>/stat.
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process so far.
pub fn proc_cpu_s(pid: u32, tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: field 3 (state) is index 0, so utime (14) and stime (15) are 11, 12.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / tck)
}

/// Resident set size of a process in MiB.
pub fn proc_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Rounds for JSON.
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Sleeps for a fraction-of-second duration.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
