//! The port-exhaustion attack of issue 15, against the hub over HTTP: many unauthenticated
//! WHEP offers to a node with a small capacity. They are rate-limited per client address,
//! capped while pending and released when they do not connect — and meanwhile a member's WHIP
//! and room `join` succeed, and afterwards a real viewer gets in.
#![allow(missing_docs)]

mod common;
#[path = "../sfu/tests/common/mod.rs"]
mod bots;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestHub;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use shangliang_signaling::media::{MediaEvent, MediaRequest};
use shangliang_signaling::{ClientMsg, Role, ServerMsg};

async fn post_sdp(client: &reqwest::Client, url: &str, token: Option<&str>, sdp: String) -> reqwest::Response {
    let mut req = client.post(url).header("content-type", "application/sdp").body(sdp);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("http")
}

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (status, v["error"].as_str().unwrap_or_default().to_owned())
}

/// A client whose requests come from `ip` (another loopback address: another client address).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(Some(ip.parse().unwrap())).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_whep_floods_do_not_deny_a_members_whip_and_join() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let h = TestHub::start(|c| {
            c.sfu.max_viewers_per_node = 10;
            c.sfu.max_pending_viewers = 4;
            c.sfu.pending_timeout = Duration::from_millis(1_500);
            c.sfu.whep_burst = 8;
        })
        .await;
        let mut b = bots::bot().await;
        b.recv_only(RtpCodecKind::Audio).await;
        b.recv_only(RtpCodecKind::Video).await;
        let offer = b.offer().await;
        let _ = b.pc.close().await; // the attacker never answers a check

        // 40 offers from one address to the public livestream "demo".
        let attacker = client_from("127.0.0.2");
        let t = Instant::now();
        let mut seen = std::collections::BTreeMap::<(u16, String), usize>::new();
        for _ in 0..40 {
            let r = post_sdp(&attacker, &h.http("/whep/demo"), None, offer.clone()).await;
            *seen.entry(code(r).await).or_default() += 1;
        }
        assert_eq!(seen.get(&(201, String::new())), Some(&4), "four pending at most: {seen:?}");
        assert_eq!(seen.get(&(503, "node_busy".into())), Some(&4), "the burst's rest meets the pending cap: {seen:?}");
        assert_eq!(seen.get(&(429, "rate_limited".into())), Some(&32), "then the per-address limit: {seen:?}");
        let st = h.hub.media.sfu.stats();
        assert_eq!((st.pending_viewers, st.refused_pending, st.refused_rate_limited), (4, 4, 32), "{st:?}");

        // During the flood a member publishes over WHIP and another joins the room.
        let mut p = bots::bot().await;
        p.pc.add_track(bots::local_track(RtpCodecKind::Video, bots::vp8(), 9) as Arc<dyn webrtc::media_stream::track_local::TrackLocal>)
            .await
            .unwrap();
        let alice = h.token(Role::Member, "alice");
        let r = post_sdp(&reqwest::Client::new(), &h.http("/whip/demo"), Some(&alice), p.offer().await).await;
        assert_eq!(r.status().as_u16(), 201, "a member's WHIP during the flood");
        let mut bob = h.client(Role::Member, "bob").await;
        bob.send(&ClientMsg::Media { id: 1, req: MediaRequest::Join }).await;
        let joined = loop {
            match bob.recv().await {
                ServerMsg::Media { id: Some(1), ev } => break ev,
                _ => continue,
            }
        };
        assert!(matches!(joined, MediaEvent::Joined { .. }), "a member's join during the flood: {joined:?}");

        // The unconnected offers are released at the pending deadline.
        while h.hub.media.sfu.stats().pending_viewers > 0 {
            assert!(t.elapsed() < Duration::from_secs(15), "never released: {:?}", h.hub.media.sfu.stats());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(h.hub.media.sfu.stats().expired_pending >= 4);

        // A real viewer from another address now watches.
        let mut v = bots::bot().await;
        v.recv_only(RtpCodecKind::Video).await;
        let r = post_sdp(&client_from("127.0.0.3"), &h.http("/whep/demo"), None, v.offer().await).await;
        assert_eq!(r.status().as_u16(), 201, "a viewer after the flood");
        v.accept_answer(r.text().await.unwrap()).await;
        v.wait_connected().await;
        let _ = (p.pc.close().await, v.pc.close().await);
    })
    .await
    .expect("bounded");
}
