//! The stage tap (`Sfu::stage_tap`, `Sfu::request_keyframe`) and the H.264 preference of
//! stages, pinned with webrtc bots on loopback so a rewrite of the SFU's internals can keep them.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use shangliang_sfu::{MediaKind, SessionId, StageEvent, StageTap, TrackId};
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

fn h264() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/H264".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
        rtcp_feedback: vec![],
    }
}

/// The first payload type of the answer's video section, and its rtpmap.
fn first_video_codec(answer: &str) -> String {
    let mline = answer.lines().find(|l| l.starts_with("m=video")).expect("video section");
    let pt = mline.split_whitespace().nth(3).expect("a payload type");
    answer.lines().find_map(|l| l.strip_prefix(&format!("a=rtpmap:{pt} "))).expect("rtpmap").trim().to_owned()
}

/// A WHIP/member publisher sending synthetic H.264 (STAP-A SPS/PPS + IDR when asked, else one
/// P slice per frame) at 30 fps and Opus-like audio every 20 ms. Its offer lists VP8 first (the
/// webrtc crate's default order), so H.264 is used only if the SFU's answer prefers it.
struct H264Publisher {
    bot: Bot,
    session: SessionId,
    answer: String,
    plis: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl H264Publisher {
    async fn start(sig: Signal<'_>) -> H264Publisher {
        let mut bot = bot().await;
        let video = local_track(RtpCodecKind::Video, h264(), VIDEO_SSRC);
        let audio = local_track(RtpCodecKind::Audio, opus(), AUDIO_SSRC);
        let vs = bot.pc.add_track(Arc::clone(&video) as Arc<dyn TrackLocal>).await.unwrap();
        let as_ = bot.pc.add_track(Arc::clone(&audio) as Arc<dyn TrackLocal>).await.unwrap();
        // Offer VP8 before H.264, as browsers do: only the SFU's preference makes H.264 first.
        let transceivers = bot.pc.get_transceivers().await;
        let codec = |rtp_codec: RTCRtpCodec, payload_type| RTCRtpCodecParameters { rtp_codec, payload_type };
        // (The video transceiver is the one that accepts video codecs; their order is not fixed.)
        let mut preferred = false;
        for t in &transceivers {
            preferred |= t.set_codec_preferences(vec![codec(vp8(), 96), codec(h264(), 125)]).await.is_ok();
        }
        assert!(preferred, "codec preferences on the video transceiver");
        let offer = bot.offer().await;
        let vp8_at = offer.find("VP8/90000").expect("offer has VP8");
        let h264_at = offer.find("H264/90000").expect("offer has H.264");
        assert!(vp8_at < h264_at, "the bot offers VP8 first");
        let (session, answer) = match sig {
            Signal::Whip(sfu, room, who) => sfu.whip(room, who, &offer).await.expect("whip"),
            Signal::Member(h) => (h.id(), h.publish_offer(&offer).await.expect("publish_offer")),
            Signal::Remote(f) => f(offer).await,
        };
        bot.accept_answer(answer.clone()).await;
        bot.wait_connected().await;
        let pt = |p: rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters, mime: &str| {
            p.rtp_parameters.codecs.iter().find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime)).map(|c| c.payload_type)
        };
        let vpt = pt(vs.get_parameters().await.unwrap(), "video/H264").expect("H.264 negotiated");
        let apt = pt(as_.get_parameters().await.unwrap(), "audio/opus").unwrap();
        let plis = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let want_key = Arc::new(AtomicBool::new(true));
        {
            let (video, plis, want_key) = (Arc::clone(&video), Arc::clone(&plis), Arc::clone(&want_key));
            tokio::spawn(async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(_)) = video.poll().await {
                    plis.fetch_add(1, Ordering::SeqCst);
                    want_key.store(true, Ordering::SeqCst);
                }
            });
        }
        let stop2 = Arc::clone(&stop);
        tokio::spawn(async move {
            let (mut seq, mut aseq, mut frame) = (100u16, 900u16, 0u32);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let start = Instant::now();
            let mut next_frame = start;
            while !stop2.load(Ordering::SeqCst) {
                tick.tick().await;
                let now = Instant::now();
                let ts = (now - start).as_millis() as u32 * 48;
                let a = rtp::Packet {
                    header: rtp::header::Header { version: 2, payload_type: apt, sequence_number: aseq, timestamp: ts, ssrc: AUDIO_SSRC, ..Default::default() },
                    payload: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                };
                aseq = aseq.wrapping_add(1);
                if audio.write_rtp(a).await.is_err() {
                    break;
                }
                while next_frame <= now {
                    let key = want_key.swap(false, Ordering::SeqCst);
                    let vts = frame.wrapping_mul(3000);
                    let mut payloads: Vec<Vec<u8>> = Vec::new();
                    if key {
                        // STAP-A with SPS and PPS, then the IDR slice.
                        let (sps, pps) = ([0x67u8, 0x42, 0xc0, 0x1e, 0xd9, 0x00], [0x68u8, 0xcb, 0x83, 0xcb, 0x20]);
                        let mut stap = vec![0x78];
                        for n in [&sps[..], &pps[..]] {
                            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                            stap.extend_from_slice(n);
                        }
                        payloads.push(stap);
                        payloads.push([&[0x65u8, 0x88][..], &frame.to_be_bytes(), &[0xaa; 600]].concat());
                    } else {
                        payloads.push([&[0x41u8, 0x9a][..], &frame.to_be_bytes(), &[0xbb; 300]].concat());
                    }
                    let n = payloads.len();
                    for (i, payload) in payloads.into_iter().enumerate() {
                        let p = rtp::Packet {
                            header: rtp::header::Header { version: 2, payload_type: vpt, sequence_number: seq, timestamp: vts, ssrc: VIDEO_SSRC, marker: i + 1 == n, ..Default::default() },
                            payload: Bytes::from(payload),
                        };
                        seq = seq.wrapping_add(1);
                        if video.write_rtp(p).await.is_err() {
                            return;
                        }
                    }
                    frame += 1;
                    next_frame += Duration::from_micros(33_333);
                }
            }
        });
        H264Publisher { bot, session, answer, plis, stop }
    }

    async fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.bot.pc.close().await;
    }
}

/// Waits for the next event matching `f`, skipping others, bounded in time.
async fn next_matching<T>(tap: &mut StageTap, within: Duration, mut f: impl FnMut(&StageEvent) -> Option<T>) -> T {
    let end = tokio::time::Instant::now() + within;
    loop {
        let ev = tokio::time::timeout_at(end, tap.recv()).await.expect("event in time").expect("tap open");
        if let Some(t) = f(&ev) {
            return t;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tap_sees_a_stage_publishers_h264_tracks_packets_keyframes_and_departure() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        // Opened on an empty room, which must stay a stage although it is idle.
        let mut tap = sfu.stage_tap("stage");
        sfu.set_forwarding("stage", "nobody", true, true);
        let publisher = H264Publisher::start(Signal::Whip(&sfu, "stage", "alice")).await;
        assert_eq!(first_video_codec(&publisher.answer).to_ascii_lowercase(), "h264/90000", "a stage asks for H.264");
        let mut video: Option<TrackId> = None;
        let mut audio: Option<TrackId> = None;
        while video.is_none() || audio.is_none() {
            let (t, k, mime, rate) = next_matching(&mut tap, Duration::from_secs(10), |ev| match ev {
                StageEvent::TrackAdded { track, participant, kind, codec } => {
                    assert_eq!(participant, "alice");
                    Some((*track, *kind, codec.mime_type.to_ascii_lowercase(), codec.clock_rate))
                }
                _ => None,
            })
            .await;
            match k {
                MediaKind::Video => {
                    assert_eq!((mime.as_str(), rate), ("video/h264", 90_000));
                    video = Some(t);
                }
                MediaKind::Audio => {
                    assert_eq!((mime.as_str(), rate), ("audio/opus", 48_000));
                    audio = Some(t);
                }
            }
        }
        let (video, audio) = (video.unwrap(), audio.unwrap());
        // Packets: the publisher's own sequence numbers, in order, arrival times increasing;
        // the first video packet of the stream starts a keyframe.
        let mut seqs = Vec::new();
        let mut audio_packets = 0;
        let mut last_arrival = None;
        let mut first_key = None;
        let end = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < end {
            let Ok(Some(ev)) = tokio::time::timeout_at(end, tap.recv()).await else { break };
            if let StageEvent::Packet(p) = ev {
                if let Some(a) = last_arrival {
                    assert!(p.arrival >= a);
                }
                last_arrival = Some(p.arrival);
                if p.track == video {
                    first_key.get_or_insert(p.keyframe);
                    seqs.push(p.seq);
                } else if p.track == audio {
                    audio_packets += 1;
                }
            }
        }
        assert!(seqs.len() > 40, "{} video packets", seqs.len());
        assert!(audio_packets > 50, "{audio_packets} audio packets");
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "continuous publisher sequence numbers");
        // A keyframe request reaches the publisher, and its keyframe comes through the tap.
        let before = publisher.plis.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await; // past the SFU's PLI throttle
        assert!(sfu.request_keyframe("stage", "alice").await);
        assert!(!sfu.request_keyframe("stage", "bob").await, "bob publishes nothing");
        next_matching(&mut tap, Duration::from_secs(5), |ev| matches!(ev, StageEvent::Packet(p) if p.track == video && p.keyframe).then_some(())).await;
        assert!(publisher.plis.load(Ordering::SeqCst) > before);
        assert_eq!(tap.lost(), 0, "a tap that keeps up loses nothing");
        // The publisher leaves: both tracks are removed.
        publisher.stop().await;
        assert!(sfu.close_session(publisher.session).await);
        let mut removed = Vec::new();
        while removed.len() < 2 {
            removed.push(
                next_matching(&mut tap, Duration::from_secs(10), |ev| match ev {
                    StageEvent::TrackRemoved { track, participant, .. } if participant == "alice" => Some(*track),
                    _ => None,
                })
                .await,
            );
        }
        removed.sort();
        let mut want = vec![video, audio];
        want.sort();
        assert_eq!(removed, want);
        drop(tap);
        let _ = publisher.bot.pc.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_that_is_never_read_loses_packets_and_never_stalls_the_stage() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let tap = sfu.stage_tap("stage");
        // Many packets so the tap's queue (4096 events) fills within the test.
        let publisher = Publisher::start(&sfu, "stage", "speaker", 30, 40, 200).await;
        let mut viewer = Viewer::start(&sfu, "stage").await;
        let _ = viewer.collect(Duration::from_secs(1)).await;
        let rx = viewer.collect(Duration::from_secs(5)).await;
        let video: Vec<&Rx> = rx.iter().filter(|p| p.video).collect();
        assert!(video.len() > 4000, "the viewer kept receiving: {}", video.len());
        assert!(video.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)), "no loss at the viewer");
        assert!(tap.lost() > 0, "the unread tap lost packets instead of holding them");
        publisher.stop().await;
        sfu.close_session(publisher.session).await;
        sfu.close_session(viewer.session).await;
        let _ = viewer.bot.pc.close().await;
        drop(tap);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_a_stage_is_asked_for_h264_and_a_vp8_only_publisher_still_gets_on() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let mut tap = sfu.stage_tap("stage");
        let (member, _events) = sfu.join("stage", "wang").await.unwrap();
        let publisher = H264Publisher::start(Signal::Member(&member)).await;
        assert_eq!(first_video_codec(&publisher.answer).to_ascii_lowercase(), "h264/90000");
        // A publisher that offers only VP8 (the common bot's VP8 track binds VP8) is answered
        // VP8 and appears on the stage with that codec, for the programme to report.
        let vp8 = Publisher::start(&sfu, "stage", "vp8-only", 30, 2, 500).await;
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let (who, mime) = next_matching(&mut tap, Duration::from_secs(10), |ev| match ev {
                StageEvent::TrackAdded { participant, kind: MediaKind::Video, codec, .. } => Some((participant.clone(), codec.mime_type.to_ascii_lowercase())),
                _ => None,
            })
            .await;
            seen.push((who, mime));
        }
        seen.sort();
        assert_eq!(seen, [("vp8-only".to_string(), "video/vp8".to_string()), ("wang".to_string(), "video/h264".to_string())]);
        // Rooms without a tap keep the offer's order (VP8 first for this bot); its H.264 track
        // still binds to the H.264 format the answer lists further down.
        let plain = sfu.join("room", "li").await.unwrap().0;
        let other = H264Publisher::start(Signal::Member(&plain)).await;
        assert_eq!(first_video_codec(&other.answer).to_ascii_lowercase(), "vp8/90000", "a room is not a stage");
        for p in [&publisher, &other] {
            p.stop().await;
        }
        vp8.stop().await;
        sfu.close_session(vp8.session).await;
        member.leave().await;
        plain.leave().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_who_arrives_before_the_stages_h264_publisher_gets_its_video() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let _tap = sfu.stage_tap("stage");
        // The viewer's video slot is negotiated before anything is published; it carries every
        // codec both sides have, so the H.264 the stage asks its publishers for reaches it.
        let mut viewer = Viewer::start(&sfu, "stage").await;
        let publisher = H264Publisher::start(Signal::Whip(&sfu, "stage", "alice")).await;
        let rx = viewer.collect(Duration::from_secs(3)).await;
        let video: Vec<&Rx> = rx.iter().filter(|p| p.video).collect();
        assert!(video.len() > 30, "the early viewer got {} video packets", video.len());
        assert!(matches!(video[0].payload[0] & 0x1f, 24 | 5 | 7), "the first video packet starts an H.264 keyframe");
        assert!(video.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
        publisher.stop().await;
        sfu.close_session(publisher.session).await;
        sfu.close_session(viewer.session).await;
        let _ = viewer.bot.pc.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_arrival_times_never_go_back_across_two_publishers() {
    // The driver drains connections one after the other: stamped with each packet's own read
    // time, a second publisher's packet read earlier in a wake-up would reach the tap after a
    // newer one of the first. Stamped with the wake-up, arrival is non-decreasing by construction.
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let mut tap = sfu.stage_tap("stage");
        let a = Publisher::start(&sfu, "stage", "a", 30, 4, 300).await;
        let b = Publisher::start(&sfu, "stage", "b", 30, 4, 300).await;
        let mut owner = std::collections::HashMap::new();
        let mut from = std::collections::HashSet::new();
        let mut last: Option<Instant> = None;
        let mut packets = 0;
        let end = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < end {
            let Ok(Some(ev)) = tokio::time::timeout_at(end, tap.recv()).await else { break };
            match ev {
                StageEvent::TrackAdded { track, participant, .. } => {
                    owner.insert(track, participant);
                }
                StageEvent::Packet(p) => {
                    let seen = Instant::now();
                    assert!(p.arrival <= seen, "stamped in the future");
                    assert!(seen.duration_since(p.arrival) < Duration::from_secs(1), "a stale stamp: {:?}", seen.duration_since(p.arrival));
                    if let Some(l) = last {
                        assert!(p.arrival >= l, "arrival went back by {:?}", l - p.arrival);
                    }
                    last = Some(p.arrival);
                    if let Some(who) = owner.get(&p.track) {
                        from.insert(who.clone());
                    }
                    packets += 1;
                }
                _ => {}
            }
        }
        assert!(packets > 200, "{packets} packets");
        assert_eq!(from.len(), 2, "both publishers' packets reached the tap: {from:?}");
        for p in [&a, &b] {
            p.stop().await;
            sfu.close_session(p.session).await;
        }
    })
    .await
    .expect("test timed out");
}
