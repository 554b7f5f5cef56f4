//! How a websocket connection ends, seen by a real client (tokio-tungstenite) over TCP: the
//! hub answers a client's Close with the same code (RFC 6455 §5.5.1), sends a viewer that
//! stopped reading a 4408 Close before it drops the connection, and counts each ending under
//! its own `closed_total{code}` label (`abrupt` for a TCP connection that just went away).
//!
//! The counters are read from the process-wide Prometheus recorder, so each test looks at its
//! own label only and compares with the value before it acted.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Ended, TestHub, demo};
use futures_util::{SinkExt, StreamExt};
use shangliang_signaling::{Form, Role, close};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The value of a counter (summed over series whose labels contain `labels`), 0 if absent.
fn counter(name: &str, labels: &str) -> u64 {
    shangliang::server::metrics::render()
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn closed(code: &str) -> u64 {
    counter("shangliang_closed_total", &format!("code=\"{code}\""))
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_close_is_echoed_with_the_same_code_and_counted_under_it() {
    let hub = TestHub::start(|_| {}).await;
    let before = closed("4000");
    let mut c = hub.client(Role::Viewer, "leaving").await;
    c.ws.send(Message::Close(Some(CloseFrame { code: CloseCode::from(4000), reason: "bye".into() }))).await.unwrap();
    match c.ended().await {
        Ended::Closed(code, _) => assert_eq!(code, 4000, "the hub answers with the client's code"),
        Ended::Eof => panic!("the hub dropped the connection without answering the Close"),
    }
    // After the echo the hub drops the TCP connection: the client reads the end of the stream.
    let end = tokio::time::timeout(Duration::from_secs(10), c.ws.next()).await.expect("the TCP connection ends");
    assert!(!matches!(end, Some(Ok(Message::Binary(_) | Message::Text(_)))), "nothing follows the Close: {end:?}");
    eventually("closed_total{code=4000} counts the client's close", || closed("4000") > before).await;
}

#[tokio::test]
async fn a_close_before_auth_is_echoed_too() {
    let hub = TestHub::start(|_| {}).await;
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Away, reason: "".into() }))).await.unwrap();
    assert_eq!(c.ended().await, Ended::Closed(close::GOING_AWAY, String::new()));
}

#[tokio::test]
async fn a_dropped_tcp_connection_is_counted_as_abrupt_not_as_a_protocol_error() {
    let hub = TestHub::start(|_| {}).await;
    let (abrupt, protocol) = (closed("abrupt"), closed("4400"));
    let c = hub.client(Role::Viewer, "vanishing").await;
    let connected = hub.hub.connections();
    drop(c); // no Close frame: the socket just closes
    eventually("the hub notices the dropped connection", || hub.hub.connections() < connected).await;
    eventually("closed_total{code=abrupt} counts it", || closed("abrupt") > abrupt).await;
    assert_eq!(closed("4400"), protocol, "an abrupt disconnect is not a protocol error");
}

#[tokio::test]
async fn a_viewer_that_stops_reading_is_sent_4408_before_it_is_disconnected() {
    // Small buffers on both sides, so a viewer that stops reading backs the hub up quickly; the
    // write timeout bounds both the stuck write and the Close that follows it.
    let hub = TestHub::start(|cfg| {
        cfg.socket_send_buffer = Some(4096);
        cfg.write_timeout = Duration::from_secs(2);
        cfg.fanout.queue_frames = 4;
        cfg.fanout.lag_close_after = Duration::from_secs(1);
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let tcp = socket.connect(hub.addr).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(hub.url(), tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await.unwrap();
    let mut slow = Client::from_ws(ws, Form::MsgPack);
    slow.auth(&hub.token(Role::Viewer, "slow")).await;
    slow.sub(&demo(), None).await;
    let (slow_before, closed_before) = (counter("shangliang_fanout_slow_closed_total", ""), closed("4408"));

    // The viewer stops reading; comments keep coming until the hub gives up on it.
    let mut poster = hub.client(Role::Moderator, "主持人").await;
    let long = "长".repeat(400);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut posted = 0;
    while counter("shangliang_fanout_slow_closed_total", "") == slow_before {
        assert!(Instant::now() < deadline, "the hub never judged the viewer slow ({posted} comments)");
        poster.post_ok(&demo(), &format!("{posted} {long}")).await;
        posted += 1;
    }
    // The hub has decided and is writing the Close (within the write timeout): the viewer
    // drains its socket now and finds 4408 after the frames that were already on their way.
    match slow.ended().await {
        Ended::Closed(code, reason) => assert_eq!((code, reason.as_str()), (close::SLOW_CONSUMER, "slow consumer")),
        Ended::Eof => panic!("the slow viewer's connection ended without the 4408 Close"),
    }
    eventually("closed_total{code=4408} counts it", || closed("4408") > closed_before).await;
}

#[tokio::test]
async fn the_fan_out_shard_writes_to_the_sockets_of_the_hub() {
    let hub = TestHub::start(|_| {}).await;
    let before = counter("shangliang_ws_sessions_total", "writer=\"shard\"");
    let mut v = hub.client(Role::Viewer, "direct").await;
    let offset = match v.sub(&demo(), None).await {
        shangliang_signaling::ServerMsg::Subscribed { offset, .. } => offset,
        other => panic!("expected subscribed, got {other:?}"),
    };
    assert!(counter("shangliang_ws_sessions_total", "writer=\"shard\"") > before, "the session was not given a wire");
    let mut poster = hub.client(Role::Member, "m").await;
    let seq = poster.post_ok(&demo(), "straight from the shard").await;
    assert_eq!(v.collect(offset, 1).await, [(seq, "straight from the shard".to_string())]);
}
