//! Live comments over the real websocket: delivery, resume, snapshots, slow consumers.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Ended, TestHub, demo};
use shangliang_signaling::{Epoch, Form, Position, ResetReason, Role, Seq, ServerMsg, close};

fn subscribed_at(m: &ServerMsg) -> (Epoch, Seq) {
    match m {
        ServerMsg::Subscribed { epoch, offset, .. } => (*epoch, *offset),
        other => panic!("expected subscribed, got {other:?}"),
    }
}

#[tokio::test]
async fn every_viewer_sees_every_comment_in_order() {
    let hub = TestHub::start(|_| {}).await;
    let mut viewers = Vec::new();
    for i in 0..5 {
        let mut v = hub.client(Role::Viewer, &format!("viewer{i}")).await;
        let (_, offset) = subscribed_at(&v.sub(&demo(), None).await);
        viewers.push((v, offset));
    }
    let mut poster = hub.client(Role::Member, "委员甲").await;
    let mut seqs = Vec::new();
    for i in 0..20 {
        seqs.push(poster.post_ok(&demo(), &format!("评论 {i}")).await);
    }
    for (v, offset) in &mut viewers {
        let got = v.collect(*offset, 20).await;
        let texts: Vec<String> = got.iter().map(|(_, t)| t.clone()).collect();
        let want: Vec<String> = (0..20).map(|i| format!("评论 {i}")).collect();
        assert_eq!(texts, want);
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs);
    }
}

#[tokio::test]
async fn json_debug_form_receives_the_same_comments() {
    let hub = TestHub::start(|_| {}).await;
    let mut v = Client::connect(&hub.url(), Form::Json).await;
    v.auth(&hub.token(Role::Viewer, "json")).await;
    let (_, offset) = subscribed_at(&v.sub(&demo(), None).await);
    let mut poster = hub.client(Role::Member, "m").await;
    poster.post_ok(&demo(), "hello \"json\" 你好").await;
    assert_eq!(v.collect(offset, 1).await[0].1, "hello \"json\" 你好");
}

#[tokio::test]
async fn late_joiner_resumes_from_offset() {
    let hub = TestHub::start(|_| {}).await;
    let mut poster = hub.client(Role::Member, "m").await;
    let mut v = hub.client(Role::Viewer, "v").await;
    let (epoch, offset) = subscribed_at(&v.sub(&demo(), None).await);
    for i in 0..3 {
        poster.post_ok(&demo(), &format!("before {i}")).await;
    }
    let seen = v.collect(offset, 3).await;
    let last_seen = seen.last().unwrap().0;
    drop(v); // the viewer goes away ...
    for i in 0..4 {
        poster.post_ok(&demo(), &format!("missed {i}")).await;
    }
    // ... and comes back with its last position.
    let mut v = hub.client(Role::Viewer, "v").await;
    let m = v.sub(&demo(), Some(Position { epoch, offset: last_seen })).await;
    assert_eq!(subscribed_at(&m), (epoch, last_seen), "resume honoured from the viewer's offset");
    poster.post_ok(&demo(), "live after resume").await;
    let got = v.collect(last_seen, 5).await;
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["missed 0", "missed 1", "missed 2", "missed 3", "live after resume"]);
}

#[tokio::test]
async fn resume_beyond_the_ring_comes_from_sqlite() {
    let hub = TestHub::start(|cfg| cfg.fanout.ring_capacity = 5).await;
    let mut poster = hub.client(Role::Member, "m").await;
    let mut seqs = Vec::new();
    for i in 0..30 {
        seqs.push(poster.post_ok(&demo(), &format!("c{i}")).await);
    }
    let info = hub.hub.fanout.topic_info(&demo()).unwrap();
    assert!(info.ring_first > seqs[2], "the ring no longer holds the early items");
    let mut v = hub.client(Role::Viewer, "v").await;
    let m = v.sub(&demo(), Some(Position { epoch: info.epoch, offset: seqs[1] })).await;
    assert_eq!(subscribed_at(&m).1, seqs[1]);
    let got = v.collect(seqs[1], 28).await;
    let want: Vec<String> = (2..30).map(|i| format!("c{i}")).collect();
    assert_eq!(got.into_iter().map(|(_, t)| t).collect::<Vec<_>>(), want);
}

#[tokio::test]
async fn unrecoverable_resume_gets_an_explicit_snapshot() {
    let hub = TestHub::start(|_| {}).await;
    let mut poster = hub.client(Role::Member, "m").await;
    for i in 0..3 {
        poster.post_ok(&demo(), &format!("s{i}")).await;
    }
    let info = hub.hub.fanout.topic_info(&demo()).unwrap();
    let wrong = Epoch(info.epoch.0 ^ 1);
    let mut v = hub.client(Role::Viewer, "v").await;
    v.sub(&demo(), Some(Position { epoch: wrong, offset: Seq(2) })).await;
    match v.recv().await {
        ServerMsg::Reset { epoch, offset, reason, snapshot, .. } => {
            assert_eq!(epoch, info.epoch);
            assert!(offset <= info.last_seq);
            assert_eq!(reason, ResetReason::EpochChanged);
            // The snapshot ends at `offset`; batches continue right after it, so the viewer
            // ends up with the whole recent history and no duplicate.
            let mut texts: Vec<String> = snapshot
                .into_iter()
                .filter_map(|i| match i.body {
                    shangliang_signaling::ItemBody::Comment { text, .. } => Some(text),
                    _ => None,
                })
                .collect();
            let rest = 3 - texts.len();
            texts.extend(v.collect(offset, rest).await.into_iter().map(|(_, t)| t));
            assert_eq!(texts, ["s0", "s1", "s2"]);
        }
        other => panic!("expected reset, got {other:?}"),
    }
    // An offset ahead of the topic cannot have been seen either.
    let mut v2 = hub.client(Role::Viewer, "v2").await;
    v2.sub(&demo(), Some(Position { epoch: info.epoch, offset: Seq(1000) })).await;
    assert!(matches!(v2.recv().await, ServerMsg::Reset { reason: ResetReason::OffsetAhead, .. }));
}

#[tokio::test]
async fn slow_consumer_is_cut_off_while_the_others_keep_their_latency() {
    let hub = TestHub::start(|cfg| {
        cfg.socket_send_buffer = Some(4096);
        cfg.write_timeout = Duration::from_millis(800);
        cfg.fanout.queue_frames = 4;
        cfg.fanout.lag_close_after = Duration::from_secs(1);
    })
    .await;
    // The slow viewer: a tiny receive buffer, and it never reads after subscribing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let tcp = socket.connect(hub.addr).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(hub.url(), tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await.unwrap();
    let mut slow = Client::from_ws(ws, Form::MsgPack);
    slow.auth(&hub.token(Role::Viewer, "slow")).await;
    slow.sub(&demo(), None).await;

    let mut fast = hub.client(Role::Viewer, "fast").await;
    let (_, offset) = subscribed_at(&fast.sub(&demo(), None).await);
    let mut poster = hub.client(Role::Moderator, "主持人").await;
    let long = "长".repeat(400);
    let mut worst = Duration::ZERO;
    let mut last = offset;
    let before = hub.hub.connections();
    for i in 0..120 {
        let sent = Instant::now();
        let seq = poster.post_ok(&demo(), &format!("{i} {long}")).await;
        // The fast viewer gets every comment promptly, whatever the slow one does.
        let got = fast.collect(last, 1).await;
        assert_eq!(got[0].0, seq);
        last = seq;
        worst = worst.max(sent.elapsed());
    }
    assert!(worst < Duration::from_secs(1), "fast viewer's worst post-to-receive was {worst:?}");
    // The slow viewer's connection is closed by the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.hub.connections() >= before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hub.hub.connections() < before, "the slow consumer was not cut off");
    // Reading now, the slow client finds the end of its connection (4408 if the close frame
    // fit in its buffer, else the socket simply ends).
    match slow.ended().await {
        Ended::Closed(code, _) => assert_eq!(code, close::SLOW_CONSUMER),
        Ended::Eof => {}
    }
}
