//! Admission: offers without credentials cannot hold the capacity members and real viewers
//! need — a per-address rate limit, a cap on pending (unconnected) viewers apart from the
//! connected ones, and a short deadline for ICE to complete.
#![allow(missing_docs)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use shangliang_sfu::{Sfu, SfuConfig, SfuError};
use webrtc::media_stream::track_local::TrackLocal;

fn addr(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconnected_offers_cannot_starve_members_or_a_real_viewer() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = Sfu::new(SfuConfig {
            max_viewers_per_node: 2,
            max_pending_viewers: 3,
            pending_timeout: Duration::from_millis(1_500),
            whep_per_address_per_minute: 60,
            whep_burst: 4,
            ..SfuConfig::default()
        });
        let mut b = bot().await;
        b.recv_only(RtpCodecKind::Audio).await;
        b.recv_only(RtpCodecKind::Video).await;
        let offer = b.offer().await;
        let _ = b.pc.close().await; // this client never answers our checks

        // The flood from one address: three pending, then the pending cap, then the rate limit.
        let t = Instant::now();
        for _ in 0..3 {
            sfu.whep_from("stage", &offer, addr("192.0.2.7")).await.expect("admitted, pending");
        }
        assert!(matches!(sfu.whep_from("stage", &offer, addr("192.0.2.7")).await, Err(SfuError::TooManyPending { max: 3 })));
        for _ in 0..20 {
            assert!(matches!(sfu.whep_from("stage", &offer, addr("192.0.2.7")).await, Err(SfuError::RateLimited)));
        }
        // Another address is not rate-limited, but the pending places are taken for now.
        assert!(matches!(sfu.whep_from("stage", &offer, addr("192.0.2.8")).await, Err(SfuError::TooManyPending { .. })));
        let st = sfu.stats();
        assert_eq!((st.pending_viewers, st.refused_pending, st.refused_rate_limited), (3, 2, 20), "{st:?}");

        // Members are never viewers: their join and WHIP go through during the flood.
        let (member, _ev) = sfu.join("stage", "alice").await.expect("a member joins");
        let mut p = bot().await;
        p.pc.add_track(local_track(RtpCodecKind::Video, vp8(), 7) as Arc<dyn TrackLocal>).await.unwrap();
        let (whip, _) = sfu.whip("stage", "bob", &p.offer().await).await.expect("a member publishes over WHIP");

        // The unconnected offers are released at the pending deadline, quietly and counted.
        while sfu.stats().pending_viewers > 1 {
            assert!(t.elapsed() < Duration::from_secs(10), "pending viewers were never released: {:?}", sfu.stats());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(t.elapsed() >= Duration::from_millis(1_400), "released before the deadline");
        // (the WHIP's ingest is not a viewer; its own ICE deadline is the long one)
        let st = sfu.stats();
        assert!(st.pending_viewers <= 1 && st.expired_pending >= 3, "{st:?}");

        // A real viewer now gets in and connects; pending ones never took a connected place.
        let v = Viewer::start(&sfu, "stage").await;
        let v2 = Viewer::start(&sfu, "stage").await;
        for _ in 0..100 {
            if sfu.stats().pending_viewers == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(sfu.whep("stage", &offer).await, Err(SfuError::NodeFull { max: 2 })), "two connected viewers fill the node");
        assert!(sfu.close_session(v.session).await && sfu.close_session(v2.session).await && sfu.close_session(whip).await);
        member.leave().await;
        let _ = p.pc.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_spread_over_many_addresses_meets_the_activity_limit() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let sfu = Sfu::new(SfuConfig {
            max_pending_viewers: 20,
            whep_per_address_per_minute: 60,
            whep_burst: 10,
            whep_per_activity_per_minute: 60,
            whep_activity_burst: 3,
            ..SfuConfig::default()
        });
        let mut b = bot().await;
        b.recv_only(RtpCodecKind::Audio).await;
        let offer = b.offer().await;
        let _ = b.pc.close().await;
        // Every offer from its own address: each address is far from its own limit.
        for i in 1..=3 {
            sfu.whep_from("stage", &offer, addr(&format!("198.51.100.{i}"))).await.expect("within the activity's burst");
        }
        for i in 4..=9 {
            let r = sfu.whep_from("stage", &offer, addr(&format!("198.51.100.{i}"))).await;
            assert!(matches!(r, Err(SfuError::ActivityRateLimited)), "offer {i}: {r:?}");
        }
        // Another activity has its own allowance; an authenticated viewer is not limited.
        sfu.whep_from("other", &offer, addr("198.51.100.10")).await.expect("another activity");
        sfu.whep_from("stage", &offer, None).await.expect("authenticated WHEP is not rate-limited");
        let st = sfu.stats();
        assert_eq!((st.refused_activity_rate_limited, st.refused_rate_limited, st.pending_viewers), (6, 0, 5), "{st:?}");
    })
    .await
    .expect("bounded");
}
