//! The websocket session driven by channels (the `Sink`/`Stream` it is generic over), against
//! a real fan-out core, record and moderation driver: no sockets.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Sink, Stream};
use shangliang_signaling::{
    ActivityId, ClientMsg, ErrorCode, Form, Role, Seq, ServerMsg, close, decode_server, encode_client,
};
use tokio::sync::mpsc;

use super::{Connections, SessionLimits, WsState, session};
use crate::fanout::{Fanout, FanoutConfig};
use crate::record::Record;
use crate::record::testing::Faulty;
use crate::server::auth::{Claims, TokenKeys, now_secs};
use crate::server::inbox::Inboxes;
use crate::server::media::{Media, MediaState};
use crate::server::moderation::{Outlets, Registry};

const WAIT: Duration = Duration::from_secs(10);

/// The server's end of a websocket: frames from the client come in on one channel, what the
/// session sends goes out on the other.
struct ChannelSocket {
    from_client: mpsc::UnboundedReceiver<Message>,
    to_client: mpsc::UnboundedSender<Message>,
}

impl Stream for ChannelSocket {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.from_client.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for ChannelSocket {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, m: Message) -> Result<(), Self::Error> {
        self.to_client.send(m).map_err(|_| axum::Error::new("the client went away"))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// The client's end.
struct Client {
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// How long to wait for the session (longer than its own timers in the paused-time tests).
    wait: Duration,
}

#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // a test helper; ServerMsg::State grew with `held`
enum Got {
    Msg(ServerMsg),
    Closed(u16, String),
}

impl Client {
    fn send(&self, m: &ClientMsg) {
        self.tx.send(Message::Binary(encode_client(Form::MsgPack, m))).unwrap();
    }

    fn send_raw(&self, m: Message) {
        self.tx.send(m).unwrap();
    }

    async fn next(&mut self) -> Got {
        loop {
            match tokio::time::timeout(self.wait, self.rx.recv()).await.expect("the session answers in time") {
                Some(Message::Binary(b)) => return Got::Msg(decode_server(Form::MsgPack, &b).unwrap()),
                Some(Message::Text(t)) => return Got::Msg(decode_server(Form::Json, t.as_bytes()).unwrap()),
                Some(Message::Close(Some(f))) => return Got::Closed(f.code, f.reason.to_string()),
                Some(_) => continue,
                None => panic!("the session ended without a close frame"),
            }
        }
    }

    async fn msg(&mut self) -> ServerMsg {
        match self.next().await {
            Got::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

struct Bench {
    state: Arc<WsState>,
    record: Arc<Faulty>,
}

fn demo() -> ActivityId {
    ActivityId::new("demo").unwrap()
}

async fn bench(tune: impl FnOnce(&mut SessionLimits)) -> Bench {
    let fanout = Fanout::new(FanoutConfig::default());
    let hook = fanout.clone();
    let record = Faulty::open(&demo(), Box::new(move |a, item, public| drop(hook.publish(a, item.clone(), public)))).await;
    fanout.open_topic(demo(), record.activity(&demo()).unwrap().unwrap().epoch, Seq(0));
    let keys = Arc::new(TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef"));
    let inboxes = Arc::new(Inboxes::default());
    let outlets = Outlets { fanout: fanout.clone(), inboxes: inboxes.clone() };
    let moderation = Registry::new(record.clone(), outlets, None, tokio::runtime::Handle::current(), 600);
    let media = MediaState {
        media: Arc::new(Media::new(shangliang_sfu::Sfu::new(shangliang_sfu::SfuConfig::default()))),
        record: record.clone(),
        keys: keys.clone(),
        cluster: None,
    };
    let mut limits = SessionLimits {
        frames_per_second: 1_000,
        idle_timeout: Duration::from_secs(90),
        write_timeout: Duration::from_secs(10),
        comments_per_minute: 600,
        max_connections: 100,
        acks_on_wire: true,
    };
    tune(&mut limits);
    let state = Arc::new(WsState {
        keys,
        fanout,
        record: record.clone(),
        inboxes,
        moderation,
        media,
        limits,
        connections: Connections::default(),
    });
    Bench { state, record }
}

impl Bench {
    /// A session on channels; its task runs until the session ends.
    fn connect(&self) -> Client {
        let (ctx, from_client) = mpsc::unbounded_channel();
        let (to_client, crx) = mpsc::unbounded_channel();
        let socket = ChannelSocket { from_client, to_client };
        tokio::spawn(session::run(self.state.clone(), socket, "127.0.0.1:9".parse().unwrap()));
        Client { tx: ctx, rx: crx, wait: WAIT }
    }

    fn token(&self, role: Role, name: &str, activity: &str) -> String {
        let now = now_secs();
        self.state.keys.mint(&Claims {
            sub: format!("{}:{name}", role.as_str()).into(),
            name: name.into(),
            role,
            act: ActivityId::new(activity).unwrap(),
            org: None,
            verified: false,
            iat: now,
            exp: now + 600,
        })
    }

    async fn authed(&self, role: Role, name: &str) -> Client {
        let mut c = self.connect();
        c.send(&ClientMsg::Auth { v: 1, token: self.token(role, name, "demo") });
        assert!(matches!(c.msg().await, ServerMsg::Welcome { .. }));
        c
    }
}

#[tokio::test]
async fn a_first_frame_other_than_auth_closes_with_4401() {
    let b = bench(|_| {}).await;
    let mut c = b.connect();
    c.send(&ClientMsg::Ping { id: 1 });
    assert!(matches!(c.msg().await, ServerMsg::Error { code: ErrorCode::Unauthenticated, .. }));
    assert_eq!(c.next().await, Got::Closed(close::UNAUTHENTICATED, "unauthenticated".into()));
    assert_eq!(b.state.connections.get(), 0, "the session's slot is given back");
}

#[tokio::test]
async fn a_session_answers_ping_and_acks_a_post_once_it_is_durable() {
    let b = bench(|_| {}).await;
    let mut c = b.authed(Role::Viewer, "甲").await;
    assert_eq!(b.state.connections.get(), 1);
    c.send(&ClientMsg::Ping { id: 5 });
    assert_eq!(c.msg().await, ServerMsg::Pong { id: 5 });
    c.send(&ClientMsg::Post { id: 6, topic: demo(), text: "  你好  ".into() });
    assert_eq!(c.msg().await, ServerMsg::Ack { id: 6, seq: Seq(1), held: false });
    let stored = b.record.items(&demo(), Seq(1), Seq(1), false).await.unwrap();
    assert!(matches!(&stored[0].item.body, shangliang_signaling::ItemBody::Comment { text, .. } if text == "你好"));
}

#[tokio::test]
async fn posts_of_one_connection_are_pipelined_and_answered_in_order() {
    let b = bench(|_| {}).await;
    let mut c = b.authed(Role::Member, "乙").await;
    for id in 1..=5 {
        c.send(&ClientMsg::Post { id, topic: demo(), text: format!("第{id}条") });
    }
    for id in 1..=5u32 {
        assert_eq!(c.msg().await, ServerMsg::Ack { id, seq: Seq(u64::from(id)), held: false });
    }
}

#[tokio::test]
async fn a_post_to_another_activity_is_refused_as_forbidden() {
    let b = bench(|_| {}).await;
    let mut c = b.authed(Role::Viewer, "丙").await;
    c.send(&ClientMsg::Post { id: 1, topic: ActivityId::new("other").unwrap(), text: "hi".into() });
    assert!(matches!(c.msg().await, ServerMsg::Error { id: Some(1), code: ErrorCode::Forbidden, .. }));
}

#[tokio::test]
async fn ten_malformed_frames_in_a_row_close_with_4400() {
    let b = bench(|_| {}).await;
    let mut c = b.authed(Role::Viewer, "丁").await;
    for _ in 0..9 {
        c.send_raw(Message::Binary(vec![0xc1, 0x00].into()));
        assert!(matches!(c.msg().await, ServerMsg::Error { id: None, code: ErrorCode::BadFrame, .. }));
    }
    c.send_raw(Message::Binary(vec![0xc1].into()));
    assert_eq!(c.next().await, Got::Closed(close::PROTOCOL, "too many bad frames".into()));
}

#[tokio::test]
async fn a_subscriber_gets_subscribed_then_the_state_then_new_comments_in_a_batch() {
    let b = bench(|_| {}).await;
    let mut c = b.authed(Role::Viewer, "戊").await;
    c.send(&ClientMsg::Sub { topic: demo(), resume: None, last: None });
    assert!(matches!(c.msg().await, ServerMsg::Subscribed { offset: Seq(0), full_view: false, .. }));
    assert!(matches!(c.msg().await, ServerMsg::State { .. }));
    let mut poster = b.authed(Role::Member, "己").await;
    poster.send(&ClientMsg::Post { id: 1, topic: demo(), text: "大家好".into() });
    assert!(matches!(poster.msg().await, ServerMsg::Ack { .. }));
    loop {
        if let ServerMsg::Batch { from, to, items, .. } = c.msg().await {
            assert_eq!((from, to, items.len()), (Seq(1), Seq(1), 1));
            break;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_without_auth_in_time_closes_with_4402() {
    let b = bench(|_| {}).await;
    let mut c = b.connect();
    c.wait = Duration::from_secs(600);
    assert_eq!(c.next().await, Got::Closed(close::AUTH_TIMEOUT, "auth timeout".into()));
}

#[tokio::test(start_paused = true)]
async fn a_silent_session_is_closed_after_the_idle_timeout() {
    let b = bench(|l| l.idle_timeout = Duration::from_secs(30)).await;
    let mut c = b.authed(Role::Viewer, "庚").await;
    c.wait = Duration::from_secs(600);
    let since = tokio::time::Instant::now();
    assert_eq!(c.next().await, Got::Closed(close::NORMAL, "idle timeout".into()));
    assert!(since.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn a_close_from_the_client_is_answered_with_the_same_code() {
    let b = bench(|_| {}).await;
    let mut c = b.authed(Role::Viewer, "辛").await;
    c.send_raw(Message::Close(Some(axum::extract::ws::CloseFrame { code: 4000, reason: "bye".into() })));
    assert_eq!(c.next().await, Got::Closed(4000, String::new()));
    // Before auth too.
    let mut early = b.connect();
    early.send_raw(Message::Close(Some(axum::extract::ws::CloseFrame { code: close::GOING_AWAY, reason: "".into() })));
    assert_eq!(early.next().await, Got::Closed(close::GOING_AWAY, String::new()));
}

#[tokio::test]
async fn a_client_that_vanishes_gets_no_close_frame_and_frees_its_slot() {
    let b = bench(|_| {}).await;
    let c = b.authed(Role::Viewer, "壬").await;
    let Client { tx, mut rx, .. } = c;
    drop(tx); // the stream ends without a Close: an abrupt disconnect
    let next = tokio::time::timeout(WAIT, rx.recv()).await.expect("the session ends in time");
    assert!(next.is_none(), "nothing is sent to a vanished client, got {next:?}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.state.connections.get() != 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.state.connections.get(), 0, "the session's slot is given back");
}

#[tokio::test]
async fn a_connected_sessions_future_stays_small() {
    let b = bench(|_| {}).await;
    let (_ctx, from_client) = mpsc::unbounded_channel();
    let (to_client, _crx) = mpsc::unbounded_channel();
    let size = session::session_future_size(&b.state, ChannelSocket { from_client, to_client });
    // Every connection's task holds this for its whole life (its rare, large parts are boxed).
    eprintln!("session future: {size} bytes");
    assert!(size <= 2304, "the session future grew to {size} bytes (it was 2,000 in a dev build)");
}
