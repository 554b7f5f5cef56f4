//! The stage behind the chair (issue 13, "Broken" 4): in a livestream, a member who turns the
//! camera on in the room is seen by the other members but not by the public — WHEP viewers and
//! the stage tap the programme (LL-HLS) is made from — until a moderator puts them on stage
//! (`set_stage`, 上台); 下台 takes them off the public path at once. Real sockets, webrtc bots.
#![allow(missing_docs)]

mod common;
#[path = "../sfu/tests/common/mod.rs"]
mod bots;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bots::{Publisher, Signal, collect_for, collect_tracks};
use common::{Client, TestHub, event, ok, sub_state};
use shangliang_sfu::{SessionId, StageEvent};
use shangliang_signaling::consult::{Command, ConsultEvent, ParticipantId};
use shangliang_signaling::media::{MediaEvent, MediaRequest, PcKind};
use shangliang_signaling::{ClientMsg, ErrorCode, Role, ServerMsg};
use webrtc::peer_connection::RTCSessionDescription;

/// A websocket client with a queue of server-initiated media events (as in tests/media_ws.rs).
struct Member {
    c: Client,
    next: u32,
    events: VecDeque<MediaEvent>,
}

impl Member {
    async fn connect(h: &TestHub, name: &str, role: Role) -> Member {
        Member { c: h.client(role, name).await, next: 100, events: VecDeque::new() }
    }

    async fn ask(&mut self, req: MediaRequest) -> MediaEvent {
        self.next += 1;
        let id = self.next;
        self.c.send(&ClientMsg::Media { id, req }).await;
        loop {
            match self.c.recv().await {
                ServerMsg::Media { id: Some(i), ev } if i == id => return ev,
                ServerMsg::Media { id: None, ev } => self.events.push_back(ev),
                _ => {}
            }
        }
    }

    async fn event(&mut self) -> MediaEvent {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        loop {
            if let ServerMsg::Media { id: None, ev } = self.c.recv().await {
                return ev;
            }
        }
    }
}

/// Packets of `who`'s tracks the tap delivers within `d` (track events are followed).
async fn tap_packets(tap: &mut shangliang_sfu::StageTap, tracks: &mut Vec<u64>, who: &str, d: Duration) -> usize {
    let end = tokio::time::Instant::now() + d;
    let mut n = 0;
    while let Ok(Some(ev)) = tokio::time::timeout_at(end, tap.recv()).await {
        match ev {
            StageEvent::TrackAdded { track, participant, .. } if participant == who => tracks.push(track.0),
            StageEvent::TrackRemoved { track, .. } => tracks.retain(|t| *t != track.0),
            StageEvent::Packet(p) if tracks.contains(&p.track.0) => n += 1,
            _ => {}
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_gets_no_media_of_a_member_until_the_chair_puts_them_on_stage_and_none_after_off_stage() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let h = TestHub::start(|_| {}).await;
        let mut chair = h.client(Role::Moderator, "主持人").await;
        // Someone subscribed to the activity hears the stage events.
        let mut watcher = h.client(Role::Member, "carol").await;
        let (_, state) = sub_state(&mut watcher).await;
        assert!(state.livestream && state.on_air.is_empty(), "nobody is on air before a grant: {state:?}");
        let alice = Member::connect(&h, "alice", Role::Member).await;
        let mut bob = Member::connect(&h, "bob", Role::Member).await;
        let who = "member:alice";
        let alice = Arc::new(tokio::sync::Mutex::new(alice));
        assert_eq!(alice.lock().await.ask(MediaRequest::Join).await, MediaEvent::Joined { participant: who.into(), ice_servers: vec![] });
        assert_eq!(bob.ask(MediaRequest::Join).await, MediaEvent::Joined { participant: "member:bob".into(), ice_servers: vec![] });
        // The public path: the stage tap (what the programme packages) and a WHEP viewer.
        let mut tap = h.hub.media.sfu.stage_tap("demo");
        let mut tapped = Vec::new();

        // Alice turns her camera on in the room (publishes through her websocket).
        let a = Arc::clone(&alice);
        let answerer: Box<bots::Answerer> = Box::new(move |offer: String| {
            let a = Arc::clone(&a);
            Box::pin(async move {
                match a.lock().await.ask(MediaRequest::PublishOffer { sdp: offer }).await {
                    MediaEvent::PublishAnswer { sdp } => (SessionId(0), sdp),
                    other => panic!("publish refused: {other:?}"),
                }
            })
        });
        let publisher = Publisher::start_via(Signal::Remote(&answerer), 30, 2, 400).await;
        let mut viewer = bots::Viewer::start(&h.hub.media.sfu, "demo").await;

        // Bob, in the room, sees her.
        let mut b = bots::bot().await;
        let mut rx = collect_tracks(&mut b);
        let (mut published, mut connected) = (0, false);
        while published < 2 || !connected {
            match bob.event().await {
                MediaEvent::SubscriberOffer { sdp } => {
                    b.pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                    let ans = b.pc.create_answer(None).await.unwrap();
                    b.pc.set_local_description(ans).await.unwrap();
                    let _ = tokio::time::timeout(Duration::from_secs(5), b.gathered.wait_for(|g| *g)).await;
                    let sdp = b.pc.local_description().await.unwrap().sdp;
                    assert_eq!(bob.ask(MediaRequest::SubscriberAnswer { sdp }).await, MediaEvent::Ok);
                }
                MediaEvent::TrackPublished { .. } => published += 1,
                MediaEvent::ConnectionState { pc: PcKind::Subscriber, state } if state == "connected" => connected = true,
                _ => {}
            }
        }
        let got = collect_for(&mut rx, Duration::from_secs(2)).await;
        assert!(got.iter().filter(|p| p.video).count() > 20, "a member in the room sees an ungranted member");
        // ... and the public does not.
        let public = viewer.collect(Duration::from_secs(2)).await;
        assert_eq!(public.iter().filter(|p| p.video).count(), 0, "a WHEP viewer got video of a member not on stage");
        assert_eq!(tap_packets(&mut tap, &mut tapped, who, Duration::from_millis(500)).await, 0, "the programme's tap got media of a member not on stage");

        // A member may not put anyone on stage; the chair may.
        let mut bob_ws = h.client(Role::Member, "bob2").await;
        let refused = common::cmd(&mut bob_ws, Command::SetStage { participant: ParticipantId::new(who), on: true }).await;
        assert_eq!(refused, Err(ErrorCode::Forbidden));
        ok(&mut chair, Command::SetStage { participant: ParticipantId::new(who), on: true }).await;
        let on_air = event(&mut watcher, |e| match e {
            ConsultEvent::Stage { on_air, .. } => Some(on_air.clone()),
            _ => None,
        })
        .await;
        assert_eq!(on_air, vec![ParticipantId::new(who)]);
        // A client connecting now sees it in its state (a reconnecting member's 直播中).
        let mut late = h.client(Role::Member, "dave").await;
        let (_, state) = sub_state(&mut late).await;
        assert!(state.livestream);
        assert_eq!(state.stage, vec![ParticipantId::new(who)]);
        assert_eq!(state.on_air, vec![ParticipantId::new(who)]);

        // On stage: the public gets her video (a keyframe is asked for on the switch).
        let mut video = 0;
        for _ in 0..10 {
            video += viewer.collect(Duration::from_millis(500)).await.iter().filter(|p| p.video).count();
            if video > 10 {
                break;
            }
        }
        assert!(video > 10, "the WHEP viewer got {video} video packets after 上台");
        assert!(tap_packets(&mut tap, &mut tapped, who, Duration::from_secs(1)).await > 10, "the tap got no media after 上台");

        // 下台: off the public path at once (after what was in flight), still in the room.
        ok(&mut chair, Command::SetStage { participant: ParticipantId::new(who), on: false }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        while viewer.rx.try_recv().is_ok() {}
        let _ = tap_packets(&mut tap, &mut tapped, who, Duration::from_millis(100)).await;
        let public = viewer.collect(Duration::from_secs(2)).await;
        assert_eq!(public.iter().filter(|p| p.video).count(), 0, "a WHEP viewer still got video after 下台");
        assert_eq!(tap_packets(&mut tap, &mut tapped, who, Duration::from_millis(500)).await, 0, "the tap still got media after 下台");
        while rx.try_recv().is_ok() {}
        let got = collect_for(&mut rx, Duration::from_secs(1)).await;
        assert!(got.iter().filter(|p| p.video).count() > 10, "下台 must not take her out of the room");

        // The floor puts its holder on air too (a speaker in a livestream is heard by the public);
        // 下台 of the holder ends the turn.
        ok(&mut chair, Command::GrantFloor { target: shangliang_signaling::consult::GrantTarget::Participant(ParticipantId::new(who)), limit_ms: None }).await;
        let on_air = event(&mut watcher, |e| match e {
            ConsultEvent::Stage { on_air, .. } if !on_air.is_empty() => Some(on_air.clone()),
            _ => None,
        })
        .await;
        assert_eq!(on_air, vec![ParticipantId::new(who)]);
        ok(&mut chair, Command::SetStage { participant: ParticipantId::new(who), on: false }).await;
        let mut later = h.client(Role::Member, "erin").await;
        let (_, state) = sub_state(&mut later).await;
        assert_eq!(state.floor.holder, None, "下台 ends the holder's turn");
        assert!(state.on_air.is_empty());

        publisher.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(answerer);
        let _ = (publisher.bot.pc.close().await, b.pc.close().await, viewer.bot.pc.close().await);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn a_room_has_no_stage_and_a_viewer_cannot_be_put_on_one() {
    let h = TestHub::start(|_| {}).await;
    let mut chair = h.client(Role::Moderator, "主持人").await;
    let mut viewer = h.client(Role::Viewer, "小王").await;
    let (_, state) = sub_state(&mut viewer).await;
    assert!(state.on_air.is_empty(), "nobody is on air before a grant");
    let viewer_id = ParticipantId::new("viewer:小王");
    assert_eq!(common::cmd(&mut chair, Command::SetStage { participant: viewer_id, on: true }).await, Err(ErrorCode::NotEligible));
    // The room activity of the test hub: no stage.
    let mut room_chair = Client::connect(&h.url(), shangliang_signaling::Form::MsgPack).await;
    room_chair.auth(&h.token_with(Role::Moderator, "主持人", "demo-room", 600)).await;
    let id = 77;
    room_chair
        .send(&ClientMsg::Cmd { id, topic: shangliang_signaling::ActivityId::new("demo-room").unwrap(), cmd: Command::SetStage { participant: ParticipantId::new("member:alice"), on: true } })
        .await;
    loop {
        match room_chair.recv().await {
            ServerMsg::Error { id: Some(i), code, .. } if i == id => {
                assert_eq!(code, ErrorCode::NotEligible);
                break;
            }
            ServerMsg::Reply { id: i, reply } if i == id => panic!("a room accepted set_stage: {reply:?}"),
            _ => {}
        }
    }
}
