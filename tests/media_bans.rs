//! A banned member gets no media: the ban ends their participation and WHIP ingests; `join`,
//! a publish offer and WHIP are refused while it holds (the media plane asks the activity's
//! moderation), and allowed again once it is lifted.
#![allow(missing_docs)]

mod common;
#[path = "../sfu/tests/common/mod.rs"]
mod bots;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, TestHub, cmd};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use shangliang_signaling::consult::Command;
use shangliang_signaling::media::{MediaErrorCode, MediaEvent, MediaRequest};
use shangliang_signaling::{ClientMsg, Role, ServerMsg};
use webrtc::media_stream::track_local::TrackLocal;

async fn media(c: &mut Client, id: u32, req: MediaRequest) -> MediaEvent {
    c.send(&ClientMsg::Media { id, req }).await;
    loop {
        match c.recv().await {
            ServerMsg::Media { id: Some(i), ev } if i == id => return ev,
            _ => continue,
        }
    }
}

async fn sending_offer(ssrc: u32) -> (bots::Bot, String) {
    let mut b = bots::bot().await;
    b.pc.add_track(bots::local_track(RtpCodecKind::Video, bots::vp8(), ssrc) as Arc<dyn TrackLocal>).await.unwrap();
    let o = b.offer().await;
    (b, o)
}

async fn whip(h: &TestHub, token: &str, offer: String) -> (u16, String) {
    let r = reqwest::Client::new().post(h.http("/whip/demo")).header("content-type", "application/sdp").bearer_auth(token).body(offer).send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = if status == 201 { serde_json::Value::Null } else { r.json().await.unwrap() };
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

fn banned(ev: &MediaEvent) -> bool {
    matches!(ev, MediaEvent::Error { code: MediaErrorCode::Forbidden, message } if message.contains("banned"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_member_cannot_join_publish_or_whip_until_unbanned() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let h = TestHub::start(|_| {}).await;
        let mut moderator = h.client(Role::Moderator, "chair").await;
        let mut alice = h.client(Role::Member, "alice").await;
        assert!(matches!(media(&mut alice, 1, MediaRequest::Join).await, MediaEvent::Joined { .. }), "before the ban");
        let alice_token = h.token(Role::Member, "alice");
        let (_b0, offer) = sending_offer(10).await;
        assert_eq!(whip(&h, &alice_token, offer).await.0, 201, "a WHIP ingest before the ban");
        assert_eq!(h.hub.media.sfu.stats().sessions, 2);

        cmd(&mut moderator, Command::Ban { who: "member:alice".into(), reason: "disruption".into() }).await.expect("ban");
        // What she had going ends: her WHIP ingest and her participation (the SFU says she left).
        for _ in 0..100 {
            if h.hub.media.sfu.stats().sessions == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(h.hub.media.sfu.stats().sessions, 0, "the ban ends her media");
        let left = loop {
            match alice.recv().await {
                ServerMsg::Media { id: None, ev: MediaEvent::Left } => break true,
                ServerMsg::Media { .. } => continue,
                _ => continue,
            }
        };
        assert!(left);
        let ev = media(&mut alice, 5, MediaRequest::Join).await;
        assert!(banned(&ev), "join again on the same connection: {ev:?}");

        let (_b1, offer) = sending_offer(11).await;
        // A new join (on another connection) is refused.
        let mut alice2 = h.client(Role::Member, "alice").await;
        let ev = media(&mut alice2, 3, MediaRequest::Join).await;
        assert!(banned(&ev), "join of a banned member: {ev:?}");
        // WHIP with her token is refused with its own code.
        assert_eq!(whip(&h, &alice_token, offer.clone()).await, (403, "banned".into()));
        // Nobody else is affected.
        let (_b2, bob_offer) = sending_offer(12).await;
        assert_eq!(whip(&h, &h.token(Role::Member, "bob"), bob_offer).await.0, 201, "another member publishes");

        cmd(&mut moderator, Command::Unban { who: "member:alice".into() }).await.expect("unban");
        assert!(matches!(media(&mut alice2, 4, MediaRequest::Join).await, MediaEvent::Joined { .. }), "after the ban is lifted");
        let (_b3, offer) = sending_offer(13).await;
        assert_eq!(whip(&h, &alice_token, offer).await.0, 201, "WHIP after the ban is lifted");
    })
    .await
    .expect("bounded");
}
