//! The bare baseline: the leanest broadcast that speaks the protocol. One task per
//! connection, small buffers, `auth` → `welcome`, `sub` → `subscribed`, `post` → `ack` and
//! onto a pending list; every flush interval one pre-built `batch` frame (`encode_batch` over
//! items encoded once) is handed as the same `Bytes` to every connection, which writes and
//! flushes it. No persistence, no auth checks, no limits. Run as its own process so its CPU
//! and memory are measured like the hub's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use shangliang_signaling::{
    ActivityId, AnnouncedLimits, ClientMsg, Epoch, Form, Item, ItemBody, Seq, ServerMsg,
    decode_client, encode_batch, encode_item, encode_server,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Args;
use crate::proto;

const EPOCH: Epoch = Epoch(1);
/// Frames a connection may fall behind before it loses some (and sees a gap).
const LAG_FRAMES: usize = 512;

struct State {
    frames: u64,
    max_items: usize,
    max_frame_bytes: usize,
    next_seq: u64,
    flushed_to: u64,
    pending: Vec<Bytes>,
}

struct Hub {
    topic: ActivityId,
    state: Mutex<State>,
    tx: broadcast::Sender<Bytes>,
    welcome: Bytes,
}

/// Entry point of `--role baseline-server`.
pub fn run(args: Args) {
    // The same runtime shape the hub gets by default: one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(main(args));
}

async fn main(args: Args) {
    let listen = args.listen.clone().expect("--listen");
    let topic = ActivityId::new(&args.topic).expect("topic");
    let welcome = encode_server(
        Form::MsgPack,
        &ServerMsg::Welcome {
            v: shangliang_signaling::PROTOCOL_VERSION,
            you: proto::author("viewer"),
            activity: topic.clone(),
            limits: AnnouncedLimits {
                max_frame_bytes: shangliang_signaling::limits::MAX_CLIENT_FRAME_BYTES as u32,
                max_text_chars: shangliang_signaling::limits::MAX_TEXT_CHARS as u32,
                comments_per_minute: 1_000_000,
                idle_timeout_ms: 60_000,
                frames_per_second: 1_000_000,
            },
        },
    );
    let (tx, _) = broadcast::channel(LAG_FRAMES);
    let hub = Arc::new(Hub {
        topic,
        state: Mutex::new(State {
            frames: 0,
            max_items: 0,
            max_frame_bytes: 0,
            next_seq: 1,
            flushed_to: 0,
            pending: Vec::new(),
        }),
        tx,
        welcome,
    });
    let listener = TcpListener::bind(&listen)
        .await
        .expect("bind baseline listener");
    let flusher = hub.clone();
    let flush_every = Duration::from_millis(args.flush_ms.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            flusher.flush();
            n += 1;
            if n.is_multiple_of((5000 / flush_every.as_millis().max(1) as u64).max(1)) {
                let st = flusher.state.lock().expect("state");
                eprintln!(
                    "baseline: {} frames, {} items, largest frame {} items / {} bytes, rss {:?} MiB",
                    st.frames,
                    st.flushed_to,
                    st.max_items,
                    st.max_frame_bytes,
                    proto::proc_rss_mb(std::process::id())
                );
            }
        }
    });
    // Bounded: the parent kills this process at the end; it also exits after the deadline.
    let deadline = tokio::time::sleep(proto::secs(args.deadline));
    tokio::pin!(deadline);
    let cfg = proto::ws_config(args.buf);
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let Ok((stream, _)) = acc else {
                    // Out of file descriptors or similar: back off a little.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let hub = hub.clone();
                tokio::spawn(async move { hub.serve(stream, cfg).await });
            }
            _ = &mut deadline => break,
        }
    }
}

impl Hub {
    fn flush(&self) {
        let mut st = self.state.lock().expect("state");
        if st.pending.is_empty() {
            return;
        }
        let from = st.flushed_to + 1;
        let to = st.flushed_to + st.pending.len() as u64;
        let frame = encode_batch(
            Form::MsgPack,
            &self.topic,
            EPOCH,
            Seq(from),
            Seq(to),
            0,
            st.pending.iter().map(|b| b.as_ref()),
        );
        st.frames += 1;
        st.max_items = st.max_items.max(st.pending.len());
        st.max_frame_bytes = st.max_frame_bytes.max(frame.len());
        st.pending.clear();
        st.flushed_to = to;
        // Under the lock, so a subscriber's offset and its receiver agree.
        let _ = self.tx.send(frame);
    }

    async fn serve(
        &self,
        mut stream: TcpStream,
        cfg: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
    ) {
        // `GET /healthz` answers 200 like the hub's, so the harness can wait for it.
        let mut head = [0u8; 12];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut head)).await
            && head[..n].starts_with(b"GET /healthz")
        {
            use tokio::io::AsyncWriteExt as _;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
            return;
        }
        let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(cfg)).await
        else {
            return;
        };
        let mut rx: Option<broadcast::Receiver<Bytes>> = None;
        loop {
            tokio::select! {
                msg = ws.next() => {
                    let b = match msg {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(m) = decode_client(Form::MsgPack, &b) else { continue };
                    let reply = match m {
                        ClientMsg::Auth { .. } => self.welcome.clone(),
                        ClientMsg::Sub { topic, .. } => {
                            let st = self.state.lock().expect("state");
                            rx = Some(self.tx.subscribe());
                            let offset = st.flushed_to;
                            drop(st);
                            encode_server(Form::MsgPack, &ServerMsg::Subscribed {
                                topic, epoch: EPOCH, offset: Seq(offset), full_view: false,
                            })
                        }
                        ClientMsg::Post { id, text, .. } => {
                            let mut st = self.state.lock().expect("state");
                            let seq = Seq(st.next_seq);
                            st.next_seq += 1;
                            let item = Item {
                                seq,
                                ts: proto::now_us() / 1000,
                                body: ItemBody::Comment { author: proto::author("poster"), text, approves: None },
                            };
                            st.pending.push(encode_item(Form::MsgPack, &item));
                            drop(st);
                            encode_server(Form::MsgPack, &ServerMsg::Ack { id, seq, held: false })
                        }
                        ClientMsg::Ping { id } => encode_server(Form::MsgPack, &ServerMsg::Pong { id }),
                        ClientMsg::Unsub { .. } => {
                            rx = None;
                            continue;
                        }
                        // The baseline does no moderation and no media.
                        _ => continue,
                    };
                    if ws.send(Message::Binary(reply)).await.is_err() {
                        return;
                    }
                }
                frame = recv(&mut rx) => match frame {
                    Ok(frame) => {
                        // One write + flush of the shared frame.
                        if ws.send(Message::Binary(frame)).await.is_err() {
                            return;
                        }
                    }
                    // Too slow: frames lost; the client sees the gap by sequence number.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn recv(
    rx: &mut Option<broadcast::Receiver<Bytes>>,
) -> Result<Bytes, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
