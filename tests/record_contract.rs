//! One seam, two stores: the same behaviour checked against the SQLite record (a temp file)
//! and the PostgreSQL record (a throwaway server started here), both as `Arc<dyn Record>`.

mod common;

use std::sync::{Arc, Mutex};

use common::services::Postgres;
use shangliang::record::postgres::PgRecord;
use shangliang::record::sqlite::{RecordOptions, SqliteRecord};
use shangliang::record::{ActivityKind, ActivityState, CommitHook, Record, RecordError};
use shangliang_signaling::consult::AuditEntry;
use shangliang_signaling::{ActivityId, Author, ItemBody, Role, Seq};

type Seen = Arc<Mutex<Vec<(ActivityId, u64)>>>;

fn hook() -> (CommitHook, Seen) {
    let seen: Seen = Default::default();
    let s = seen.clone();
    (Box::new(move |a: &ActivityId, item: &shangliang_signaling::Item, _| s.lock().unwrap().push((a.clone(), item.seq.0))), seen)
}

fn comment(text: &str) -> ItemBody {
    ItemBody::Comment {
        author: Author { id: "viewer:甲".into(), name: "甲".into(), role: Role::Viewer, verified: false },
        text: text.into(),
        approves: None,
    }
}

fn entry(index: u64, prev: [u8; 32], own: u8) -> AuditEntry {
    AuditEntry {
        index,
        at_ms: 1_700_000_000_000 + index,
        actor: "moderator:主持人".into(),
        action: "comment_hidden".into(),
        target: format!("#{}", index + 1),
        detail: if index == 0 { String::new() } else { "until=5".into() },
        reason: Some("广告".into()),
        prev_hash: hex::encode(prev),
        hash: hex::encode([own; 32]),
    }
}

/// What every implementation must do; `name` tells them apart in failures.
async fn keeps_the_contract(record: Arc<dyn Record>, seen: Seen, name: &str) {
    let a = ActivityId::new("contract").unwrap();
    let created = record.create_activity(a.clone(), "议题", ActivityKind::Livestream, ActivityState::Live).await.unwrap();
    assert!(
        matches!(record.create_activity(a.clone(), "again", ActivityKind::Room, ActivityState::Live).await, Err(RecordError::AlreadyExists(_))),
        "{name}: an id is taken once"
    );
    assert_eq!(record.activity(&a).unwrap(), Some(created.clone()), "{name}: known at once");
    assert!(record.activities().unwrap().contains(&created), "{name}");
    record.set_activity_state(&a, ActivityState::Ended).await.unwrap();
    assert_eq!(record.activity(&a).unwrap().unwrap().state, ActivityState::Ended, "{name}: seen at once");
    record.set_activity_state(&a, ActivityState::Live).await.unwrap();
    let nobody = ActivityId::new("nobody").unwrap();
    assert!(matches!(record.set_activity_state(&nobody, ActivityState::Live).await, Err(RecordError::NoSuchActivity(_))), "{name}");

    // Pipelined appends: all queued before any answer is awaited.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..50u32 {
        let (tx, seen) = (tx.clone(), seen.clone());
        record.append(
            &a,
            comment(&format!("c{i}")),
            i % 5 != 0,
            Box::new(move |r| {
                let item = r.unwrap();
                // The hook saw it before its answer.
                assert!(seen.lock().unwrap().iter().any(|(_, s)| *s == item.seq.0));
                tx.send(item.seq.0).unwrap();
            }),
        );
    }
    let mut seqs = Vec::new();
    for _ in 0..50 {
        seqs.push(rx.recv().await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>(), "{name}: dense, no repeat");
    let hooked: Vec<u64> = seen.lock().unwrap().iter().filter(|(x, _)| *x == a).map(|(_, s)| *s).collect();
    assert_eq!(hooked, (1..=50).collect::<Vec<u64>>(), "{name}: the hook sees seq order");
    let all = record.items(&a, Seq(1), Seq(10), false).await.unwrap();
    assert_eq!(all.iter().map(|s| (s.item.seq.0, s.public)).collect::<Vec<_>>(),
        (1..=10).map(|i| (i, (i - 1) % 5 != 0)).collect::<Vec<_>>(), "{name}");
    let public = record.items(&a, Seq(1), Seq(10), true).await.unwrap();
    assert_eq!(public.len(), 8, "{name}: held items left out of the public view");
    let refused = record.append_durable(&ActivityId::new("nobody").unwrap(), comment("x"), true).await;
    assert!(matches!(refused, Err(RecordError::NoSuchActivity(_))), "{name}: {refused:?}");
    record.catalogue().await.unwrap();
    assert_eq!(record.head(&a).unwrap(), Seq(50), "{name}");

    // The one audit entry type goes in and comes back unchanged; the chain is enforced.
    let e0 = entry(0, [0; 32], 1);
    let e1 = entry(1, [1; 32], 2);
    record.append_audit(&a, &e0).await.unwrap();
    assert!(matches!(record.append_audit(&a, &entry(1, [9; 32], 2)).await, Err(RecordError::AuditOutOfOrder { expected_idx: 2, .. })), "{name}");
    assert!(matches!(record.append_audit(&a, &e0).await, Err(RecordError::AuditOutOfOrder { .. })), "{name}: no replay");
    record.append_audit(&a, &e1).await.unwrap();
    assert_eq!(record.audit_log(&a).await.unwrap(), vec![e0, e1], "{name}");

    // Summary and checkpoint.
    assert_eq!(record.summary(&a).await.unwrap(), None, "{name}");
    record.put_summary(&a, "{\"v\":1}".into(), "ab".into(), "{\"s\":1}".into()).await.unwrap();
    record.put_summary(&a, "{\"v\":2}".into(), "cd".into(), "{\"s\":2}".into()).await.unwrap();
    assert_eq!(record.summary(&a).await.unwrap(), Some(("{\"v\":2}".into(), "cd".into())), "{name}");
    assert_eq!(record.checkpoint(&a).await.unwrap().as_deref(), Some("{\"s\":2}"), "{name}");

    // The fence is granted to a lone holder and held until given back.
    let f = record.fence(&a).await.unwrap().expect("granted");
    assert!(record.fence_held(f), "{name}");
    record.unfence(f).await;
    assert!(record.health().is_ok(), "{name}");
}

#[tokio::test]
async fn the_sqlite_record_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, seen) = hook();
    let record = SqliteRecord::open(&dir.path().join("r.sqlite3"), RecordOptions::default(), hook).unwrap();
    keeps_the_contract(Arc::new(record), seen, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_record_keeps_the_contract_and_fences_one_node_at_a_time() {
    let pg = Postgres::start().await;
    let (hook, seen) = hook();
    let record: Arc<dyn Record> = Arc::new(PgRecord::connect(&pg.url(), hook).await.unwrap());
    keeps_the_contract(record.clone(), seen, "postgres").await;

    // A second node: the fence is exclusive across nodes, and released when given back.
    let other = PgRecord::connect(&pg.url(), Box::new(|_, _, _| {})).await.unwrap();
    let a = ActivityId::new("contract").unwrap();
    let mine = record.fence(&a).await.unwrap().expect("granted");
    assert_eq!(other.fence(&a).await.unwrap(), None, "held by the first node");
    record.unfence(mine).await;
    assert!(other.fence(&a).await.unwrap().is_some(), "free once given back");
    // The other node sees the activity and its head after its next catalogue read.
    assert_eq!(other.head(&a).unwrap(), Seq(50));
}
