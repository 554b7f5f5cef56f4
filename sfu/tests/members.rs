//! Room members: a publisher connection the client offers on, a subscriber connection the
//! server offers on (renegotiated as tracks come and go), and the floor.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use shangliang_sfu::{ParticipantHandle, SfuEvent};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCSessionDescription;

/// A member's receiving side: answers every subscriber offer, reports packets and other events.
async fn subscriber_bot(h: Arc<ParticipantHandle>, mut ev: mpsc::Receiver<SfuEvent>) -> (Bot, mpsc::UnboundedReceiver<Rx>, mpsc::UnboundedReceiver<SfuEvent>) {
    let mut b = bot().await;
    let rx = collect_tracks(&mut b);
    let pc = Arc::clone(&b.pc);
    let mut gathered = b.gathered.clone();
    let (other_tx, other_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = ev.recv().await {
            match e {
                SfuEvent::SubscriberOffer { sdp } => {
                    pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                    let a = pc.create_answer(None).await.unwrap();
                    pc.set_local_description(a).await.unwrap();
                    let _ = tokio::time::timeout(Duration::from_secs(5), gathered.wait_for(|g| *g)).await;
                    let sdp = pc.local_description().await.unwrap().sdp;
                    h.subscriber_answer(&sdp).await.expect("subscriber_answer");
                }
                other => {
                    let _ = other_tx.send(other);
                }
            }
        }
    });
    (b, rx, other_rx)
}

fn audio_last_seq(rx: &[Rx]) -> Option<u16> {
    rx.iter().filter(|p| !p.video).last().map(|p| p.seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_receives_another_members_tracks_hears_the_active_speaker_and_the_floor_gates_audio() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let (alice, _alice_ev) = sfu.join("council", "alice").await.unwrap();
        let (bob, bob_ev) = sfu.join("council", "bob").await.unwrap();
        let bob = Arc::new(bob);
        let (_bob_bot, mut bob_rx, mut bob_events) = subscriber_bot(Arc::clone(&bob), bob_ev).await;

        let publisher = Publisher::start_via(Signal::Member(&alice), 30, 2, 500).await;

        // Bob hears about both tracks and gets them over his subscriber connection.
        // ...and, from the audio-level header extension, that alice is the active speaker.
        let mut published = 0;
        let mut speaker = None;
        while published < 2 || speaker.is_none() {
            match tokio::time::timeout(Duration::from_secs(5), bob_events.recv()).await.expect("events").unwrap() {
                SfuEvent::TrackPublished { participant, .. } => {
                    assert_eq!(participant, "alice");
                    published += 1;
                }
                SfuEvent::ActiveSpeaker { participant } => speaker = Some(participant),
                _ => {}
            }
        }
        assert_eq!(speaker.as_deref(), Some("alice"));
        let rx = collect_for(&mut bob_rx, Duration::from_secs(3)).await;
        let audio = rx.iter().filter(|p| !p.video).count();
        let video: Vec<&Rx> = rx.iter().filter(|p| p.video).collect();
        assert!(audio > 40 && video.len() > 60, "audio {audio} video {}", video.len());
        assert!(is_key_start(&video[0].payload));
        assert!(video.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));

        // The floor: alice's audio is stopped, her video still flows.
        sfu.set_forwarding("council", "alice", false, true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut last_audio_seq = audio_last_seq(&rx);
        while let Ok(p) = bob_rx.try_recv() {
            if !p.video {
                last_audio_seq = Some(p.seq);
            }
        }
        let rx = collect_for(&mut bob_rx, Duration::from_secs(1)).await;
        assert_eq!(rx.iter().filter(|p| !p.video).count(), 0, "audio must not pass without the floor");
        assert!(rx.iter().filter(|p| p.video).count() > 20);

        // Floor given back: audio resumes, its sequence continuing without a gap.
        sfu.set_forwarding("council", "alice", true, true);
        let rx = collect_for(&mut bob_rx, Duration::from_secs(1)).await;
        let audio: Vec<&Rx> = rx.iter().filter(|p| !p.video).collect();
        assert!(audio.len() > 20, "audio did not resume: {}", audio.len());
        assert_eq!(Some(audio[0].seq), last_audio_seq.map(|s| s.wrapping_add(1)), "gap across the floor change");
        assert!(audio.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));

        // Alice leaves: bob is told her tracks are gone.
        publisher.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        alice.leave().await;
        let mut gone = 0;
        while gone < 2 {
            if let SfuEvent::TrackUnpublished { participant, .. } =
                tokio::time::timeout(Duration::from_secs(5), bob_events.recv()).await.expect("unpublished").unwrap()
            {
                assert_eq!(participant, "alice");
                gone += 1;
            }
        }
        let _ = publisher.bot.pc.close().await;
        sfu.close_session(bob.id()).await;
        assert_eq!(sfu.stats().sessions, 0);
    })
    .await
    .expect("bounded");
}

fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:").map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_ice_restart_renegotiates_and_media_keeps_flowing() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let (alice, _a_ev) = sfu.join("r", "alice").await.unwrap();
        let publisher = Publisher::start_via(Signal::Member(&alice), 30, 2, 400).await;
        let (bob, mut bob_ev) = sfu.join("r", "bob").await.unwrap();
        let mut b = bot().await;
        let mut rx = collect_tracks(&mut b);
        // Answer offers by hand here, to see the credentials change.
        let mut answer = async |sdp: String| {
            b.pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
            let a = b.pc.create_answer(None).await.unwrap();
            b.pc.set_local_description(a).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(5), b.gathered.wait_for(|g| *g)).await;
            bob.subscriber_answer(&b.pc.local_description().await.unwrap().sdp).await.unwrap();
        };
        let mut first_ufrag = None;
        let t = std::time::Instant::now();
        while collect_for(&mut rx, Duration::from_millis(50)).await.is_empty() {
            assert!(t.elapsed() < Duration::from_secs(10), "no media before restart");
            while let Ok(e) = bob_ev.try_recv() {
                if let SfuEvent::SubscriberOffer { sdp } = e {
                    first_ufrag = first_ufrag.or(ufrag(&sdp));
                    answer(sdp).await;
                }
            }
        }
        assert!(first_ufrag.is_some(), "the first offer was answered");
        bob.ice_restart().await.unwrap();
        // Offers are sequential: one still outstanding from the publisher's second track (sent
        // before the restart, old credentials) is answered first; the restart offer follows it.
        let mut offers = 0;
        let restarted = loop {
            if let SfuEvent::SubscriberOffer { sdp } =
                tokio::time::timeout(Duration::from_secs(5), bob_ev.recv()).await.expect("offer after restart").unwrap()
            {
                offers += 1;
                if ufrag(&sdp) != first_ufrag {
                    break sdp;
                }
                assert!(offers < 3, "no offer with new credentials after the restart");
                answer(sdp).await;
            }
        };
        assert_ne!(ufrag(&restarted), first_ufrag, "an ICE restart offer carries new credentials");
        answer(restarted).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while rx.try_recv().is_ok() {}
        let after = collect_for(&mut rx, Duration::from_secs(1)).await;
        assert!(after.len() > 30, "media after the restart: {}", after.len());
        publisher.stop().await;
        alice.leave().await;
        bob.leave().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_withheld_before_joining_holds_when_the_member_publishes() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        // The chair withholds carol's audio before she is even in the room.
        sfu.set_forwarding("chaired", "carol", false, true);
        let (carol, _c_ev) = sfu.join("chaired", "carol").await.unwrap();
        let (dave, dave_ev) = sfu.join("chaired", "dave").await.unwrap();
        let dave = Arc::new(dave);
        let (_dave_bot, mut dave_rx, _dave_events) = subscriber_bot(Arc::clone(&dave), dave_ev).await;
        let publisher = Publisher::start_via(Signal::Member(&carol), 30, 2, 400).await;
        let rx = collect_for(&mut dave_rx, Duration::from_secs(3)).await;
        assert!(rx.iter().filter(|p| p.video).count() > 30, "video flows");
        assert_eq!(rx.iter().filter(|p| !p.video).count(), 0, "audio withheld");
        publisher.stop().await;
        carol.leave().await;
        sfu.close_session(dave.id()).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_published_while_the_subscriber_is_connected_arrives_after_renegotiation_starting_on_a_keyframe() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = sfu(10, 10);
        let (alice, _a_ev) = sfu.join("live", "alice").await.unwrap();
        let first = Publisher::start_via(Signal::Member(&alice), 30, 2, 400).await;
        let (bob, bob_ev) = sfu.join("live", "bob").await.unwrap();
        let bob = Arc::new(bob);
        let (_bob_bot, mut bob_rx, _bob_events) = subscriber_bot(Arc::clone(&bob), bob_ev).await;
        let rx = collect_for(&mut bob_rx, Duration::from_secs(2)).await;
        let alice_ssrc = rx.iter().find(|p| p.video).expect("alice's video before carol publishes").ssrc;
        // Carol publishes while bob's subscriber connection is up: a new offer, a new track.
        let (carol, _c_ev) = sfu.join("live", "carol").await.unwrap();
        let second = Publisher::start_via(Signal::Member(&carol), 30, 2, 400).await;
        let t = std::time::Instant::now();
        let carol_video = loop {
            let rx = collect_for(&mut bob_rx, Duration::from_millis(200)).await;
            if let Some(i) = rx.iter().position(|p| p.video && p.ssrc != alice_ssrc) {
                break rx[i..].iter().filter(|p| p.video && p.ssrc == rx[i].ssrc).cloned().collect::<Vec<_>>();
            }
            assert!(t.elapsed() < Duration::from_secs(10), "carol's video never reached bob");
        };
        assert!(is_key_start(&carol_video[0].payload), "the new track did not start on a keyframe");
        assert!(carol_video.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
        first.stop().await;
        second.stop().await;
        alice.leave().await;
        carol.leave().await;
        sfu.close_session(bob.id()).await;
        assert_eq!(sfu.stats().sessions, 0);
    })
    .await
    .expect("bounded");
}
