//! Polls over the real websocket: moderators prepare, launch and close them, viewers answer once
//! per identity, and the live results reach every subscriber as coalesced tallies split by tier.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestHub, WAIT, demo};
use serde_json::{Value, json};
use shangliang::consensus::{ConsensusEvent, PollState, PollTally, Tier};
use shangliang::server::auth::{Claims, now_secs};
use shangliang_signaling::consult::ConsultEvent;
use shangliang_signaling::{ActivityId, ClientMsg, ErrorCode, Form, Role, ServerMsg};

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1_000);

fn token(hub: &TestHub, role: Role, name: &str, verified: bool) -> String {
    let now = now_secs();
    hub.hub.keys.mint(&Claims {
        sub: format!("{}:{name}", role.as_str()).into(),
        name: name.into(),
        role,
        act: ActivityId::new("demo").unwrap(),
        org: None,
        verified,
        iat: now,
        exp: now + 3600,
    })
}

/// A client of `role` that has subscribed to the demo activity (its `state` consumed).
async fn joined(hub: &TestHub, role: Role, name: &str, verified: bool) -> Client {
    let mut c = Client::connect(&hub.url(), Form::MsgPack).await;
    c.auth(&token(hub, role, name, verified)).await;
    assert!(matches!(c.sub(&demo(), None).await, ServerMsg::Subscribed { .. }));
    c
}

/// Sends a `consensus` request without waiting; returns its id.
async fn send(c: &mut Client, req: Value) -> u32 {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.send(&ClientMsg::Consensus { id, topic: demo(), req }).await;
    id
}

/// What a client saw while waiting for an answer.
#[derive(Default)]
struct Seen {
    events: Vec<ConsensusEvent>,
    audit: Vec<String>,
}

impl Seen {
    fn note(&mut self, m: ServerMsg) {
        match m {
            ServerMsg::Consensus { event, .. } => self.events.push(serde_json::from_value(event).expect("a consensus event")),
            ServerMsg::Event { event: ConsultEvent::Audit { entry }, .. } => self.audit.push(entry.action),
            _ => {}
        }
    }

    fn tallies(&self) -> impl Iterator<Item = &PollTally> {
        self.events.iter().filter_map(|e| match e {
            ConsensusEvent::PollTally { tally } => Some(tally),
            _ => None,
        })
    }
}

/// Waits for the answer to request `id`, noting everything else.
async fn answer(c: &mut Client, id: u32, seen: &mut Seen) -> Result<Value, ErrorCode> {
    loop {
        match c.recv().await {
            ServerMsg::ConsensusReply { id: i, reply } if i == id => return Ok(reply),
            ServerMsg::Error { id: Some(i), code, .. } if i == id => return Err(code),
            other => seen.note(other),
        }
    }
}

async fn ask(c: &mut Client, req: Value, seen: &mut Seen) -> Result<Value, ErrorCode> {
    let id = send(c, req).await;
    answer(c, id, seen).await
}

/// Reads until `done` accepts what was seen.
async fn until(c: &mut Client, seen: &mut Seen, mut done: impl FnMut(&Seen) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv(left).await {
            Some(Ok(m)) => seen.note(m),
            Some(Err(e)) => panic!("connection ended: {e:?}"),
            None => panic!("not seen within {WAIT:?}"),
        }
    }
}

fn closed_tally(seen: &Seen, poll: u64) -> Option<&PollTally> {
    seen.tallies().find(|t| u64::from(t.poll.0) == poll && t.state == PollState::Closed)
}

fn poll_id(reply: &Value) -> u64 {
    assert_eq!(reply["r"], "poll_created", "{reply}");
    reply["poll"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_viewers_vote_within_a_second_and_each_gets_a_few_coalesced_tallies_that_end_at_the_votes() {
    const VIEWERS: usize = 200;
    let hub = TestHub::start(|_| {}).await;
    let mut moderator = joined(&hub, Role::Moderator, "主持", false).await;
    let mut mseen = Seen::default();
    let spec = json!({"question": "今天的议题哪个最急？", "kind": "single_choice", "options": ["交通", "教育", "医疗"], "changeable": false});
    let poll = poll_id(&ask(&mut moderator, json!({"c": "poll_create", "spec": spec, "countdown_s": 120}), &mut mseen).await.unwrap());

    // Viewers of every tier: anonymous and verified viewers, members.
    let mut viewers = Vec::new();
    for i in 0..VIEWERS {
        let (role, verified) = match i % 3 {
            0 => (Role::Viewer, false),
            1 => (Role::Viewer, true),
            _ => (Role::Member, false),
        };
        viewers.push(joined(&hub, role, &format!("v{i}"), verified).await);
    }
    assert_eq!(ask(&mut moderator, json!({"c": "poll_launch", "poll": poll}), &mut mseen).await.unwrap()["r"], "done");

    // Every viewer answers at once (option i % 3 → 67, 67, 66) and then reads until the
    // closed tally arrives.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut v) in viewers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let id = send(&mut v, json!({"c": "poll_answer", "poll": poll, "answer": {"a": "choice", "option": i % 3}})).await;
            let reply = answer(&mut v, id, &mut seen).await.expect("answer counted");
            assert_eq!(reply, json!({"r": "answered", "outcome": "new"}));
            until(&mut v, &mut seen, |s| closed_tally(s, poll).is_some()).await;
            seen
        }));
    }
    // The moderator sees the answers come in, then closes once all 200 are counted.
    until(&mut moderator, &mut mseen, |s| s.tallies().any(|t| t.voters as usize == VIEWERS)).await;
    let voting = started.elapsed();
    assert_eq!(ask(&mut moderator, json!({"c": "poll_close", "poll": poll}), &mut mseen).await.unwrap()["r"], "done");

    let expected = [67u32, 67, 66];
    for t in tasks {
        let seen = t.await.unwrap();
        let tallies: Vec<_> = seen.tallies().collect();
        // Coalesced: one frame per 500 ms at most while answers came in, plus the closing one
        // (never one per vote: 200 votes arrived).
        let bound = 2 + (voting.as_millis() / 500) as usize + 1;
        assert!(tallies.len() <= bound, "{} tally frames in {voting:?} (bound {bound})", tallies.len());
        let last = closed_tally(&seen, poll).unwrap();
        assert_eq!(last.voters as usize, VIEWERS);
        assert_eq!(last.counts, expected);
        // By tier from the tokens' claims: i % 3 == 0 anonymous (all chose option 0), 1 verified
        // (option 1), 2 member (option 2).
        for part in &last.by_tier {
            let (voters, counts) = match part.part {
                Tier::Anonymous => (67, vec![67, 0, 0]),
                Tier::Verified => (67, vec![0, 67, 0]),
                Tier::Member => (66, vec![0, 0, 66]),
            };
            assert_eq!((part.voters, &part.counts), (voters, &counts), "{:?}", part.part);
        }
        // Revisions only go up.
        assert!(tallies.windows(2).all(|w| w[0].revision <= w[1].revision));
    }
    // The moderator's actions are in the audit chain, in order.
    until(&mut moderator, &mut mseen, |s| s.audit.len() >= 3).await;
    assert_eq!(mseen.audit, ["poll_created", "poll_launched", "poll_closed"]);
}

#[tokio::test]
async fn a_second_answer_is_refused_unless_the_poll_is_changeable_and_a_closed_poll_is_frozen() {
    let hub = TestHub::start(|_| {}).await;
    let mut m = joined(&hub, Role::Moderator, "主持", false).await;
    let mut v = joined(&hub, Role::Viewer, "看客", false).await;
    let mut seen = Seen::default();
    let fixed = poll_id(
        &ask(&mut m, json!({"c": "poll_create", "spec": {"question": "满意吗？", "kind": "rating", "min": 1, "max": 5, "changeable": false}}), &mut seen)
            .await
            .unwrap(),
    );
    let free = poll_id(
        &ask(&mut m, json!({"c": "poll_create", "spec": {"question": "选哪些？", "kind": "multiple_choice", "options": ["甲", "乙", "丙"], "max_choices": 2}}), &mut seen)
            .await
            .unwrap(),
    );
    // A prepared poll is not open to answers, and viewers may not launch it.
    let rate = |value: i64| json!({"c": "poll_answer", "poll": fixed, "answer": {"a": "rating", "value": value}});
    assert_eq!(ask(&mut v, rate(4), &mut seen).await, Err(ErrorCode::NoSuchPoll));
    assert_eq!(ask(&mut v, json!({"c": "poll_launch", "poll": fixed}), &mut seen).await, Err(ErrorCode::Forbidden));
    assert_eq!(ask(&mut v, json!({"c": "poll_create", "spec": {"question": "x", "kind": "open_word", "max_words": 1}}), &mut seen).await, Err(ErrorCode::Forbidden));
    for p in [fixed, free] {
        ask(&mut m, json!({"c": "poll_launch", "poll": p}), &mut seen).await.unwrap();
    }
    assert_eq!(ask(&mut v, rate(9), &mut seen).await, Err(ErrorCode::InvalidAnswer));
    assert_eq!(ask(&mut v, rate(4), &mut seen).await.unwrap()["outcome"], "new");
    assert_eq!(ask(&mut v, rate(2), &mut seen).await, Err(ErrorCode::AlreadyAnswered));
    let pick = |options: Value| json!({"c": "poll_answer", "poll": free, "answer": {"a": "choices", "options": options}});
    assert_eq!(ask(&mut v, pick(json!([0, 1])), &mut seen).await.unwrap()["outcome"], "new");
    assert_eq!(ask(&mut v, pick(json!([2])), &mut seen).await.unwrap()["outcome"], "changed");
    assert_eq!(ask(&mut v, pick(json!([0, 1, 2])), &mut seen).await, Err(ErrorCode::InvalidAnswer));

    ask(&mut m, json!({"c": "poll_close", "poll": free}), &mut seen).await.unwrap();
    assert_eq!(ask(&mut v, pick(json!([0])), &mut seen).await, Err(ErrorCode::BadPollState));
    until(&mut v, &mut seen, |s| closed_tally(s, free).is_some()).await;
    let last = closed_tally(&seen, free).unwrap();
    assert_eq!((last.voters, last.counts.clone()), (1, vec![0, 0, 1]), "the changed answer counts, once");

    // A late joiner gets the polls and the frozen tally in `state`.
    let mut late = joined(&hub, Role::Viewer, "迟到", false).await;
    let state = ask(&mut late, json!({"c": "state"}), &mut Seen::default()).await.unwrap();
    assert_eq!(state["r"], "state");
    assert_eq!(state["polls"].as_array().unwrap().len(), 2);
    let frozen = state["tallies"].as_array().unwrap().iter().find(|t| t["poll"] == free).unwrap();
    assert_eq!(frozen["state"], "closed");
    assert_eq!(frozen["counts"], json!([0, 0, 1]));
    // Malformed requests are refused with their id and the connection stays.
    assert_eq!(ask(&mut late, json!({"c": "poll_answer", "poll": "x"}), &mut seen).await, Err(ErrorCode::BadFrame));
    assert_eq!(ask(&mut late, json!({"c": "no_such_request"}), &mut seen).await, Err(ErrorCode::BadFrame));
}

#[tokio::test]
async fn a_countdown_closes_the_poll_by_itself_for_everyone() {
    let hub = TestHub::start(|_| {}).await;
    let mut m = joined(&hub, Role::Moderator, "主持", false).await;
    let mut v = joined(&hub, Role::Viewer, "看客", false).await;
    let mut seen = Seen::default();
    let spec = json!({"question": "一个词形容今天", "kind": "open_word", "max_words": 2});
    // Countdowns are 5 s to an hour.
    assert_eq!(ask(&mut m, json!({"c": "poll_create", "spec": spec, "countdown_s": 1}), &mut seen).await, Err(ErrorCode::BadTimeLimit));
    let poll = poll_id(
        &ask(&mut m, json!({"c": "poll_create", "spec": spec, "countdown_s": 5}), &mut seen)
            .await
            .unwrap(),
    );
    let opened = Instant::now();
    ask(&mut m, json!({"c": "poll_launch", "poll": poll}), &mut seen).await.unwrap();
    ask(&mut v, json!({"c": "poll_answer", "poll": poll, "answer": {"a": "words", "words": ["务实", "热烈"]}}), &mut seen).await.unwrap();
    let mut vseen = Seen::default();
    until(&mut v, &mut vseen, |s| {
        s.events.iter().any(|e| matches!(e, ConsensusEvent::PollChanged { poll: p } if p.state == PollState::Closed))
    })
    .await;
    assert!(opened.elapsed() >= Duration::from_millis(4_900), "closed early: {:?}", opened.elapsed());
    until(&mut v, &mut vseen, |s| closed_tally(s, poll).is_some()).await;
    let last = closed_tally(&vseen, poll).unwrap();
    assert_eq!(last.voters, 1);
    assert_eq!(last.words.len(), 2);
    let summary = ask(&mut m, json!({"c": "state"}), &mut seen).await.unwrap();
    assert_eq!(summary["polls"][0]["state"], "closed");
}

// 8,000 nested arrays in a small client frame once overflowed the stack of the thread decoding it
// (serde buffers an internally tagged enum's fields into `Content` recursively, before
// `rmp_serde`'s depth limit), aborting the hub: `decode_client` now bounds the nesting first
// (`MAX_CLIENT_NESTING`).
#[tokio::test]
async fn a_deeply_nested_consensus_request_is_refused_and_the_connection_stays() {
    use tokio_tungstenite::tungstenite::Message;
    let hub = TestHub::start(|_| {}).await;
    let mut v = joined(&hub, Role::Viewer, "看客", false).await;
    // {"t": "consensus", "id": 1, "topic": "demo", "req": [[[[...]]]]}: 8,000 nested one-element
    // arrays (MessagePack 0x91), well inside the frame limit.
    let mut frame = vec![0x84];
    for (k, v) in [("t", "consensus"), ("topic", "demo")] {
        frame.extend(rmp_serde::to_vec(k).unwrap());
        frame.extend(rmp_serde::to_vec(v).unwrap());
    }
    frame.extend(rmp_serde::to_vec("id").unwrap());
    frame.push(0x01);
    frame.extend(rmp_serde::to_vec("req").unwrap());
    frame.extend(std::iter::repeat_n(0x91u8, 8_000));
    frame.push(0xc0);
    v.send_raw(Message::Binary(frame.into())).await;
    loop {
        match v.recv().await {
            ServerMsg::Error { code, .. } => break assert_eq!(code, ErrorCode::BadFrame),
            ServerMsg::State { .. } => continue,
            other => panic!("expected an error, got {other:?}"),
        }
    }
    // Still served.
    let state = ask(&mut v, json!({"c": "state"}), &mut Seen::default()).await.unwrap();
    assert_eq!(state["r"], "state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_answer_is_refused_while_the_activity_is_not_live_and_reading_the_state_is_not() {
    use shangliang::record::ActivityState;
    let hub = TestHub::start(|_| {}).await;
    let mut moderator = joined(&hub, Role::Moderator, "主持", false).await;
    let mut viewer = joined(&hub, Role::Viewer, "观众", false).await;
    let mut seen = Seen::default();
    let spec = json!({"question": "开始了吗？", "kind": "single_choice", "options": ["是", "否"], "changeable": true});
    let poll = poll_id(&ask(&mut moderator, json!({"c": "poll_create", "spec": spec}), &mut seen).await.unwrap());
    assert_eq!(ask(&mut moderator, json!({"c": "poll_launch", "poll": poll}), &mut seen).await.unwrap()["r"], "done");
    let answer_req = json!({"c": "poll_answer", "poll": poll, "answer": {"a": "choice", "option": 0}});

    // The organisers take the activity back to scheduled (the same holds for a closed one).
    hub.hub.record.set_activity_state(&demo(), ActivityState::Scheduled).await.unwrap();
    // A live state is trusted for `RECHECK` at most; after it, the gate reads the record again.
    tokio::time::sleep(shangliang::organise::gate::RECHECK + Duration::from_millis(200)).await;
    assert_eq!(ask(&mut viewer, answer_req.clone(), &mut seen).await, Err(ErrorCode::NotAllowed));
    assert_eq!(
        ask(&mut moderator, json!({"c": "poll_close", "poll": poll}), &mut seen).await,
        Err(ErrorCode::NotAllowed),
        "the chair's poll work is gated too"
    );
    let state = ask(&mut viewer, json!({"c": "state"}), &mut seen).await.unwrap();
    assert_eq!(state["r"], "state", "reading is not gated: {state}");
    ask(&mut viewer, json!({"c": "statement_next"}), &mut seen).await.expect("reading the next statements is not gated");

    // Live again: the same answer is taken at once (an activity that opens takes input at once).
    hub.hub.record.set_activity_state(&demo(), ActivityState::Live).await.unwrap();
    assert_eq!(ask(&mut viewer, answer_req, &mut seen).await.unwrap(), json!({"r": "answered", "outcome": "new"}));
}
