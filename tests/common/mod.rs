//! Shared helpers for the integration tests: an in-process hub on an ephemeral port, tokens,
//! and a small websocket client speaking the protocol.
#![allow(dead_code, missing_docs)]

pub mod browser;
pub mod process;
pub mod services;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shangliang::server::auth::{Claims, now_secs};
use shangliang::server::{Hub, ServeConfig};
use shangliang_signaling::{
    ActivityId, ClientMsg, Form, Position, Role, Seq, ServerMsg, decode_server, encode_client,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestHub {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestHub {
    pub async fn start(tune: impl FnOnce(&mut ServeConfig)) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
        cfg.comments_per_minute = 60_000;
        cfg.frames_per_second = 10_000;
        tune(&mut cfg);
        let listener = tokio::net::TcpListener::bind(cfg.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Hub::start(cfg).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = hub.clone();
        tokio::spawn(async move {
            shangliang::server::run(listener, served, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestHub { addr, hub, dir, stop: Some(tx) }
    }

    pub fn token(&self, role: Role, name: &str) -> String {
        self.token_with(role, name, "demo", 3600)
    }

    pub fn token_with(&self, role: Role, name: &str, activity: &str, ttl: i64) -> String {
        let now = now_secs();
        self.hub.keys.mint(&Claims {
            sub: format!("{}:{name}", role.as_str()).into(),
            name: name.into(),
            role,
            act: ActivityId::new(activity).unwrap(),
            org: None,
            verified: false,
            iat: now,
            exp: (now as i64 + ttl) as u64,
        })
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A client that has authenticated with a fresh token of `role`.
    pub async fn client(&self, role: Role, name: &str) -> Client {
        let mut c = Client::connect(&self.url(), Form::MsgPack).await;
        c.auth(&self.token(role, name)).await;
        c
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn demo() -> ActivityId {
    ActivityId::new("demo").unwrap()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub form: Form,
    next_id: u32,
}

/// What the server ended a connection with.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(u16, String),
    Eof,
}

impl Client {
    pub async fn connect(url: &str, form: Form) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connect");
        Client { ws, form, next_id: 1 }
    }

    pub fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>, form: Form) -> Client {
        Client { ws, form, next_id: 1 }
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        let bytes = encode_client(self.form, msg);
        let frame = match self.form {
            Form::MsgPack => Message::Binary(bytes),
            Form::Json => Message::Text(String::from_utf8(bytes.to_vec()).unwrap().into()),
        };
        self.ws.send(frame).await.expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send raw");
    }

    /// The next protocol message, or panics after `WAIT`.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.try_recv(WAIT).await {
            Some(Ok(m)) => m,
            Some(Err(e)) => panic!("connection ended: {e:?}"),
            None => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next protocol message; `Err` if the connection ended; `None` on timeout.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Result<ServerMsg, Ended>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?;
            let msg = match next {
                None | Some(Err(_)) => return Some(Err(Ended::Eof)),
                Some(Ok(m)) => m,
            };
            match msg {
                Message::Binary(b) => return Some(Ok(decode_server(Form::MsgPack, &b).unwrap())),
                Message::Text(t) => return Some(Ok(decode_server(Form::Json, t.as_bytes()).unwrap())),
                Message::Close(Some(CloseFrame { code, reason })) => {
                    return Some(Err(Ended::Closed(code.into(), reason.to_string())));
                }
                Message::Close(None) => return Some(Err(Ended::Closed(1005, String::new()))),
                _ => continue,
            }
        }
    }

    /// Reads until the connection ends and returns how, skipping other messages.
    pub async fn ended(&mut self) -> Ended {
        loop {
            match self.try_recv(WAIT).await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return e,
                None => panic!("connection still open after {WAIT:?}"),
            }
        }
    }

    pub async fn auth(&mut self, token: &str) -> ServerMsg {
        self.send(&ClientMsg::Auth { v: 1, token: token.into() }).await;
        let m = self.recv().await;
        assert!(matches!(m, ServerMsg::Welcome { .. }), "expected welcome, got {m:?}");
        m
    }

    /// Subscribes and returns the `subscribed` answer.
    pub async fn sub(&mut self, topic: &ActivityId, resume: Option<Position>) -> ServerMsg {
        self.send(&ClientMsg::Sub { topic: topic.clone(), resume, last: None }).await;
        loop {
            let m = self.recv().await;
            match m {
                ServerMsg::Subscribed { .. } => return m,
                ServerMsg::Error { .. } => return m,
                _ => continue,
            }
        }
    }

    /// Posts and waits for the answer (`ack` or `error`) with the same id, skipping others.
    pub async fn post(&mut self, topic: &ActivityId, text: &str) -> ServerMsg {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientMsg::Post { id, topic: topic.clone(), text: text.into() }).await;
        loop {
            let m = self.recv().await;
            match &m {
                ServerMsg::Ack { id: i, .. } | ServerMsg::Error { id: Some(i), .. } if *i == id => return m,
                _ => continue,
            }
        }
    }

    /// Posts and returns the acknowledged sequence number.
    pub async fn post_ok(&mut self, topic: &ActivityId, text: &str) -> Seq {
        match self.post(topic, text).await {
            ServerMsg::Ack { seq, .. } => seq,
            other => panic!("post refused: {other:?}"),
        }
    }

    /// Collects comment texts from `batch`/`reset` frames until `want` have arrived.
    /// Returns (seq, text) pairs and checks that batch ranges are contiguous.
    pub async fn collect(&mut self, after: Seq, want: usize) -> Vec<(Seq, String)> {
        let mut got = Vec::new();
        let mut last = after;
        while got.len() < want {
            match self.recv().await {
                ServerMsg::Batch { from, to, items, .. } => {
                    assert_eq!(from, last.next(), "batch range must continue the previous one");
                    last = to;
                    for item in items {
                        if let shangliang_signaling::ItemBody::Comment { text, .. } = item.body {
                            got.push((item.seq, text));
                        }
                    }
                }
                ServerMsg::Reset { offset, snapshot, .. } => {
                    last = offset;
                    for item in snapshot {
                        if let shangliang_signaling::ItemBody::Comment { text, .. } = item.body {
                            got.push((item.seq, text));
                        }
                    }
                }
                _ => {}
            }
        }
        got
    }
}

// ---- moderation (`cmd`, `reply`, `event`, `state`) ----

use shangliang_signaling::consult::{Command, ConsultEvent, Reply, Snapshot};
use shangliang_signaling::{ErrorCode, Item};

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(10_000);

/// Sends a `cmd` and waits for its `reply` or `error`, skipping other messages.
pub async fn cmd(c: &mut Client, command: Command) -> Result<Reply, ErrorCode> {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.send(&ClientMsg::Cmd {
        id,
        topic: demo(),
        cmd: command,
    })
    .await;
    loop {
        match c.recv().await {
            ServerMsg::Reply { id: i, reply } if i == id => return Ok(reply),
            ServerMsg::Error {
                id: Some(i), code, ..
            } if i == id => return Err(code),
            _ => {}
        }
    }
}

pub async fn ok(c: &mut Client, command: Command) -> Reply {
    let what = format!("{command:?}");
    cmd(c, command)
        .await
        .unwrap_or_else(|e| panic!("{what} refused: {e:?}"))
}

/// Waits for an event that `pick` accepts.
pub async fn event<T>(c: &mut Client, mut pick: impl FnMut(&ConsultEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv(left).await {
            Some(Ok(ServerMsg::Event { event, .. })) => {
                if let Some(t) = pick(&event) {
                    return t;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("connection ended: {e:?}"),
            None => panic!("no such event within {WAIT:?}"),
        }
    }
}

/// Subscribes to the demo activity; returns the `state` that follows `subscribed`.
pub async fn sub_state(c: &mut Client) -> (Seq, Snapshot) {
    let offset = match c.sub(&demo(), None).await {
        ServerMsg::Subscribed { offset, .. } => offset,
        other => panic!("expected subscribed, got {other:?}"),
    };
    match c.recv().await {
        ServerMsg::State { state, .. } => (offset, state),
        other => panic!("expected state right after subscribed, got {other:?}"),
    }
}

/// Items of the batches received until one covers `seq`.
pub async fn items_through(c: &mut Client, seq: Seq) -> Vec<Item> {
    let mut items = Vec::new();
    loop {
        if let ServerMsg::Batch { to, items: got, .. } = c.recv().await {
            items.extend(got);
            if to >= seq {
                return items;
            }
        }
    }
}


/// Submits a question (not anonymous) and returns its id.
pub async fn ask(c: &mut Client, text: &str) -> shangliang_signaling::consult::QuestionId {
    match ok(c, Command::SubmitQuestion { text: text.into(), anonymous: false }).await {
        Reply::QuestionSubmitted { id } => id,
        other => panic!("expected question_submitted, got {other:?}"),
    }
}
