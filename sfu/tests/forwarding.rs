//! Media forwarding through the SFU, with webrtc 0.21 bots on loopback.
#![allow(missing_docs)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;

/// Checks one viewer's video: rewritten SSRC, continuous sequence numbers, the VP8 payload intact.
fn check_video(rx: &[Rx]) -> (u32, usize) {
    let video: Vec<&Rx> = rx.iter().filter(|p| p.video).collect();
    assert!(video.len() > 100, "too little video: {}", video.len());
    let ssrc = video[0].ssrc;
    assert_ne!(ssrc, VIDEO_SSRC, "the SSRC must be rewritten per subscriber");
    assert!(video.iter().all(|p| p.ssrc == ssrc));
    let mut gaps = 0;
    for w in video.windows(2) {
        let d = w[1].seq.wrapping_sub(w[0].seq);
        assert!(d != 0 && d < 0x8000, "sequence went backwards or repeated: {} -> {}", w[0].seq, w[1].seq);
        if d != 1 {
            gaps += 1;
        }
    }
    (ssrc, gaps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_rtp_reaches_every_subscriber_with_rewritten_ssrc_and_continuous_seq() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let publisher = Publisher::start(&sfu, "stage", "speaker-1", 30, 4, 900).await;
        let mut viewers = Vec::new();
        for _ in 0..3 {
            viewers.push(Viewer::start(&sfu, "stage").await);
        }
        let mut ssrcs = Vec::new();
        for v in viewers.iter_mut() {
            let rx = v.collect(Duration::from_secs(3)).await;
            let (ssrc, gaps) = check_video(&rx);
            assert_eq!(gaps, 0, "loopback, no loss expected: the stream must be continuous");
            let audio: Vec<&Rx> = rx.iter().filter(|p| !p.video).collect();
            assert!(audio.len() > 50, "too little audio: {}", audio.len());
            assert_ne!(audio[0].ssrc, AUDIO_SSRC);
            assert!(audio.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
            // The first video packet starts a keyframe: the subscriber can decode from packet one.
            let first = rx.iter().find(|p| p.video).unwrap();
            assert!(is_key_start(&first.payload), "first forwarded video packet is not a keyframe start");
            ssrcs.push(ssrc);
        }
        ssrcs.sort();
        ssrcs.dedup();
        assert_eq!(ssrcs.len(), 3, "each subscriber leg has its own SSRC");
        let st = sfu.stats();
        assert!(st.forwarded_packets > 3 * 150, "{st:?}");
        // Batched sends: a flush's datagrams to one viewer leave in one GSO sendmsg.
        let io = sfu.io_stats();
        eprintln!("{io:?}");
        if io.max_gso_segments > 1 {
            assert!(io.datagrams_sent > io.sends, "no datagram shared a sendmsg: {io:?}");
        }
        assert!(io.datagrams_received >= io.receives && io.unrouted == 0, "{io:?}");
        publisher.stop().await;
        for v in viewers {
            assert!(sfu.close_session(v.session).await);
            let _ = v.bot.pc.close().await;
        }
        assert!(sfu.close_session(publisher.session).await);
        assert_eq!(sfu.stats().sessions, 0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_subscriber_triggers_pli_and_starts_on_keyframe() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let publisher = Publisher::start(&sfu, "late", "speaker-1", 30, 3, 600).await;
        // Let the publisher's only keyframe go by with nobody watching.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let plis_before = publisher.plis.load(Ordering::SeqCst);
        let mut v = Viewer::start(&sfu, "late").await;
        let rx = v.collect(Duration::from_secs(2)).await;
        let plis_after = publisher.plis.load(Ordering::SeqCst);
        assert!(plis_after > plis_before, "no PLI reached the publisher ({plis_before} -> {plis_after})");
        let first = rx.iter().find(|p| p.video).expect("video after the PLI");
        assert!(is_key_start(&first.payload), "late subscriber did not start on a keyframe");
        check_video(&rx);
        publisher.stop().await;
        sfu.close_session(v.session).await;
        sfu.close_session(publisher.session).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_pli_reaches_the_publisher_throttled() {
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use webrtc::media_stream::track_remote::TrackRemoteEvent;
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let publisher = Publisher::start(&sfu, "pli", "speaker-1", 30, 2, 500).await;
        let mut b = bot().await;
        b.recv_only(RtpCodecKind::Audio).await;
        b.recv_only(RtpCodecKind::Video).await;
        let offer = b.offer().await;
        let (id, answer) = sfu.whep("pli", &offer).await.unwrap();
        b.accept_answer(answer).await;
        b.wait_connected().await;
        // Find the video track and keep draining it.
        let video = loop {
            let t = tokio::time::timeout(Duration::from_secs(5), b.tracks.recv()).await.unwrap().unwrap();
            let t2 = std::sync::Arc::clone(&t);
            tokio::spawn(async move { while let Some(ev) = t2.poll().await { let _ = matches!(ev, TrackRemoteEvent::OnRtpPacket(_)); } });
            if t.kind().await == RtpCodecKind::Video {
                break t;
            }
        };
        tokio::time::sleep(Duration::from_millis(800)).await; // past the join-time PLI's throttle window
        let media_ssrc = video.ssrcs().await[0];
        let before = publisher.plis.load(Ordering::SeqCst);
        // A burst of 10 PLIs within ~100 ms...
        for _ in 0..10 {
            video.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 1, media_ssrc })]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let forwarded = publisher.plis.load(Ordering::SeqCst) - before;
        let st = sfu.stats();
        // ...all reach the SFU, and reach the publisher as one or two (throttle + one deferred).
        assert!(st.keyframe_requests_in >= 10, "{st:?}");
        assert!((1..=2).contains(&forwarded), "publisher saw {forwarded} PLIs for a burst of 10");
        publisher.stop().await;
        sfu.close_session(id).await;
        sfu.close_session(publisher.session).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_follows_the_stage_from_a_vp8_camera_to_an_h264_one_on_one_continuous_stream() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let first = Publisher::start(&sfu, "stage", "cam-vp8", 30, 2, 500).await;
        let mut viewer = Viewer::start(&sfu, "stage").await;
        let before: Vec<Rx> = viewer.collect(Duration::from_secs(2)).await.into_iter().filter(|p| p.video).collect();
        assert!(before.len() > 40, "vp8 video: {}", before.len());
        // The VP8 camera leaves and an H.264 one takes the stage: the viewer's one video slot
        // negotiated both codecs, so it follows with the other payload type, on the same SSRC,
        // the sequence continuing, starting on the H.264 keyframe.
        first.stop().await;
        assert!(sfu.close_session(first.session).await);
        let second = Publisher::start_codec_via(Signal::Whip(&sfu, "stage", "cam-h264"), h264(), 30, 2, 500).await;
        let after: Vec<Rx> = viewer.collect(Duration::from_secs(3)).await.into_iter().filter(|p| p.video).collect();
        let all: Vec<&Rx> = before.iter().chain(&after).collect();
        // Exactly one change of payload type: the switch (VP8 still in flight comes first).
        let switches: Vec<usize> = (1..all.len()).filter(|&i| all[i].pt != all[i - 1].pt).collect();
        assert_eq!(switches.len(), 1, "one codec switch");
        let i = switches[0];
        assert!(all.len() - i > 40, "h264 video after the switch: {}", all.len() - i);
        assert_eq!(all[i].payload[0], 0x65, "the first H.264 packet is an IDR slice");
        assert!(all.iter().all(|p| p.ssrc == all[0].ssrc), "one stream for the viewer");
        assert!(all.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)), "the sequence continues across the switch");
        second.stop().await;
        sfu.close_session(second.session).await;
        sfu.close_session(viewer.session).await;
        let _ = viewer.bot.pc.close().await;
    })
    .await
    .expect("test timed out");
}
