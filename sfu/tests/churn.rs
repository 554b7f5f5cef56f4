//! Join/leave churn must not leak tasks, connections or sockets.
#![allow(missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

/// Cycles: environment variable `SFU_CHURN_CYCLES`, default 1000.
fn cycles() -> usize {
    std::env::var("SFU_CHURN_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_join_leave_cycles_leave_no_growth() {
    let n = cycles();
    tokio::time::timeout(Duration::from_secs(300), async {
        let sfu = sfu(1000, 100_000);
        // A live stage, so viewers get forwarders with a real source.
        let publisher = Publisher::start(&sfu, "churn", "speaker", 30, 2, 500).await;
        let mut b = bot().await;
        b.recv_only(RtpCodecKind::Audio).await;
        b.recv_only(RtpCodecKind::Video).await;
        let offer = b.offer().await;

        // Warm up once, then take the baseline.
        let (id, _) = sfu.whep("churn", &offer).await.unwrap();
        sfu.close_session(id).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let base = sfu.stats();
        let base_fds = open_fds();

        let started = Instant::now();
        for i in 0..n {
            // Alternate WHEP viewers (offer/answer only) and members (join, subscriber offer, leave).
            if i % 50 == 25 {
                // Every 50th cycle a real viewer connects (ICE + DTLS) and receives media first.
                let mut v = Viewer::start(&sfu, "churn").await;
                let got = tokio::time::timeout(Duration::from_secs(5), v.rx.recv()).await;
                assert!(matches!(got, Ok(Some(_))), "connected viewer got no media");
                assert!(sfu.close_session(v.session).await);
                let _ = v.bot.pc.close().await;
            } else if i % 2 == 0 {
                let (id, answer) = sfu.whep("churn", &offer).await.expect("whep");
                assert!(answer.contains("a=candidate"));
                assert!(sfu.close_session(id).await);
            } else {
                let (h, mut ev) = sfu.join("churn", &format!("member-{i}")).await.expect("join");
                // The stage has tracks: a subscriber offer comes at once.
                let got = tokio::time::timeout(Duration::from_secs(5), ev.recv()).await;
                assert!(matches!(got, Ok(Some(shangliang_sfu::SfuEvent::SubscriberOffer { .. }))), "{got:?}");
                h.leave().await;
            }
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = sfu.stats();
        let fds = open_fds();
        eprintln!("{n} cycles in {elapsed:?} ({:?}/cycle); base {base:?} fds {base_fds}; after {after:?} fds {fds}", elapsed / n as u32);
        assert_eq!(after.sessions, base.sessions);
        assert_eq!(after.peer_connections, base.peer_connections);
        assert_eq!(after.rooms, base.rooms);
        assert!(after.tasks_alive <= base.tasks_alive, "tasks grew: {} -> {}", base.tasks_alive, after.tasks_alive);
        assert!(fds <= base_fds + 4, "file descriptors grew: {base_fds} -> {fds}");
        publisher.stop().await;
        sfu.close_session(publisher.session).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let end = sfu.stats();
        assert_eq!((end.sessions, end.peer_connections, end.rooms, end.tasks_alive), (0, 0, 0, 0), "{end:?}");
    })
    .await
    .expect("churn took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_vanishes_without_delete_is_cleaned_up() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let sfu = sfu(10, 10);
        let publisher = Publisher::start(&sfu, "gone", "speaker", 30, 2, 500).await;
        let mut v = Viewer::start(&sfu, "gone").await;
        assert!(tokio::time::timeout(Duration::from_secs(5), v.rx.recv()).await.is_ok());
        assert_eq!(sfu.stats().sessions, 2);
        // The browser tab disappears: its connection closes, nobody sends DELETE.
        let t = Instant::now();
        let _ = v.bot.pc.close().await;
        while sfu.stats().sessions > 1 {
            assert!(t.elapsed() < Duration::from_secs(80), "viewer session never cleaned up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("vanished viewer cleaned up after {:?}", t.elapsed());
        assert_eq!(sfu.stats().peer_connections, 1);
        publisher.stop().await;
        sfu.close_session(publisher.session).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negotiated_viewer_that_never_connects_is_released_at_the_ice_timeout() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let sfu = shangliang_sfu::Sfu::new(shangliang_sfu::SfuConfig { ice_timeout: Duration::from_secs(3), ..Default::default() });
        let mut b = bot().await;
        b.recv_only(RtpCodecKind::Audio).await;
        b.recv_only(RtpCodecKind::Video).await;
        let offer = b.offer().await;
        let _ = b.pc.close().await; // the client never answers our checks: it is gone
        // A member whose subscriber leg was never offered (an empty room) is not timed out.
        let (member, _ev) = sfu.join("stage", "bob").await.unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            sfu.whep("stage", &offer).await.expect("whep");
        }
        if t.elapsed() < Duration::from_secs(2) {
            assert_eq!(sfu.stats().sessions, 6, "the viewers are there until their timeout");
        }
        while sfu.stats().sessions > 1 {
            assert!(t.elapsed() < Duration::from_secs(15), "unconnected viewers were never released: {:?}", sfu.stats());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(t.elapsed() >= Duration::from_millis(2_900), "released before the timeout");
        let st = sfu.stats();
        assert_eq!((st.sessions, st.peer_connections), (1, 1), "{st:?}");
        member.leave().await;
        assert_eq!(sfu.stats().rooms, 0);
    })
    .await
    .expect("bounded");
}
