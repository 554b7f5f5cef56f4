//! Refusals: bad input and limits give a clear error, never a hang.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use shangliang_sfu::SfuError;
use webrtc::media_stream::track_local::TrackLocal;

async fn recvonly_offer() -> (Bot, String) {
    let mut b = bot().await;
    b.recv_only(RtpCodecKind::Audio).await;
    b.recv_only(RtpCodecKind::Video).await;
    let o = b.offer().await;
    (b, o)
}

async fn sending_offer() -> (Bot, String) {
    let mut b = bot().await;
    b.pc.add_track(local_track(RtpCodecKind::Video, vp8(), 42) as Arc<dyn TrackLocal>).await.unwrap();
    let o = b.offer().await;
    (b, o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_sdp_is_refused_with_a_clear_error() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let sfu = sfu(10, 10);
        for bad in ["", "hello", "v=0\r\nthis is not sdp\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"] {
            match sfu.whep("r", bad).await {
                Err(SfuError::InvalidSdp(msg)) => assert!(!msg.is_empty()),
                other => panic!("whep({bad:?}) gave {other:?}"),
            }
            match sfu.whip("r", "p", bad).await {
                Err(SfuError::InvalidSdp(_)) => {}
                other => panic!("whip({bad:?}) gave {other:?}"),
            }
        }
        let st = sfu.stats();
        assert_eq!((st.sessions, st.peer_connections, st.rooms), (0, 0, 0), "{st:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_cannot_publish() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let sfu = sfu(10, 10);
        // A WHEP offer that would send media is refused outright.
        let (b, offer) = sending_offer().await;
        match sfu.whep("r", &offer).await {
            Err(SfuError::NotAllowed(msg)) => assert!(msg.contains("receive-only"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // WHIP needs a participant (the caller checked publish rights and names who publishes).
        match sfu.whip("r", "", &offer).await {
            Err(SfuError::NotAllowed(_)) => {}
            other => panic!("{other:?}"),
        }
        let _ = b.pc.close().await;
        // A receive-only viewer, connected, puts nothing on the stage.
        let (mut v, offer) = recvonly_offer().await;
        let (id, answer) = sfu.whep("r", &offer).await.unwrap();
        v.accept_answer(answer).await;
        v.wait_connected().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sfu.stats().ingested_packets, 0);
        assert!(sfu.close_session(id).await);
        assert!(!sfu.close_session(id).await, "closing twice reports no such session");
        let _ = v.pc.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_full_is_a_clear_error() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let sfu = sfu(2, 1);
        let (_b1, o1) = sending_offer().await;
        let (s1, _) = sfu.whip("room", "alice", &o1).await.unwrap();
        let (_h, _ev) = sfu.join("room", "bob").await.unwrap();
        let (_b3, o3) = sending_offer().await;
        match sfu.whip("room", "carol", &o3).await {
            Err(SfuError::RoomFull { room, max }) => assert_eq!((room.as_str(), max), ("room", 2)),
            other => panic!("{other:?}"),
        }
        match sfu.join("room", "dave").await {
            Err(e @ SfuError::RoomFull { .. }) => assert_eq!(e.to_string(), "room room is full (2 participants)"),
            other => panic!("{other:?}"),
        }
        // Another room is unaffected; a known participant may open a second session.
        assert!(sfu.whip("other", "carol", &o3).await.is_ok());
        assert!(sfu.whip("room", "alice", &o3).await.is_ok());
        // Node-wide viewer limit: connected viewers count against it (a pending one, whose
        // connection is not up, is capped apart and does not hold the place).
        let (_v1, vo) = recvonly_offer().await;
        sfu.whep("room", &vo).await.unwrap();
        let _connected = Viewer::start(&sfu, "room").await;
        for _ in 0..100 {
            if sfu.stats().pending_viewers == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(sfu.stats().pending_viewers, 1, "the second viewer connected, the first is pending");
        match sfu.whep("room", &vo).await {
            Err(SfuError::NodeFull { max: 1 }) => {}
            other => panic!("{other:?}"),
        }
        // After alice leaves (both sessions) and bob leaves, carol fits.
        assert!(sfu.close_session(s1).await);
        _h.leave().await;
        let (_b4, o4) = sending_offer().await;
        assert!(sfu.whip("room", "carol", &o4).await.is_ok());
    })
    .await
    .expect("bounded");
}

/// The port of the candidate line of an SDP answer.
fn candidate_port(sdp: &str) -> Option<u16> {
    let line = sdp.lines().find(|l| l.starts_with("a=candidate:"))?;
    line.split_whitespace().nth(5)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peer_connections_share_the_nodes_one_port() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // The old core took one UDP port (and file) per connection and answered `NoPorts` when a
        // range ran out; now every connection is demultiplexed on the node's one socket.
        let sfu = sfu(10, 1_000);
        let port = sfu.local_addr().port();
        let (_b, o) = recvonly_offer().await;
        let fds = open_fds();
        let mut ids = Vec::new();
        for _ in 0..200 {
            let (id, answer) = sfu.whep("r", &o).await.expect("no port is consumed per viewer");
            assert_eq!(candidate_port(&answer), Some(port), "every answer names the one port");
            assert!(answer.contains("a=ice-lite"), "the node is an ICE-lite agent");
            ids.push(id);
        }
        assert_eq!(sfu.stats().peer_connections, 200);
        assert!(open_fds() <= fds + 2, "connections took files: {fds} -> {}", open_fds());
        for id in ids {
            assert!(sfu.close_session(id).await);
        }
        let st = sfu.stats();
        assert_eq!((st.sessions, st.peer_connections, st.rooms), (0, 0, 0), "{st:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_a_taken_port_is_refused_not_sharing_it() {
    let first = sfu(10, 10);
    let taken = first.local_addr().port();
    let cfg = shangliang_sfu::SfuConfig { udp_port: taken, ..Default::default() };
    match shangliang_sfu::Sfu::bind(cfg) {
        Err(SfuError::NoPorts) => {}
        other => panic!("binding a taken port must fail: {other:?}"),
    }
    let wildcard = shangliang_sfu::SfuConfig { bind_ip: "0.0.0.0".parse().unwrap(), ..Default::default() };
    assert!(matches!(shangliang_sfu::Sfu::bind(wildcard), Err(SfuError::NotAllowed(_))), "a wildcard bind needs an announced address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_port_that_is_taken_gives_way_to_any_free_port_when_allowed() {
    let first = sfu(10, 10);
    let taken = first.local_addr().port();
    let cfg = shangliang_sfu::SfuConfig { udp_port: taken, any_port_if_taken: true, ..Default::default() };
    let second = shangliang_sfu::Sfu::bind(cfg).expect("any free port instead");
    assert_ne!(second.local_addr().port(), taken);
    assert_ne!(second.local_addr().port(), 0);
}
