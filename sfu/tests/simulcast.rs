//! Simulcast: the SFU receives three layers by rid; each subscriber gets one, switchable.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

const RIDS: [&str; 3] = ["q", "h", "f"];
const SSRCS: [u32; 3] = [0x5100_0001, 0x5100_0002, 0x5100_0003];

/// Layer `l`'s payload: a VP8 descriptor and frame tag, then the layer index.
fn payload(l: usize, first: bool, key: bool) -> Bytes {
    let mut v = vec![if first { 0x10 } else { 0x00 }, if key { 0x00 } else { 0x01 }, 0xee, l as u8];
    v.resize(300, 0);
    Bytes::from(v)
}

async fn simulcast_publisher(sfu: &shangliang_sfu::Sfu, room: &str) -> (Bot, Arc<AtomicBool>) {
    let (b, stop, _layers) = simulcast_publisher_with_layers(sfu, room).await;
    (b, stop)
}

/// Like [`simulcast_publisher`]; the returned count is how many layers (from q up) it sends.
async fn simulcast_publisher_with_layers(sfu: &shangliang_sfu::Sfu, room: &str) -> (Bot, Arc<AtomicBool>, Arc<std::sync::atomic::AtomicUsize>) {
    let layers_on = Arc::new(std::sync::atomic::AtomicUsize::new(3));
    let mut b = bot().await;
    let codings = (0..3)
        .map(|i| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { rid: RIDS[i].to_owned(), ssrc: Some(SSRCS[i]), ..Default::default() },
            codec: vp8(),
            ..Default::default()
        })
        .collect();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "sim".into(),
        "sim-video".into(),
        "sim-video".into(),
        RtpCodecKind::Video,
        codings,
    )));
    let sender = b.pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.unwrap();
    let offer = b.offer().await;
    assert!(offer.contains("a=rid:q send"), "the bot offers simulcast:\n{offer}");
    let (_id, answer) = sfu.whip(room, "presenter", &offer).await.expect("whip");
    b.accept_answer(answer).await;
    b.wait_connected().await;
    let params = sender.get_parameters().await.unwrap();
    let pt = params.rtp_parameters.codecs.iter().find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("video/VP8")).unwrap().payload_type;
    let ext = |uri: &str| params.rtp_parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
    let mid_id = ext("urn:ietf:params:rtp-hdrext:sdes:mid").expect("mid negotiated");
    let rid_id = ext("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id").expect("rid negotiated");
    let mid = b.pc.get_transceivers().await[0].mid().await.unwrap().unwrap_or_else(|| "0".into());
    let want_key = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (track, want_key) = (Arc::clone(&track), Arc::clone(&want_key));
        tokio::spawn(async move {
            while let Some(TrackLocalEvent::OnRtcpPacket(_)) = track.poll().await {
                want_key.store(true, Ordering::SeqCst);
            }
        });
    }
    {
        let (stop, layers_on) = (Arc::clone(&stop), Arc::clone(&layers_on));
        tokio::spawn(async move {
            let mut seq = [100u16, 20_000, 40_000];
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let key = want_key.swap(false, Ordering::SeqCst);
                let ts = (start.elapsed().as_micros() as u64 * 9 / 100) as u32;
                for l in 0..layers_on.load(Ordering::SeqCst) {
                    for k in 0..2 {
                        let mut h = rtp::header::Header {
                            version: 2,
                            payload_type: pt,
                            sequence_number: seq[l],
                            timestamp: ts,
                            ssrc: SSRCS[l],
                            marker: k == 1,
                            ..Default::default()
                        };
                        h.set_extension(mid_id, Bytes::from(mid.clone().into_bytes())).unwrap();
                        h.set_extension(rid_id, Bytes::from(RIDS[l].as_bytes().to_vec())).unwrap();
                        seq[l] = seq[l].wrapping_add(1);
                        if track.write_rtp(rtp::Packet { header: h, payload: payload(l, k == 0, key) }).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    (b, stop, layers_on)
}

fn layer_of(p: &Rx) -> u8 {
    p.payload[3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_simulcast_layer_keeps_the_stream_continuous() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let (_pub, stop) = simulcast_publisher(&sfu, "sim").await;
        let mut v = Viewer::start(&sfu, "sim").await;
        // Default: the highest layer.
        let rx = v.collect(Duration::from_millis(1500)).await;
        let video: Vec<Rx> = rx.into_iter().filter(|p| p.video).collect();
        assert!(video.len() > 30, "{}", video.len());
        assert!(video.iter().all(|p| layer_of(p) == 2), "only layer f before any switch");
        let mut all = video;
        for (rid, layer) in [("q", 0u8), ("h", 1), ("f", 2)] {
            sfu.set_viewer_layer(v.session, rid).await.unwrap();
            let rx: Vec<Rx> = v.collect(Duration::from_millis(1500)).await.into_iter().filter(|p| p.video).collect();
            let first_new = rx.iter().position(|p| layer_of(p) == layer).unwrap_or_else(|| panic!("never switched to {rid}"));
            assert!(is_key_start(&rx[first_new].payload), "switch to {rid} did not start on a keyframe");
            assert!(rx[first_new..].iter().all(|p| layer_of(p) == layer), "layers mixed after switching to {rid}");
            all.extend(rx);
        }
        // One SSRC, and sequence numbers continuous across all three switches.
        assert!(all.iter().all(|p| p.ssrc == all[0].ssrc));
        for w in all.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "gap or jump at layer {} -> {}", layer_of(&w[0]), layer_of(&w[1]));
            let dts = w[1].ts.wrapping_sub(w[0].ts);
            assert!(dts < 0x8000_0000, "timestamp went backwards at a switch");
        }
        stop.store(true, Ordering::SeqCst);
    })
    .await
    .expect("bounded");
}

/// A member publishing a camera and a screen, both simulcast with the same rids (q, h, f) and
/// their own SSRCs; payload byte 2 names the track (0xca camera, 0x5c screen), byte 3 the layer.
async fn camera_and_screen(h: &shangliang_sfu::ParticipantHandle) -> (Bot, Arc<AtomicBool>) {
    const CAM: [u32; 3] = [0x6100_0001, 0x6100_0002, 0x6100_0003];
    const SCR: [u32; 3] = [0x6200_0001, 0x6200_0002, 0x6200_0003];
    let mut b = bot().await;
    let mut tracks = Vec::new();
    for (name, ssrcs) in [("cam", CAM), ("scr", SCR)] {
        let codings = (0..3)
            .map(|i| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { rid: RIDS[i].to_owned(), ssrc: Some(ssrcs[i]), ..Default::default() },
                codec: vp8(),
                ..Default::default()
            })
            .collect();
        let t = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(format!("{name}-s"), format!("{name}-t"), format!("{name}-t"), RtpCodecKind::Video, codings)));
        let sender = b.pc.add_track(Arc::clone(&t) as Arc<dyn TrackLocal>).await.unwrap();
        tracks.push((t, sender, ssrcs, if name == "cam" { 0xcau8 } else { 0x5c }));
    }
    let offer = b.offer().await;
    let answer = h.publish_offer(&offer).await.expect("publish_offer");
    b.accept_answer(answer).await;
    b.wait_connected().await;
    let stop = Arc::new(AtomicBool::new(false));
    let transceivers = b.pc.get_transceivers().await;
    for (track, sender, ssrcs, tag) in tracks {
        let params = sender.get_parameters().await.unwrap();
        let pt = params.rtp_parameters.codecs.iter().find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("video/VP8")).unwrap().payload_type;
        let ext = |uri: &str| params.rtp_parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
        let (mid_id, rid_id) = (ext("urn:ietf:params:rtp-hdrext:sdes:mid").unwrap(), ext("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id").unwrap());
        let mut mid = None;
        for t in &transceivers {
            if t.sender().await.ok().flatten().is_some_and(|s| s.id() == sender.id()) {
                mid = t.mid().await.unwrap();
            }
        }
        let mid = mid.expect("a mid");
        let want_key = Arc::new(AtomicBool::new(true));
        {
            let (track, want_key) = (Arc::clone(&track), Arc::clone(&want_key));
            tokio::spawn(async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(_)) = track.poll().await {
                    want_key.store(true, Ordering::SeqCst);
                }
            });
        }
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut seq = [10u16, 20_000, 40_000];
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let key = want_key.swap(false, Ordering::SeqCst);
                let ts = (start.elapsed().as_micros() as u64 * 9 / 100) as u32;
                for l in 0..3 {
                    let mut hd = rtp::header::Header { version: 2, payload_type: pt, sequence_number: seq[l], timestamp: ts, ssrc: ssrcs[l], marker: true, ..Default::default() };
                    hd.set_extension(mid_id, Bytes::from(mid.clone().into_bytes())).unwrap();
                    hd.set_extension(rid_id, Bytes::from(RIDS[l].as_bytes().to_vec())).unwrap();
                    seq[l] = seq[l].wrapping_add(1);
                    let mut p = payload(l, true, key).to_vec();
                    p[2] = tag;
                    if track.write_rtp(rtp::Packet { header: hd, payload: Bytes::from(p) }).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    (b, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_and_a_screen_both_simulcast_with_the_same_rids_stay_apart_and_switch_apart() {
    use shangliang_sfu::{MediaKind, SfuEvent};
    use webrtc::peer_connection::RTCSessionDescription;
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let (alice, _a_ev) = sfu.join("room", "alice").await.unwrap();
        let (bob, mut bob_ev) = sfu.join("room", "bob").await.unwrap();
        let mut b = bot().await;
        let mut rx = collect_tracks(&mut b);
        let (_pub, stop) = camera_and_screen(&alice).await;
        // Bob answers the subscriber offers until both video tracks are his.
        let mut videos = Vec::new();
        let t = Instant::now();
        while videos.len() < 2 {
            assert!(t.elapsed() < Duration::from_secs(10), "bob did not get both video tracks");
            match tokio::time::timeout(Duration::from_secs(5), bob_ev.recv()).await.expect("events").unwrap() {
                SfuEvent::SubscriberOffer { sdp } => {
                    b.pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                    let a = b.pc.create_answer(None).await.unwrap();
                    b.pc.set_local_description(a).await.unwrap();
                    let _ = tokio::time::timeout(Duration::from_secs(5), b.gathered.wait_for(|g| *g)).await;
                    bob.subscriber_answer(&b.pc.local_description().await.unwrap().sdp).await.unwrap();
                }
                SfuEvent::TrackPublished { track, kind: MediaKind::Video, .. } => videos.push(track),
                _ => {}
            }
        }
        // Each of bob's streams carries one of alice's tracks, at the top layer.
        let by_ssrc = |rx: &[Rx]| {
            let mut m: std::collections::HashMap<u32, Vec<(u8, u8)>> = Default::default();
            for p in rx.iter().filter(|p| p.video) {
                m.entry(p.ssrc).or_default().push((p.payload[2], layer_of(p)));
            }
            m
        };
        let mut got = by_ssrc(&collect_for(&mut rx, Duration::from_secs(2)).await);
        for _ in 0..10 {
            if got.len() == 2 {
                break;
            }
            // A renegotiation may still be in flight: answer it and look again.
            while let Ok(SfuEvent::SubscriberOffer { sdp }) = bob_ev.try_recv() {
                b.pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                let a = b.pc.create_answer(None).await.unwrap();
                b.pc.set_local_description(a).await.unwrap();
                let _ = tokio::time::timeout(Duration::from_secs(5), b.gathered.wait_for(|g| *g)).await;
                bob.subscriber_answer(&b.pc.local_description().await.unwrap().sdp).await.unwrap();
            }
            got = by_ssrc(&collect_for(&mut rx, Duration::from_secs(1)).await);
        }
        assert_eq!(got.len(), 2, "two video streams for bob: {:?}", got.keys());
        let mut tags: Vec<u8> = Vec::new();
        for (ssrc, packets) in &got {
            let tag = packets[0].0;
            assert!(packets.iter().all(|p| p.0 == tag), "stream {ssrc:x} mixes the camera and the screen");
            assert!(packets.iter().all(|p| p.1 == 2), "stream {ssrc:x} is not on the top layer only");
            tags.push(tag);
        }
        tags.sort();
        assert_eq!(tags, vec![0x5c, 0xca], "one stream is the screen, the other the camera");
        // Bob turns one track down to q: only that one switches.
        bob.set_layer(videos[0], "q").await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        while rx.try_recv().is_ok() {}
        let got = by_ssrc(&collect_for(&mut rx, Duration::from_secs(2)).await);
        let layers: Vec<std::collections::BTreeSet<u8>> = got.values().map(|v| v.iter().map(|p| p.1).collect()).collect();
        let mut seen: Vec<Vec<u8>> = layers.iter().map(|s| s.iter().copied().collect()).collect();
        seen.sort();
        assert_eq!(seen, vec![vec![0], vec![2]], "one stream at q, the other still at f");
        for (ssrc, packets) in &got {
            assert!(packets.iter().all(|p| p.0 == packets[0].0), "stream {ssrc:x} mixes tracks after the switch");
        }
        stop.store(true, Ordering::SeqCst);
        alice.leave().await;
        bob.leave().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_tap_follows_a_simulcast_publisher_at_its_best_layer_on_one_continuous_stream() {
    use shangliang_sfu::StageEvent;
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let mut tap = sfu.stage_tap("sim");
        let (_pub, stop, layers_on) = simulcast_publisher_with_layers(&sfu, "sim").await;
        let mut packets: Vec<(u16, u8, bool)> = Vec::new();
        let mut collect = async |d: Duration, packets: &mut Vec<(u16, u8, bool)>| {
            let end = tokio::time::Instant::now() + d;
            while let Ok(Some(ev)) = tokio::time::timeout_at(end, tap.recv()).await {
                if let StageEvent::Packet(p) = ev {
                    packets.push((p.seq, p.payload[3], p.payload[1] & 0x01 == 0 && p.payload[0] & 0x10 != 0));
                }
            }
        };
        // Every change of layer (and the start) is on a keyframe of the new layer.
        let switches_on_keyframes = |packets: &[(u16, u8, bool)]| (0..packets.len()).filter(|&i| i == 0 || packets[i].1 != packets[i - 1].1).all(|i| packets[i].2);
        collect(Duration::from_secs(2), &mut packets).await;
        assert!(packets.len() > 30, "tapped {} packets", packets.len());
        assert!(switches_on_keyframes(&packets), "a layer switch did not start on a keyframe");
        // The layers are heard in turn as the publisher starts; once all three are, the top one.
        let tail = &packets[packets.len() - 10..];
        assert!(tail.iter().all(|p| p.1 == 2), "with all three layers heard the tap is not on the top one: {tail:?}");
        // The top layer stops (the sender's estimate dropped): within half a second the tap
        // follows h, from h's keyframe, on the same continuous numbers.
        let before = packets.len();
        layers_on.store(2, Ordering::SeqCst);
        collect(Duration::from_secs(3), &mut packets).await;
        let first_h = before + packets[before..].iter().position(|p| p.1 == 1).expect("the tap never followed layer h");
        assert!(packets[first_h..].iter().all(|p| p.1 == 1), "layers mixed after the switch");
        assert!(switches_on_keyframes(&packets), "a layer switch did not start on a keyframe");
        assert!(packets.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1)), "the tapped stream has a gap or a repeat");
        stop.store(true, Ordering::SeqCst);
    })
    .await
    .expect("bounded");
}
