//! Websocket media signalling with webrtc bots: two members in a room over the real socket, the
//! floor hook, refusals, and cleanup when the socket closes.
#![allow(missing_docs)]

mod common;
#[path = "../sfu/tests/common/mod.rs"]
mod bots;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bots::{Publisher, Signal, collect_for, collect_tracks};
use common::{Client, TestHub};
use shangliang_sfu::SessionId;
use shangliang_signaling::media::{MediaErrorCode, MediaEvent, MediaRequest, PcKind};
use shangliang::consult::ParticipantId;
use shangliang_signaling::{ActivityId, ClientMsg, Role, ServerMsg};
use webrtc::peer_connection::RTCSessionDescription;

/// A websocket client with a queue of server-initiated media events.
struct Member {
    c: Client,
    next: u32,
    events: VecDeque<MediaEvent>,
}

impl Member {
    async fn connect(h: &TestHub, name: &str, role: Role) -> Member {
        Member { c: h.client(role, name).await, next: 100, events: VecDeque::new() }
    }

    /// Sends a request and returns its answer; events arriving meanwhile are queued.
    async fn ask(&mut self, req: MediaRequest) -> MediaEvent {
        self.next += 1;
        let id = self.next;
        self.c.send(&ClientMsg::Media { id, req }).await;
        loop {
            match self.c.recv().await {
                ServerMsg::Media { id: Some(i), ev } if i == id => return ev,
                ServerMsg::Media { id: None, ev } => self.events.push_back(ev),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next server-initiated event.
    async fn event(&mut self) -> MediaEvent {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        match self.c.recv().await {
            ServerMsg::Media { id: None, ev } => ev,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The SFU binds one ephemeral UDP port per hub (the old port-range argument is ignored).
async fn hub(_first_port: u16) -> TestHub {
    TestHub::start(|_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_exchange_media_over_the_websocket_and_the_chaired_floor_gates_audio() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let h = hub(53_000).await;
        let alice = Member::connect(&h, "alice", Role::Member).await;
        let mut bob = Member::connect(&h, "bob", Role::Guest).await;
        let alice = Arc::new(tokio::sync::Mutex::new(alice));
        assert_eq!(alice.lock().await.ask(MediaRequest::Join).await, MediaEvent::Joined { participant: "member:alice".into(), ice_servers: vec![] });
        assert_eq!(bob.ask(MediaRequest::Join).await, MediaEvent::Joined { participant: "guest:bob".into(), ice_servers: vec![] });

        // Alice publishes through her websocket.
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

        // Bob answers the server's subscriber offers and hears about alice's tracks.
        let mut b = bots::bot().await;
        let mut rx = collect_tracks(&mut b);
        let (mut published, mut speaker, mut connected) = (0, None, false);
        while published < 2 || speaker.is_none() || !connected {
            match bob.event().await {
                MediaEvent::SubscriberOffer { sdp } => {
                    b.pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                    let ans = b.pc.create_answer(None).await.unwrap();
                    b.pc.set_local_description(ans).await.unwrap();
                    let _ = tokio::time::timeout(Duration::from_secs(5), b.gathered.wait_for(|g| *g)).await;
                    let sdp = b.pc.local_description().await.unwrap().sdp;
                    assert_eq!(bob.ask(MediaRequest::SubscriberAnswer { sdp }).await, MediaEvent::Ok);
                }
                MediaEvent::TrackPublished { participant, .. } => {
                    assert_eq!(participant, "member:alice");
                    published += 1;
                }
                MediaEvent::ActiveSpeaker { participant } => speaker = Some(participant),
                MediaEvent::ConnectionState { pc: PcKind::Subscriber, state } if state == "connected" => connected = true,
                _ => {}
            }
        }
        assert_eq!(speaker.as_ref().map(|p| p.as_str()), Some("member:alice"));
        // The demo activity is chaired: the moderation driver told the SFU (through the floor
        // hook) that alice may not be heard, so bob sees her but does not hear her.
        let got = collect_for(&mut rx, Duration::from_secs(2)).await;
        let (video, audio) = (got.iter().filter(|p| p.video).count(), got.iter().filter(|p| !p.video).count());
        assert!(video > 30, "bob got video {video}");
        assert_eq!(audio, 0, "audio passed without the floor");

        // The floor given (what the driver does on a grant): her audio reaches bob; taken back: stops.
        let floor = h.hub.media.floor_hook();
        let (demo, who) = (ActivityId::new("demo").unwrap(), ParticipantId::new("member:alice"));
        floor.set_forwarding(&demo, &who, true, true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = collect_for(&mut rx, Duration::from_secs(1)).await;
        assert!(got.iter().filter(|p| !p.video).count() > 20, "audio with the floor");
        floor.set_forwarding(&demo, &who, false, true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        while rx.try_recv().is_ok() {}
        let got = collect_for(&mut rx, Duration::from_secs(1)).await;
        assert_eq!(got.iter().filter(|p| !p.video).count(), 0, "audio passed after the floor was taken");
        assert!(got.iter().filter(|p| p.video).count() > 10);

        // Alice's websocket closes: she leaves, bob is told, her connections are freed.
        publisher.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(answerer);
        let alice = Arc::try_unwrap(alice).ok().expect("sole owner").into_inner();
        drop(alice);
        let mut gone = 0;
        while gone < 2 {
            if let MediaEvent::TrackUnpublished { participant, .. } = bob.event().await {
                assert_eq!(participant, "member:alice");
                gone += 1;
            }
        }
        assert_eq!(bob.ask(MediaRequest::Leave).await, MediaEvent::Left);
        // Closing is asynchronous (each peer connection's driver task ends after `close()`):
        // everything must be freed within a bounded time.
        // (The room itself stays: it holds the floor gates the driver set, by design.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut stats = h.hub.media.sfu.stats();
        while (stats.sessions, stats.peer_connections, stats.tasks_alive) != (0, 0, 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stats = h.hub.media.sfu.stats();
        }
        assert_eq!((stats.sessions, stats.peer_connections, stats.tasks_alive), (0, 0, 0), "{stats:?}");
        let _ = (publisher.bot.pc.close().await, b.pc.close().await);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_may_not_join_and_requests_need_a_join() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let h = hub(53_500).await;
        let mut v = Member::connect(&h, "v", Role::Viewer).await;
        assert!(matches!(v.ask(MediaRequest::Join).await, MediaEvent::Error { code: MediaErrorCode::Forbidden, .. }));
        let mut m = Member::connect(&h, "m", Role::Member).await;
        assert!(matches!(m.ask(MediaRequest::IceRestart).await, MediaEvent::Error { code: MediaErrorCode::NotJoined, .. }));
        assert!(matches!(m.ask(MediaRequest::Join).await, MediaEvent::Joined { .. }));
        assert!(matches!(m.ask(MediaRequest::Join).await, MediaEvent::Error { code: MediaErrorCode::AlreadyJoined, .. }));
        assert!(matches!(m.ask(MediaRequest::PublishOffer { sdp: "nonsense".into() }).await, MediaEvent::Error { code: MediaErrorCode::InvalidSdp, .. }));
        assert!(matches!(m.ask(MediaRequest::SubscriberAnswer { sdp: "v=0".into() }).await, MediaEvent::Error { .. }));
        assert_eq!(h.hub.media.sfu.stats().sessions, 1);
        // Closing the socket leaves the room and frees everything.
        drop(m);
        let t = std::time::Instant::now();
        while h.hub.media.sfu.stats().sessions != 0 || h.hub.media.sfu.stats().peer_connections != 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "not freed: {:?}", h.hub.media.sfu.stats());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("bounded");
}
