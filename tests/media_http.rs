//! WHIP/WHEP over HTTP with webrtc bots: a member publishes, the public watches, resources are
//! deleted, and every refusal has its status and code.
#![allow(missing_docs)]

mod common;
#[path = "../sfu/tests/common/mod.rs"]
mod bots;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bots::{Publisher, Signal, collect_for, collect_tracks, is_key_start};
use common::TestHub;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use shangliang_sfu::SessionId;
use shangliang_signaling::Role;

/// The SFU binds one ephemeral UDP port per hub (the old port-range argument is ignored).
async fn hub(_first_port: u16, tune: impl FnOnce(&mut shangliang::server::ServeConfig)) -> TestHub {
    TestHub::start(|c| {
        tune(c);
    })
    .await
}

async fn post_sdp(url: &str, token: Option<&str>, sdp: String) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(url).header("content-type", "application/sdp").body(sdp);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("http")
}

async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.expect("json error body");
    (status, v["error"].as_str().unwrap_or_default().to_owned())
}

/// A WHEP viewer bot: offer, POST, answer; returns the bot, its Location and its packets.
async fn whep_viewer(h: &TestHub, activity: &str, token: Option<&str>) -> (bots::Bot, String, tokio::sync::mpsc::UnboundedReceiver<bots::Rx>) {
    let mut b = bots::bot().await;
    b.recv_only(RtpCodecKind::Audio).await;
    b.recv_only(RtpCodecKind::Video).await;
    let offer = b.offer().await;
    let r = post_sdp(&h.http(&format!("/whep/{activity}")), token, offer).await;
    assert_eq!(r.status().as_u16(), 201, "whep: {:?}", r.text().await);
    assert_eq!(r.headers()["content-type"], "application/sdp");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("/whep/{activity}/")), "{location}");
    b.accept_answer(r.text().await.unwrap()).await;
    b.wait_connected().await;
    let rx = collect_tracks(&mut b);
    (b, location, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_publishes_by_whip_and_the_public_watches_by_whep_without_a_token() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let h = hub(52_000, |_| {}).await;
        let token = h.token(Role::Member, "alice");
        let whip_url = h.http("/whip/demo");
        let location = Arc::new(Mutex::new(String::new()));
        let loc = Arc::clone(&location);
        let answerer: Box<bots::Answerer> = Box::new(move |offer: String| {
            let (url, token, loc) = (whip_url.clone(), token.clone(), Arc::clone(&loc));
            Box::pin(async move {
                let r = post_sdp(&url, Some(&token), offer).await;
                assert_eq!(r.status().as_u16(), 201);
                *loc.lock().unwrap() = r.headers()["location"].to_str().unwrap().to_owned();
                (SessionId(0), r.text().await.unwrap())
            })
        });
        let publisher = Publisher::start_via(Signal::Remote(&answerer), 30, 2, 400).await;
        let whip_location = location.lock().unwrap().clone();
        assert!(whip_location.starts_with("/whip/demo/"));

        let (viewer, whep_location, mut rx) = whep_viewer(&h, "demo", None).await;
        let got = collect_for(&mut rx, Duration::from_secs(3)).await;
        let video: Vec<_> = got.iter().filter(|p| p.video).collect();
        let audio = got.iter().filter(|p| !p.video).count();
        assert!(video.len() > 30 && audio > 30, "video {} audio {audio}", video.len());
        assert!(is_key_start(&video[0].payload), "the viewer starts on a keyframe");
        assert_eq!(h.hub.media.sfu.stats().sessions, 2);

        // DELETE frees the resource; a second DELETE and a forged one are 404.
        let http = reqwest::Client::new();
        assert_eq!(http.delete(h.http(&whep_location)).send().await.unwrap().status().as_u16(), 200);
        assert_eq!(http.delete(h.http(&whep_location)).send().await.unwrap().status().as_u16(), 404);
        let forged = format!("/whip/demo/{}-000000000000000000000000", whip_location.rsplit('/').next().unwrap().split('-').next().unwrap());
        assert_eq!(http.delete(h.http(&forged)).send().await.unwrap().status().as_u16(), 404);
        assert_eq!(h.hub.media.sfu.stats().sessions, 1);
        publisher.stop().await;
        assert_eq!(http.delete(h.http(&whip_location)).send().await.unwrap().status().as_u16(), 200);
        assert_eq!(h.hub.media.sfu.stats().sessions, 0);
        assert_eq!(h.hub.media.sfu.stats().peer_connections, 0);
        let _ = viewer.pc.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_refusals_have_their_status_and_code() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let h = hub(52_500, |c| {
            c.sfu.max_participants_per_room = 1;
            c.sfu.max_viewers_per_node = 1;
        })
        .await;
        let mut b = bots::bot().await;
        let video = bots::local_track(RtpCodecKind::Video, bots::vp8(), 1);
        b.pc.add_track(video as Arc<dyn webrtc::media_stream::track_local::TrackLocal>).await.unwrap();
        let offer = b.offer().await;
        let member = h.token(Role::Member, "alice");

        // WHIP: no token 401, viewer 403, token for another activity 403, unknown activity 404.
        assert_eq!(error_code(post_sdp(&h.http("/whip/demo"), None, offer.clone()).await).await, (401, "unauthenticated".into()));
        let viewer = h.token(Role::Viewer, "v");
        assert_eq!(error_code(post_sdp(&h.http("/whip/demo"), Some(&viewer), offer.clone()).await).await, (403, "forbidden".into()));
        let other = h.token_with(Role::Member, "alice", "demo-room", 600);
        assert_eq!(error_code(post_sdp(&h.http("/whip/demo"), Some(&other), offer.clone()).await).await, (403, "forbidden".into()));
        assert_eq!(error_code(post_sdp(&h.http("/whip/nope"), Some(&member), offer.clone()).await).await, (404, "no_such_activity".into()));
        assert_eq!(error_code(post_sdp(&h.http("/whip/demo"), Some("x.y.z"), offer.clone()).await).await, (401, "invalid_token".into()));
        // Bad bodies: not SDP 400, too large 413, wrong content type 415.
        assert_eq!(error_code(post_sdp(&h.http("/whip/demo"), Some(&member), "hello".into()).await).await, (400, "invalid_sdp".into()));
        let big = format!("{offer}{}", "a=x-padding\r\n".repeat(2000));
        assert_eq!(error_code(post_sdp(&h.http("/whep/demo"), None, big).await).await, (413, "sdp_too_large".into()));
        let r = reqwest::Client::new().post(h.http("/whep/demo")).header("content-type", "text/plain").body(offer.clone()).send().await.unwrap();
        assert_eq!(error_code(r).await, (415, "unsupported_media_type".into()));
        // A sending offer is not a viewer's.
        assert_eq!(error_code(post_sdp(&h.http("/whep/demo"), None, offer.clone()).await).await, (400, "invalid_sdp".into()));

        // Room full: the room takes one publisher.
        let r = post_sdp(&h.http("/whip/demo"), Some(&member), offer.clone()).await;
        assert_eq!(r.status().as_u16(), 201);
        let mut b2 = bots::bot().await;
        b2.pc.add_track(bots::local_track(RtpCodecKind::Video, bots::vp8(), 2) as Arc<dyn webrtc::media_stream::track_local::TrackLocal>).await.unwrap();
        let offer2 = b2.offer().await;
        let bob = h.token(Role::Member, "bob");
        assert_eq!(error_code(post_sdp(&h.http("/whip/demo"), Some(&bob), offer2).await).await, (503, "room_full".into()));

        // A room's media needs a token (any role of that activity); node full at one viewer.
        let mut v = bots::bot().await;
        v.recv_only(RtpCodecKind::Video).await;
        let voffer = v.offer().await;
        assert_eq!(error_code(post_sdp(&h.http("/whep/demo-room"), None, voffer.clone()).await).await, (401, "unauthenticated".into()));
        let room_viewer = h.token_with(Role::Viewer, "v", "demo-room", 600);
        let r = post_sdp(&h.http("/whep/demo-room"), Some(&room_viewer), voffer.clone()).await;
        assert_eq!(r.status().as_u16(), 201);
        // Connected viewers count against the node's limit (pending ones are capped apart).
        v.accept_answer(r.text().await.unwrap()).await;
        v.wait_connected().await;
        for _ in 0..100 {
            if h.hub.media.sfu.stats().pending_viewers == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut v2 = bots::bot().await;
        v2.recv_only(RtpCodecKind::Video).await;
        let voffer = v2.offer().await;
        assert_eq!(error_code(post_sdp(&h.http("/whep/demo"), None, voffer).await).await, (503, "node_full".into()));
        let _ = (b.pc.close().await, b2.pc.close().await, v.pc.close().await);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn whip_and_whep_answer_a_cors_preflight_from_another_origin() {
    let h = hub(47_500, |_| {}).await;
    for path in ["/whep/demo", "/whip/demo"] {
        let r = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, h.http(path))
            .header("origin", "https://player.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let allowed = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_ascii_lowercase())
                .unwrap_or_default()
        };
        assert_eq!(allowed("access-control-allow-origin"), "*");
        assert!(allowed("access-control-allow-methods").contains("post"), "{path}");
        assert!(allowed("access-control-allow-headers").contains("authorization"), "{path}");
    }
    // The answer's Location is readable by the page (exposed), so it can DELETE later.
    let r = reqwest::Client::new()
        .post(h.http("/whep/demo"))
        .header("origin", "https://player.example")
        .header("content-type", "application/sdp")
        .body("not sdp")
        .send()
        .await
        .unwrap();
    let expose = r
        .headers()
        .get("access-control-expose-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(expose.contains("location"), "{expose:?}");
}
