//! Behaviour tests of the fan-out core, driven without sockets. Most use a flush interval of an
//! hour and [`Fanout::flush_now`] so that every flush is explicit.

use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;
use shangliang_signaling::{Author, ItemBody, Role, close, decode_server};

use super::*;

fn topic() -> ActivityId {
    ActivityId::new("demo").unwrap()
}

fn comment(seq: u64, role: Role) -> Item {
    Item {
        seq: Seq(seq),
        ts: 1_700_000_000_000 + seq,
        body: ItemBody::Comment {
            author: Author { id: format!("u{seq}").into(), name: "n".into(), role, verified: false },
            text: format!("c{seq}"),
            approves: None,
        },
    }
}

fn manual(cfg: FanoutConfig) -> FanoutConfig {
    FanoutConfig { flush_interval: Duration::from_secs(3600), max_flush_interval: Duration::from_secs(3600), ..cfg }
}

fn cfg() -> FanoutConfig {
    manual(FanoutConfig { shards: 2, ..FanoutConfig::default() })
}

/// (from, to, thinned, item seqs) of a batch frame.
fn batch(form: Form, frame: &[u8]) -> (u64, u64, u32, Vec<u64>) {
    match decode_server(form, frame).unwrap() {
        ServerMsg::Batch { from, to, thinned, items, .. } => {
            (from.0, to.0, thinned, items.iter().map(|i| i.seq.0).collect())
        }
        other => panic!("not a batch: {other:?}"),
    }
}

fn frames(rx: &mut ConnReceiver) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(o) = rx.try_recv() {
        match o {
            Outbound::Frame(f) => out.push(f),
            Outbound::Close { .. } => panic!("unexpected close"),
        }
    }
    out
}

fn publish_n(f: &Fanout, from: u64, to: u64) {
    for s in from..=to {
        f.publish(&topic(), comment(s, Role::Viewer), true).unwrap();
    }
}

#[tokio::test]
async fn live_subscribers_share_one_batch_frame_per_flush() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (a, mut ra) = f.connect(Form::MsgPack);
    let (b, mut rb) = f.connect(Form::MsgPack);
    for c in [&a, &b] {
        let s = f.subscribe(c, &topic(), false, None).unwrap();
        assert_eq!((s.offset, s.catch_up), (Seq(0), CatchUp::Live));
    }
    publish_n(&f, 1, 3);
    f.flush_now().await;
    let (fa, fb) = (frames(&mut ra), frames(&mut rb));
    assert_eq!(fa.len(), 1);
    assert_eq!(batch(Form::MsgPack, &fa[0]), (1, 3, 0, vec![1, 2, 3]));
    assert_eq!(fa[0].as_ptr(), fb[0].as_ptr(), "the same encoded frame, shared");
    assert_eq!(f.topic_info(&topic()).unwrap().subscribers, 2);
}

#[tokio::test]
async fn json_connections_get_text_batches_encoded_once() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (a, mut ra) = f.connect(Form::Json);
    f.subscribe(&a, &topic(), true, None).unwrap();
    publish_n(&f, 1, 2);
    f.flush_now().await;
    let fa = frames(&mut ra);
    assert!(fa[0].starts_with(br#"{"t":"batch","topic":"demo""#));
    assert_eq!(batch(Form::Json, &fa[0]), (1, 2, 0, vec![1, 2]));
}

#[tokio::test]
async fn late_joiner_resumes_from_offset_in_the_ring() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(7), Seq(0));
    publish_n(&f, 1, 10);
    f.flush_now().await;
    let (c, mut rc) = f.connect(Form::MsgPack);
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(7), offset: Seq(4) })).unwrap();
    assert_eq!((s.epoch, s.offset), (Epoch(7), Seq(4)));
    let CatchUp::Frames(fs) = s.catch_up else { panic!("{:?}", s.catch_up) };
    assert_eq!(fs.len(), 1);
    assert_eq!(batch(Form::MsgPack, &fs[0]), (5, 10, 0, vec![5, 6, 7, 8, 9, 10]));
    publish_n(&f, 11, 12);
    f.flush_now().await;
    assert_eq!(batch(Form::MsgPack, &frames(&mut rc)[0]).0, 11, "live continues right after");
}

#[tokio::test]
async fn resume_at_the_edge_gets_no_catch_up_frames() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(5));
    let (c, _rc) = f.connect(Form::MsgPack);
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(5) })).unwrap();
    assert_eq!((s.offset, s.catch_up), (Seq(5), CatchUp::Frames(vec![])));
}

#[tokio::test]
async fn resume_older_than_the_ring_asks_for_the_record() {
    let f = Fanout::new(FanoutConfig { ring_capacity: 5, ..cfg() });
    f.open_topic(topic(), Epoch(1), Seq(0));
    publish_n(&f, 1, 20);
    f.flush_now().await;
    assert_eq!(f.topic_info(&topic()).unwrap().ring_first, Seq(16));
    let (c, _rc) = f.connect(Form::MsgPack);
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(3) })).unwrap();
    assert_eq!(s.offset, Seq(3));
    let CatchUp::FromRecord { from, to, then } = s.catch_up else { panic!("{:?}", s.catch_up) };
    assert_eq!((from, to), (Seq(4), Seq(15)));
    assert_eq!(batch(Form::MsgPack, &then[0]), (16, 20, 0, vec![16, 17, 18, 19, 20]));
}

#[tokio::test]
async fn resume_after_a_restart_reads_everything_from_the_record() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(500));
    let info = f.topic_info(&topic()).unwrap();
    assert_eq!((info.last_seq, info.ring_first), (Seq(500), Seq(501)));
    let (c, _rc) = f.connect(Form::MsgPack);
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(480) })).unwrap();
    assert_eq!(s.catch_up, CatchUp::FromRecord { from: Seq(481), to: Seq(500), then: vec![] });
}

#[tokio::test]
async fn resume_from_another_epoch_gets_reset_with_snapshot() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(2), Seq(0));
    publish_n(&f, 1, 80);
    f.publish(&topic(), comment(81, Role::Viewer), false).unwrap(); // held
    f.flush_now().await;
    let (c, _rc) = f.connect(Form::MsgPack);
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(70) })).unwrap();
    assert_eq!(s.offset, Seq(81), "the live edge");
    let CatchUp::Reset { reason, frame } = s.catch_up else { panic!() };
    assert_eq!(reason, ResetReason::EpochChanged);
    let ServerMsg::Reset { epoch, offset, snapshot, .. } = decode_server(Form::MsgPack, &frame).unwrap() else {
        panic!()
    };
    assert_eq!((epoch, offset), (Epoch(2), Seq(81)));
    let seqs: Vec<u64> = snapshot.iter().map(|i| i.seq.0).collect();
    assert_eq!(seqs, (31..=80).collect::<Vec<_>>(), "latest 50 public items, held one left out");
}

#[tokio::test]
async fn resume_ahead_of_the_topic_gets_reset() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(3));
    let (c, _rc) = f.connect(Form::MsgPack);
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(9) })).unwrap();
    assert!(matches!(s.catch_up, CatchUp::Reset { reason: ResetReason::OffsetAhead, .. }));
    assert_eq!(s.offset, Seq(3));
}

#[tokio::test]
async fn very_large_backlog_becomes_history_gone() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(MAX_CATCH_UP + 50));
    let (c, _rc) = f.connect(Form::MsgPack);
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(10) })).unwrap();
    assert!(matches!(s.catch_up, CatchUp::Reset { reason: ResetReason::HistoryGone, .. }));
}

#[tokio::test]
async fn resume_past_the_flushed_edge_flushes_first_so_nothing_repeats() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (live, mut rlive) = f.connect(Form::MsgPack);
    f.subscribe(&live, &topic(), false, None).unwrap();
    publish_n(&f, 1, 6); // not flushed yet
    let (c, mut rc) = f.connect(Form::MsgPack);
    // A client that saw up to 4 elsewhere (another node of a cluster).
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(4) })).unwrap();
    let CatchUp::Frames(fs) = s.catch_up else { panic!() };
    assert_eq!(batch(Form::MsgPack, &fs[0]), (5, 6, 0, vec![5, 6]));
    f.flush_now().await;
    assert!(frames(&mut rc).is_empty());
    assert_eq!(batch(Form::MsgPack, &frames(&mut rlive)[0]).1, 6, "existing subscribers got the early flush");
}

#[tokio::test]
async fn held_items_reach_only_the_full_view() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (p, mut rp) = f.connect(Form::MsgPack);
    let (m, mut rm) = f.connect(Form::MsgPack);
    f.subscribe(&p, &topic(), false, None).unwrap();
    f.subscribe(&m, &topic(), true, None).unwrap();
    f.publish(&topic(), comment(1, Role::Viewer), true).unwrap();
    f.publish(&topic(), comment(2, Role::Viewer), false).unwrap();
    f.publish(&topic(), comment(3, Role::Member), true).unwrap();
    f.flush_now().await;
    assert_eq!(batch(Form::MsgPack, &frames(&mut rp)[0]), (1, 3, 0, vec![1, 3]));
    assert_eq!(batch(Form::MsgPack, &frames(&mut rm)[0]), (1, 3, 0, vec![1, 2, 3]));
    // A batch with nothing visible still arrives, so the next `from` shows no gap.
    f.publish(&topic(), comment(4, Role::Viewer), false).unwrap();
    f.flush_now().await;
    assert_eq!(batch(Form::MsgPack, &frames(&mut rp)[0]), (4, 4, 0, vec![]));
    // Catch-up honours the view too.
    let (q, _rq) = f.connect(Form::MsgPack);
    let s = f.subscribe(&q, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(0) })).unwrap();
    let CatchUp::Frames(fs) = s.catch_up else { panic!() };
    assert_eq!(batch(Form::MsgPack, &fs[0]), (1, 4, 0, vec![1, 3]));
}

#[tokio::test]
async fn thinning_keeps_member_comments_and_counts_thinned() {
    let f = Fanout::new(FanoutConfig { public_max_per_sec: 2, ..cfg() });
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (p, mut rp) = f.connect(Form::MsgPack);
    let (m, mut rm) = f.connect(Form::MsgPack);
    f.subscribe(&p, &topic(), false, None).unwrap();
    f.subscribe(&m, &topic(), true, None).unwrap();
    // All within one second of ts: viewers 1,2,3,5,6; member 4; a hide 7.
    for s in 1..=6 {
        let role = if s == 4 { Role::Member } else { Role::Viewer };
        f.publish(&topic(), comment(s, role), true).unwrap();
    }
    let hide = Item { seq: Seq(7), ts: 1_700_000_000_007, body: ItemBody::Hide { target: Seq(1) } };
    f.publish(&topic(), hide, true).unwrap();
    f.flush_now().await;
    assert_eq!(batch(Form::MsgPack, &frames(&mut rp)[0]), (1, 7, 3, vec![1, 2, 4, 7]));
    assert_eq!(batch(Form::MsgPack, &frames(&mut rm)[0]), (1, 7, 0, vec![1, 2, 3, 4, 5, 6, 7]));
    // The next second has a fresh budget.
    let mut late = comment(8, Role::Viewer);
    late.ts += 1000;
    f.publish(&topic(), late, true).unwrap();
    f.flush_now().await;
    assert_eq!(batch(Form::MsgPack, &frames(&mut rp)[0]), (8, 8, 0, vec![8]));
}

#[tokio::test]
async fn resubscribe_skips_stale_frames_of_the_old_subscription() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (c, mut rc) = f.connect(Form::MsgPack);
    f.subscribe(&c, &topic(), false, None).unwrap();
    publish_n(&f, 1, 3);
    f.flush_now().await;
    publish_n(&f, 4, 5);
    f.flush_now().await;
    // Frames 1..=3 and 4..=5 sit in the queue; the client re-subscribes from 2.
    let s = f.subscribe(&c, &topic(), false, Some(Position { epoch: Epoch(1), offset: Seq(2) })).unwrap();
    let CatchUp::Frames(fs) = s.catch_up else { panic!() };
    assert_eq!(batch(Form::MsgPack, &fs[0]).0..=batch(Form::MsgPack, &fs[0]).1, 3..=5);
    publish_n(&f, 6, 6);
    f.flush_now().await;
    let fr = frames(&mut rc);
    assert_eq!(fr.len(), 1, "old frames skipped");
    assert_eq!(batch(Form::MsgPack, &fr[0]).0, 6);
    f.unsubscribe(&c, &topic());
    publish_n(&f, 7, 7);
    f.flush_now().await;
    assert!(frames(&mut rc).is_empty());
    assert_eq!(f.topic_info(&topic()).unwrap().subscribers, 0);
}

#[tokio::test]
async fn publish_refuses_unknown_topics_and_gaps() {
    let f = Fanout::new(cfg());
    assert_eq!(f.publish(&topic(), comment(1, Role::Viewer), true), Err(FanoutError::NoSuchTopic));
    f.open_topic(topic(), Epoch(1), Seq(10));
    f.open_topic(topic(), Epoch(1), Seq(0)); // idempotent
    assert_eq!(
        f.publish(&topic(), comment(12, Role::Viewer), true),
        Err(FanoutError::OutOfOrder { expected: Seq(11), got: Seq(12) })
    );
    f.publish(&topic(), comment(11, Role::Viewer), true).unwrap();
    assert_eq!(
        f.publish(&topic(), comment(11, Role::Viewer), true),
        Err(FanoutError::OutOfOrder { expected: Seq(12), got: Seq(11) })
    );
}

#[tokio::test]
async fn a_connection_holds_at_most_max_subscriptions() {
    let f = Fanout::new(cfg());
    let (c, _rc) = f.connect(Form::MsgPack);
    for i in 0..=MAX_SUBSCRIPTIONS {
        let t = ActivityId::new(&format!("t{i}")).unwrap();
        f.open_topic(t.clone(), Epoch(1), Seq(0));
        let r = f.subscribe(&c, &t, false, None);
        if i < MAX_SUBSCRIPTIONS {
            r.unwrap();
        } else {
            assert_eq!(r, Err(FanoutError::TooManySubscriptions));
        }
    }
    // Re-subscribing to a held topic is not a new subscription.
    f.subscribe(&c, &ActivityId::new("t0").unwrap(), false, None).unwrap();
}

#[tokio::test]
async fn dropping_the_handle_unsubscribes_everything() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (c, mut rc) = f.connect(Form::MsgPack);
    f.subscribe(&c, &topic(), false, None).unwrap();
    drop(c);
    assert_eq!(f.topic_info(&topic()).unwrap().subscribers, 0);
    publish_n(&f, 1, 1);
    f.flush_now().await;
    assert_eq!(rc.recv().await, None, "queue closed once the shard forgot the connection");
}

#[tokio::test(start_paused = true)]
async fn the_flusher_delivers_on_its_own_within_the_interval() {
    let f = Fanout::new(FanoutConfig { shards: 2, ..FanoutConfig::default() });
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (c, mut rc) = f.connect(Form::MsgPack);
    f.subscribe(&c, &topic(), false, None).unwrap();
    let t0 = tokio::time::Instant::now();
    publish_n(&f, 1, 2);
    let Some(Outbound::Frame(fr)) = rc.recv().await else { panic!() };
    assert_eq!(batch(Form::MsgPack, &fr), (1, 2, 0, vec![1, 2]));
    assert!(t0.elapsed() <= Duration::from_millis(20));
}

#[tokio::test(start_paused = true)]
async fn slow_consumer_is_closed_while_others_keep_receiving() {
    let f = Fanout::new(FanoutConfig {
        shards: 2,
        queue_frames: 4,
        lag_close_after: Duration::from_secs(5),
        ..FanoutConfig::default()
    });
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (slow, mut rslow) = f.connect(Form::MsgPack);
    let (fast, mut rfast) = f.connect(Form::MsgPack);
    f.subscribe(&slow, &topic(), false, None).unwrap();
    f.subscribe(&fast, &topic(), false, None).unwrap();
    let mut seq = 0;
    let mut fast_to = 0;
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        seq += 1;
        publish_n(&f, seq, seq);
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Some(Outbound::Frame(fr)) = rfast.try_recv() {
            let (from, to, _, _) = batch(Form::MsgPack, &fr);
            assert_eq!(from, fast_to + 1, "the fast consumer loses nothing");
            fast_to = to;
        }
    }
    assert!(fast_to >= seq - 1, "and stays within one flush of the edge");
    // The slow one's queue is full, yet the close comes first.
    assert_eq!(rslow.try_recv(), Some(Outbound::Close { code: close::SLOW_CONSUMER, reason: "slow consumer" }));
    assert_eq!(rslow.try_recv(), None);
    assert_eq!(f.subscribe(&slow, &topic(), false, None), Err(FanoutError::Closed));
}

// ---- property: no gap, no duplicate ----

#[derive(Debug, Clone)]
enum Op {
    Publish { n: u8, public: bool, member: bool },
    Subscribe { conn: usize, full: bool, resume: Option<(bool, u64)> },
    Unsubscribe { conn: usize },
    Flush,
    Drain { conn: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..8, prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(n, public, member)| Op::Publish { n, public, member }),
        2 => (0usize..4, any::<bool>(), prop::option::of((prop::bool::weighted(0.9), 0u64..60)))
            .prop_map(|(conn, full, resume)| Op::Subscribe { conn, full, resume }),
        1 => (0usize..4).prop_map(|conn| Op::Unsubscribe { conn }),
        2 => Just(Op::Flush),
        2 => (0usize..4).prop_map(|conn| Op::Drain { conn }),
    ]
}

/// What the model expects of one connection's subscription.
struct Sub {
    full: bool,
    holds: u64,
}

/// `lossy`: live frames may have been dropped (full queue): a gap is allowed, a repeat is not.
fn check_batch(frame: &[u8], sub: &mut Sub, public: &HashSet<u64>, lossy: bool) -> Result<(), TestCaseError> {
    let (from, to, thinned, items) = batch(Form::MsgPack, frame);
    if lossy {
        prop_assert!(from > sub.holds, "repeat: from {} after {}", from, sub.holds);
    } else {
        prop_assert_eq!(from, sub.holds + 1, "gap or duplicate");
    }
    prop_assert!(to >= from);
    let expect: Vec<u64> = (from..=to).filter(|s| sub.full || public.contains(s)).collect();
    if sub.full {
        prop_assert_eq!(items, expect);
        prop_assert_eq!(thinned, 0);
    } else {
        prop_assert!(items.iter().all(|s| public.contains(s)), "non-public item in the public view");
        prop_assert_eq!(items.len() + thinned as usize, expect.len());
    }
    sub.holds = to;
    Ok(())
}

fn run_ops(ops: Vec<Op>, queue_frames: usize) -> Result<(), TestCaseError> {
    let lossy = queue_frames < 64;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    rt.block_on(async move {
        let f = Fanout::new(FanoutConfig { ring_capacity: 6, public_max_per_sec: 3, queue_frames, ..cfg() });
        f.open_topic(topic(), Epoch(1), Seq(0));
        let mut conns: Vec<(ConnHandle, ConnReceiver, Option<Sub>)> = (0..4)
            .map(|_| {
                let (h, r) = f.connect(Form::MsgPack);
                (h, r, None)
            })
            .collect();
        let mut last = 0u64;
        let mut public = HashSet::new();
        for op in ops {
            match op {
                Op::Publish { n, public: p, member } => {
                    for _ in 0..n {
                        last += 1;
                        let role = if member { Role::Member } else { Role::Viewer };
                        let mut item = comment(last, role);
                        item.ts = 1_700_000_000_000 + last * 100; // ten per second
                        f.publish(&topic(), item, p).unwrap();
                        if p {
                            public.insert(last);
                        }
                    }
                }
                Op::Subscribe { conn, full, resume } => {
                    let (h, r, sub) = &mut conns[conn];
                    // Drain first: stale frames are skipped anyway, but the model must see the
                    // live frames of the old subscription before it is replaced.
                    f.sync().await;
                    if let Some(s) = sub.as_mut() {
                        for fr in frames(r) {
                            check_batch(&fr, s, &public, lossy)?;
                        }
                    }
                    let pos = resume.map(|(same, off)| Position {
                        epoch: Epoch(if same { 1 } else { 9 }),
                        offset: Seq(off.min(last + 1)),
                    });
                    let s = f.subscribe(h, &topic(), full, pos).unwrap();
                    // `offset` is what the client holds before the catch-up: the resume offset
                    // if honoured, else the live edge.
                    let mut model = Sub { full, holds: s.offset.0 };
                    if let (Some(p), false) = (pos, matches!(s.catch_up, CatchUp::Reset { .. })) {
                        prop_assert_eq!(p.offset, s.offset);
                    }
                    match s.catch_up {
                        CatchUp::Live => prop_assert!(pos.is_none()),
                        CatchUp::Frames(fs) => {
                            for fr in fs {
                                check_batch(&fr, &mut model, &public, false)?;
                            }
                        }
                        CatchUp::FromRecord { from, to, then } => {
                            prop_assert_eq!(from.0, model.holds + 1);
                            prop_assert!(to >= from);
                            model.holds = to.0;
                            for fr in then {
                                check_batch(&fr, &mut model, &public, false)?;
                            }
                        }
                        CatchUp::Reset { .. } => model.holds = s.offset.0,
                    }
                    *sub = Some(model);
                }
                Op::Unsubscribe { conn } => {
                    let (h, _, sub) = &mut conns[conn];
                    f.unsubscribe(h, &topic());
                    *sub = None;
                }
                Op::Flush => f.flush_now().await,
                Op::Drain { conn } => {
                    f.sync().await;
                    let (_, r, sub) = &mut conns[conn];
                    let fs = frames(r);
                    match sub.as_mut() {
                        Some(s) => {
                            for fr in fs {
                                check_batch(&fr, s, &public, lossy)?;
                            }
                        }
                        None => prop_assert!(fs.is_empty(), "frames after unsubscribe"),
                    }
                }
            }
        }
        // Everything published reaches every subscriber after a final flush.
        f.flush_now().await;
        for (_, r, sub) in &mut conns {
            if let Some(s) = sub.as_mut() {
                for fr in frames(r) {
                    check_batch(&fr, s, &public, lossy)?;
                }
                if !lossy {
                    prop_assert_eq!(s.holds, last);
                }
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn subscribers_see_contiguous_ranges_without_duplicates(ops in prop::collection::vec(op(), 1..60)) {
        run_ops(ops, 64)?;
    }

    #[test]
    fn lost_frames_show_as_gaps_never_as_repeats(ops in prop::collection::vec(op(), 1..60)) {
        run_ops(ops, 2)?;
    }
}

/// Real threads: a publisher thread races subscribers that resume from random offsets.
#[test]
fn concurrent_publishes_and_resumes_never_gap_or_repeat() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let f = Fanout::new(FanoutConfig {
            shards: 2,
            ring_capacity: 200,
            queue_frames: 100_000,
            flush_interval: Duration::from_millis(1),
            ..FanoutConfig::default()
        });
        f.open_topic(topic(), Epoch(1), Seq(0));
        const N: u64 = 3000;
        let pf = f.clone();
        let publisher = std::thread::spawn(move || {
            for s in 1..=N {
                pf.publish(&topic(), comment(s, Role::Viewer), true).unwrap();
                if s % 50 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        });
        let mut tasks = Vec::new();
        for i in 0..40u64 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(i * 400)).await;
                let (h, mut r) = f.connect(Form::MsgPack);
                let last = f.topic_info(&topic()).unwrap().last_seq.0;
                let resume = (i % 3 != 0).then(|| Position { epoch: Epoch(1), offset: Seq(last.saturating_sub(i * 7)) });
                let s = f.subscribe(&h, &topic(), false, resume).unwrap();
                let mut holds = s.offset.0;
                assert_eq!(holds, resume.map_or(holds, |p| p.offset.0));
                match s.catch_up {
                    CatchUp::Live => {}
                    CatchUp::Frames(fs) => {
                        for fr in fs {
                            let (from, to, _, _) = batch(Form::MsgPack, &fr);
                            assert_eq!(from, holds + 1);
                            holds = to;
                        }
                    }
                    CatchUp::FromRecord { from, to, then } => {
                        assert_eq!(from.0, holds + 1);
                        holds = to.0;
                        for fr in then {
                            let (from, to, _, _) = batch(Form::MsgPack, &fr);
                            assert_eq!(from, holds + 1);
                            holds = to;
                        }
                    }
                    CatchUp::Reset { .. } => panic!("unexpected reset"),
                }
                while holds < N {
                    let Some(Outbound::Frame(fr)) = r.recv().await else { panic!("closed") };
                    let (from, to, _, _) = batch(Form::MsgPack, &fr);
                    assert_eq!(from, holds + 1, "conn {i}: gap or duplicate");
                    holds = to;
                }
                drop(h);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        publisher.join().unwrap();
    });
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Fanout>();
    send_sync::<ConnHandle>();
    send::<ConnReceiver>();
    send_sync::<FanoutError>();
}

#[tokio::test]
async fn broadcast_reaches_the_chosen_views_encoded_once_per_form() {
    let f = Fanout::new(cfg());
    f.open_topic(topic(), Epoch(1), Seq(0));
    let (m, mut rm) = f.connect(Form::MsgPack);
    let (v1, mut rv1) = f.connect(Form::MsgPack);
    let (v2, mut rv2) = f.connect(Form::MsgPack);
    let (j, mut rj) = f.connect(Form::Json);
    f.subscribe(&m, &topic(), true, None).unwrap();
    for c in [&v1, &v2, &j] {
        f.subscribe(c, &topic(), false, None).unwrap();
    }
    let msg = ServerMsg::Pong { id: 7 };
    f.broadcast(&topic(), Views::Full, &msg).unwrap();
    f.sync().await;
    assert_eq!(frames(&mut rm).len(), 1);
    assert!(frames(&mut rv1).is_empty() && frames(&mut rj).is_empty());
    f.broadcast(&topic(), Views::Public, &msg).unwrap();
    f.sync().await;
    assert!(frames(&mut rm).is_empty());
    let (a, b, c) = (frames(&mut rv1), frames(&mut rv2), frames(&mut rj));
    assert_eq!(a[0].as_ptr(), b[0].as_ptr(), "one encoded frame shared by the MsgPack subscribers");
    assert_eq!(decode_server(Form::Json, &c[0]).unwrap(), msg);
    f.broadcast(&topic(), Views::All, &msg).unwrap();
    f.sync().await;
    assert_eq!(frames(&mut rm).len() + frames(&mut rv1).len() + frames(&mut rj).len(), 3);
    // Items published before stay in sequence: a broadcast does not consume a seq.
    publish_n(&f, 1, 1);
    f.flush_now().await;
    assert_eq!(batch(Form::MsgPack, &frames(&mut rv1)[0]), (1, 1, 0, vec![1]));
}
