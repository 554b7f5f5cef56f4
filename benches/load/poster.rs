//! Posting clients: each its own connection and member token, together at `--rate`
//! comments per second, each comment stamped with its send time in µs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use shangliang_signaling::{ActivityId, ClientMsg, Form, ServerMsg, decode_server, encode_client};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::proto;

/// What the posters did.
pub struct PostStats {
    pub posted: u64,
    pub acked: u64,
    pub held: u64,
    pub errors: BTreeMap<String, u64>,
    pub unanswered: u64,
    pub ack_hist: Histogram<u64>,
    pub first_error: Option<String>,
    /// (posted, acked, unanswered) of each poster.
    pub per_poster: Vec<(u64, u64, u64)>,
}

/// A joined posting connection.
pub struct Poster {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

/// Connects and authenticates one poster.
/// Poster `i` connects from 127.0.1.(i + 1), so per-address limits of the hub see each
/// poster as its own client.
pub async fn join(url: &str, addr: SocketAddr, token: &str, i: usize) -> Result<Poster, String> {
    let src = std::net::Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
    let mut ws = proto::connect_ws(url, addr, Some(src), 0, proto::ws_config(8192)).await?;
    let auth = ClientMsg::Auth {
        v: shangliang_signaling::PROTOCOL_VERSION,
        token: token.into(),
    };
    ws.send(Message::Binary(encode_client(Form::MsgPack, &auth)))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => match decode_server(Form::MsgPack, &b) {
                Ok(ServerMsg::Welcome { .. }) => return Ok(Poster { ws }),
                Ok(other) => return Err(format!("poster: expected welcome, got {other:?}")),
                Err(e) => return Err(format!("poster: {e}")),
            },
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("poster closed: {c:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("poster: {e}")),
            Ok(None) => return Err("poster: eof".into()),
            Err(_) => return Err("poster: no welcome in 10 s".into()),
        }
    }
}

/// Live counts the parent watches while draining.
#[derive(Default)]
pub struct Live {
    /// Posts sent.
    pub posted: AtomicU64,
    /// Posts answered (ack, held or error).
    pub answered: AtomicU64,
    /// Acks not held.
    pub acked: AtomicU64,
    /// Posters still running.
    pub running: AtomicU64,
}

/// Runs every poster from `start` to `end` at `rate` in total, then waits up to `drain`
/// for outstanding acks.
pub async fn run_all(
    posters: Vec<Poster>,
    topic: ActivityId,
    rate: f64,
    start: Instant,
    end: Instant,
    drain: Duration,
    live: Arc<Live>,
) -> PostStats {
    let k = posters.len().max(1);
    let period = Duration::from_secs_f64(k as f64 / rate.max(0.001));
    let counter = Arc::new(AtomicU64::new(0));
    live.running.store(posters.len() as u64, Ordering::Relaxed);
    let mut handles = Vec::new();
    for (i, p) in posters.into_iter().enumerate() {
        let first = start + Duration::from_secs_f64(i as f64 / rate.max(0.001));
        handles.push(tokio::spawn(one(
            p,
            topic.clone(),
            first,
            period,
            end,
            drain,
            counter.clone(),
            live.clone(),
        )));
    }
    let mut total = PostStats {
        posted: 0,
        acked: 0,
        held: 0,
        errors: BTreeMap::new(),
        unanswered: 0,
        ack_hist: proto::new_hist(),
        first_error: None,
        per_poster: Vec::new(),
    };
    for h in handles {
        let Ok(s) = h.await else { continue };
        total.posted += s.posted;
        total.acked += s.acked;
        total.held += s.held;
        total.unanswered += s.unanswered;
        for (k, v) in s.errors {
            *total.errors.entry(k).or_default() += v;
        }
        let _ = total.ack_hist.add(&s.ack_hist);
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
        total.per_poster.push((s.posted, s.acked, s.unanswered));
    }
    total
}

#[allow(clippy::too_many_arguments)]
async fn one(
    p: Poster,
    topic: ActivityId,
    first: Instant,
    period: Duration,
    end: Instant,
    drain: Duration,
    counter: Arc<AtomicU64>,
    live: Arc<Live>,
) -> PostStats {
    let (mut sink, mut stream) = p.ws.split();
    let mut st = PostStats {
        posted: 0,
        acked: 0,
        held: 0,
        errors: BTreeMap::new(),
        unanswered: 0,
        ack_hist: proto::new_hist(),
        first_error: None,
        per_poster: Vec::new(),
    };
    let mut sent_at: HashMap<u32, u64> = HashMap::new();
    let mut id: u32 = 0;
    // Ticks that fall behind fire at once (Burst): the schedule, not the server, sets the rate.
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let hard_end = end + drain;
    let mut sending = true;
    loop {
        if !sending && sent_at.is_empty() {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if sending => {
                if Instant::now() >= end {
                    sending = false;
                    continue;
                }
                id += 1;
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                let t = proto::now_us();
                let msg = ClientMsg::Post { id, topic: topic.clone(), text: proto::stamp_text(t, n) };
                if let Err(e) = sink.send(Message::Binary(encode_client(Form::MsgPack, &msg))).await {
                    st.first_error.get_or_insert(format!("poster send: {e}"));
                    break;
                }
                st.posted += 1;
                live.posted.fetch_add(1, Ordering::Relaxed);
                sent_at.insert(id, t);
            }
            msg = stream.next() => {
                let b = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(c))) => { st.first_error.get_or_insert(format!("poster closed: {c:?}")); break; }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => { st.first_error.get_or_insert(format!("poster read: {e}")); break; }
                    None => { st.first_error.get_or_insert("poster eof".into()); break; }
                };
                match decode_server(Form::MsgPack, &b) {
                    Ok(ServerMsg::Ack { id, held, .. }) => {
                        if let Some(t) = sent_at.remove(&id) {
                            st.ack_hist.saturating_record(proto::now_us().saturating_sub(t).max(1));
                        }
                        live.answered.fetch_add(1, Ordering::Relaxed);
                        if held {
                            st.held += 1
                        } else {
                            st.acked += 1;
                            live.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(ServerMsg::Error { id, code, message }) => {
                        if let Some(id) = id { sent_at.remove(&id); }
                        live.answered.fetch_add(1, Ordering::Relaxed);
                        *st.errors.entry(format!("{code:?}")).or_default() += 1;
                        st.first_error.get_or_insert(format!("{code:?}: {message}"));
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(hard_end) => break,
        }
    }
    st.unanswered = sent_at.len() as u64;
    live.running.fetch_sub(1, Ordering::Relaxed);
    let _ = sink.close().await;
    st
}
