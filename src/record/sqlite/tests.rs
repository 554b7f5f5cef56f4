use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use shangliang_signaling::{Author, Item, Role};
use tempfile::TempDir;

use super::*;
use crate::record::audit::GENESIS_HASH;

fn id(s: &str) -> ActivityId {
    ActivityId::new(s).unwrap()
}

fn comment(text: &str) -> ItemBody {
    ItemBody::Comment {
        author: Author {
            id: "u1".into(),
            name: "张三".into(),
            role: Role::Viewer,
            verified: false,
        },
        text: text.into(),
        approves: None,
    }
}

fn text_of(item: &Item) -> &str {
    match &item.body {
        ItemBody::Comment { text, .. } => text,
        other => panic!("not a comment: {other:?}"),
    }
}

type Seen = Arc<Mutex<Vec<(ActivityId, u64, bool)>>>;

/// A record in a fresh directory whose hook remembers what it saw.
fn open() -> (TempDir, SqliteRecord, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Default::default();
    let hook_seen = seen.clone();
    let record = SqliteRecord::open(
        &dir.path().join("record.sqlite"),
        RecordOptions::default(),
        Box::new(move |a, item, public| {
            hook_seen
                .lock()
                .unwrap()
                .push((a.clone(), item.seq.0, public))
        }),
    )
    .unwrap();
    (dir, record, seen)
}

async fn live(record: &SqliteRecord, name: &str) -> ActivityId {
    let a = id(name);
    record
        .create_activity(
            a.clone(),
            "议题",
            ActivityKind::Livestream,
            ActivityState::Live,
        )
        .await
        .unwrap();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_get_consecutive_seqs_per_activity() {
    let (_dir, record, seen) = open();
    let acts = [live(&record, "a").await, live(&record, "b").await];
    let mut tasks = Vec::new();
    for t in 0..50 {
        let record = record.clone();
        let a = acts[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..20 {
                let item = record.append_durable(&a, comment(&format!("{t}-{i}")), i % 3 != 0)
                    .await
                    .unwrap();
                seqs.push(item.seq.0);
            }
            seqs
        }));
    }
    let mut got = [Vec::new(), Vec::new()];
    for (t, task) in tasks.into_iter().enumerate() {
        got[t % 2].extend(task.await.unwrap());
    }
    for (a, seqs) in acts.iter().zip(&mut got) {
        seqs.sort_unstable();
        assert_eq!(
            *seqs,
            (1..=500).collect::<Vec<u64>>(),
            "{a}: no gap, no duplicate"
        );
        assert_eq!(record.head(a).unwrap(), Seq(500));
        let hooked: Vec<u64> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(x, ..)| x == a)
            .map(|(_, s, _)| *s)
            .collect();
        assert_eq!(
            hooked,
            (1..=500).collect::<Vec<u64>>(),
            "{a}: hook in seq order, once each"
        );
    }
}

#[tokio::test]
async fn items_come_back_in_range_and_respect_public_only() {
    let (_dir, record, _) = open();
    let a = live(&record, "a").await;
    let other = live(&record, "other").await;
    for i in 1..=10u64 {
        // Odd seqs are public, even ones held for review.
        record.append_durable(&a, comment(&format!("c{i}")), i % 2 == 1)
            .await
            .unwrap();
        record.append_durable(&other, comment("noise"), true).await.unwrap();
    }
    let all = record.items(&a, Seq(3), Seq(7), false).await.unwrap();
    assert_eq!(
        all.iter().map(|s| (s.item.seq.0, s.public)).collect::<Vec<_>>(),
        [(3, true), (4, false), (5, true), (6, false), (7, true)]
    );
    assert_eq!(
        all.iter().map(|s| text_of(&s.item)).collect::<Vec<_>>(),
        ["c3", "c4", "c5", "c6", "c7"]
    );
    let public = record.items(&a, Seq(3), Seq(7), true).await.unwrap();
    assert_eq!(
        public.iter().map(|s| s.item.seq.0).collect::<Vec<_>>(),
        [3, 5, 7]
    );
    assert!(
        record
            .items(&a, Seq(11), Seq(20), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        record
            .items(&a, Seq(7), Seq(3), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        record
            .items(&id("nobody"), Seq(1), Seq(9), false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn appended_item_carries_seq_time_and_body_as_stored() {
    let (_dir, record, _) = open();
    let a = live(&record, "a").await;
    let before = crate::record::now_ms();
    let item = record.append_durable(&a, comment("你好"), true).await.unwrap();
    assert_eq!(item.seq, Seq(1));
    assert!(item.ts >= before && item.ts <= crate::record::now_ms());
    let hide = record.append_durable(&a, ItemBody::Hide { target: Seq(1) }, true)
        .await
        .unwrap();
    assert_eq!(hide.seq, Seq(2));
    assert_eq!(
        record.items(&a, Seq(1), Seq(2), false).await.unwrap(),
        vec![StoredItem { item, public: true }, StoredItem { item: hide, public: true }]
    );
}

#[tokio::test]
async fn activities_are_created_once_with_an_epoch_javascript_can_hold() {
    let (_dir, record, _) = open();
    let a = live(&record, "a").await;
    let got = record.activity(&a).unwrap().unwrap();
    assert!(got.epoch.0 > 0 && got.epoch.0 < 1 << 31);
    assert_eq!(
        (got.kind, got.state, got.title.as_str()),
        (ActivityKind::Livestream, ActivityState::Live, "议题")
    );
    assert!(matches!(
        record.create_activity(a.clone(), "again", ActivityKind::Room, ActivityState::Scheduled).await,
        Err(RecordError::AlreadyExists(x)) if x == a
    ));
    let r = record
        .create_activity(
            id("r"),
            "room",
            ActivityKind::Room,
            ActivityState::Scheduled,
        )
        .await
        .unwrap();
    assert_eq!(
        record
            .activities()
            .unwrap()
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["a", "r"]
    );
    assert_eq!(record.activity(&id("none")).unwrap(), None);
    assert_eq!(serde_json::to_value(&r).unwrap()["kind"], "room");
}

#[tokio::test]
async fn append_to_an_unknown_activity_is_refused_alone() {
    let (_dir, record, seen) = open();
    let a = live(&record, "a").await;
    let nobody = id("nobody");
    let (bad, good) = tokio::join!(
        record.append_durable(&nobody, comment("x"), true),
        record.append_durable(&a, comment("y"), true)
    );
    assert!(matches!(bad, Err(RecordError::NoSuchActivity(_))));
    assert_eq!(good.unwrap().seq, Seq(1));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn failed_commit_answers_unavailable_and_hands_out_no_seq() {
    let (_dir, record, seen) = open();
    let a = live(&record, "a").await;
    record.append_durable(&a, comment("one"), true).await.unwrap();
    record.inner.fail_next_commit.store(true, Ordering::SeqCst);
    let failed = record.append_durable(&a, comment("lost"), true).await;
    assert!(
        matches!(failed, Err(RecordError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(record.head(&a).unwrap(), Seq(1));
    let next = record.append_durable(&a, comment("two"), true).await.unwrap();
    assert_eq!(
        next.seq,
        Seq(2),
        "the failed append's seq is handed out again"
    );
    assert_eq!(
        text_of(&record.items(&a, Seq(2), Seq(2), false).await.unwrap()[0].item),
        "two"
    );
    let hooked: Vec<u64> = seen.lock().unwrap().iter().map(|s| s.1).collect();
    assert_eq!(hooked, [1, 2], "the hook never saw the failed item");
}

#[tokio::test]
async fn append_errors_instead_of_hanging_once_the_writer_is_gone() {
    let (_dir, record, _) = open();
    let a = live(&record, "a").await;
    let crash = record.call(Op::Crash).await;
    assert!(matches!(crash, Err(RecordError::Unavailable(_))));
    let after = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        record.append_durable(&a, comment("x"), true),
    )
    .await
    .expect("append must not hang");
    assert!(
        matches!(after, Err(RecordError::Unavailable(_))),
        "{after:?}"
    );
    assert!(
        record
            .create_activity(id("b"), "t", ActivityKind::Room, ActivityState::Live)
            .await
            .is_err()
    );
}

// Multi-threaded: the first append's task must run while this thread waits for the hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    // The hook holds the writer until the test lets it go.
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let record = SqliteRecord::open(
        &dir.path().join("r.sqlite"),
        RecordOptions::default(),
        Box::new(move |_, item, _| {
            if item.seq == Seq(1) {
                entered_tx.send(()).unwrap();
                release_rx.lock().unwrap().recv().unwrap();
            }
        }),
    )
    .unwrap();
    let a = live(&record, "a").await;
    let first = tokio::spawn({
        let (record, a) = (record.clone(), a.clone());
        async move { record.append_durable(&a, comment("first"), true).await }
    });
    entered_rx.recv().unwrap();
    // An append is queued at once; nobody waits for these answers.
    for _ in 0..QUEUE_CAPACITY {
        record.append(&a, comment("q"), true, Box::new(|_| {}));
    }
    // The refusal is answered at once, on this thread.
    let (tx, rx) = std::sync::mpsc::channel();
    record.append(
        &a,
        comment("one too many"),
        true,
        Box::new(move |r| tx.send(r).unwrap()),
    );
    let over = rx.try_recv().expect("answered at once");
    assert!(matches!(over, Err(RecordError::Overloaded)), "{over:?}");
    release_tx.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().seq, Seq(1));
    // The queued ones are stored although nobody waited for their answers. The writer drains
    // the full queue in batches; until it has room again, a new append is refused as overloaded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let last = loop {
        match record.append_durable(&a, comment("last"), true).await {
            Err(RecordError::Overloaded) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(last.seq, Seq(QUEUE_CAPACITY as u64 + 2));
}

#[tokio::test]
async fn a_panicking_hook_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let record = SqliteRecord::open(
        &dir.path().join("r.sqlite"),
        RecordOptions::default(),
        Box::new(|_, item, _| assert!(item.seq != Seq(1), "hook fails on purpose")),
    )
    .unwrap();
    let a = live(&record, "a").await;
    assert_eq!(
        record.append_durable(&a, comment("x"), true).await.unwrap().seq,
        Seq(1)
    );
    assert_eq!(
        record.append_durable(&a, comment("y"), true).await.unwrap().seq,
        Seq(2)
    );
}

/// The entry at position `index` (from 0) whose chain link is `prev_hash`; its own hash is
/// `index + 1` repeated (the record checks links, not what was hashed).
fn audit(index: u64, prev_hash: [u8; 32]) -> AuditEntry {
    AuditEntry {
        index,
        at_ms: 1_700_000_000_000 + index,
        actor: "mod-1".into(),
        action: "comment_hidden".into(),
        target: format!("#{index}"),
        detail: String::new(),
        reason: (index == 0).then(|| "off topic".into()),
        prev_hash: hex::encode(prev_hash),
        hash: hex::encode([index as u8 + 1; 32]),
    }
}

#[tokio::test]
async fn audit_entries_come_back_in_order() {
    let (_dir, record, _) = open();
    let a = live(&record, "a").await;
    let e1 = audit(0, GENESIS_HASH);
    let e2 = audit(1, [1; 32]);
    record.append_audit(&a, &e1).await.unwrap();
    record.append_audit(&a, &e2).await.unwrap();
    assert_eq!(record.audit_log(&a).await.unwrap(), vec![e1, e2]);
    assert!(record.audit_log(&id("other")).await.unwrap().is_empty());
}

#[tokio::test]
async fn audit_entry_that_does_not_continue_the_chain_is_refused() {
    let (_dir, record, _) = open();
    let a = live(&record, "a").await;
    let first_wrong = record.append_audit(&a, &audit(1, GENESIS_HASH)).await;
    assert!(matches!(
        first_wrong,
        Err(RecordError::AuditOutOfOrder {
            expected_idx: 1,
            ..
        })
    ));
    let e1 = audit(0, GENESIS_HASH);
    record.append_audit(&a, &e1).await.unwrap();
    let bad_prev = record.append_audit(&a, &audit(1, [9; 32])).await;
    assert!(matches!(
        bad_prev,
        Err(RecordError::AuditOutOfOrder {
            expected_idx: 2,
            ..
        })
    ));
    let replay = record.append_audit(&a, &e1).await;
    assert!(matches!(
        replay,
        Err(RecordError::AuditOutOfOrder {
            expected_idx: 2,
            ..
        })
    ));
    let unknown = record.append_audit(&id("none"), &audit(0, GENESIS_HASH)).await;
    assert!(matches!(unknown, Err(RecordError::NoSuchActivity(_))));
    assert_eq!(record.audit_log(&a).await.unwrap(), vec![e1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_sees_an_item_before_its_append_is_answered() {
    let (_dir, record, seen) = open();
    let a = live(&record, "a").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (record, a, seen) = (record.clone(), a.clone(), seen.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    let item = record.append_durable(&a, comment("x"), false).await.unwrap();
                    let hooked = seen
                        .lock()
                        .unwrap()
                        .contains(&(a.clone(), item.seq.0, false));
                    assert!(hooked, "seq {} answered before the hook saw it", item.seq);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_second_writer_on_the_same_file_cannot_duplicate_a_seq() {
    let (dir, r1, _) = open();
    let r2 = SqliteRecord::open(
        &dir.path().join("record.sqlite"),
        RecordOptions::default(),
        Box::new(|_, _, _| {}),
    )
    .unwrap();
    let a = live(&r1, "a").await;
    assert_eq!(r1.append_durable(&a, comment("1"), true).await.unwrap().seq, Seq(1));
    assert_eq!(r2.append_durable(&a, comment("2"), true).await.unwrap().seq, Seq(2));
    // r1 still believes the head is 1: its batch collides on the primary key and fails whole.
    let collided = r1.append_durable(&a, comment("dup"), true).await;
    assert!(
        matches!(collided, Err(RecordError::Unavailable(_))),
        "{collided:?}"
    );
    assert_eq!(r1.append_durable(&a, comment("3"), true).await.unwrap().seq, Seq(3));
    let texts: Vec<String> = r1
        .items(&a, Seq(1), Seq(9), false)
        .await
        .unwrap()
        .iter()
        .map(|s| text_of(&s.item).to_owned())
        .collect();
    assert_eq!(texts, ["1", "2", "3"]);
}
