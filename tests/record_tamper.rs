//! The record's Merkle log against someone who can write the SQLite file but does not hold the
//! signing key (issue 12): each attack edits a real data file with SQL, recomputing the audit
//! hash chain and `summaries.audit_head` where the attack needs it, and then the
//! `verify-record` binary must fail with a message naming what is wrong. An untouched record
//! passes, and a head published earlier (a JSON export) catches even a rollback of the signed
//! heads.

use std::path::Path;
use std::process::Output;

use rusqlite::{Connection, params};
use shangliang::consult::audit::AuditLog;
use shangliang::record::sqlite::{RecordOptions, SqliteRecord};
use shangliang::record::{ActivityKind, ActivityState, Record};
use shangliang_signaling::consult::AuditEntry;
use shangliang_signaling::{ActivityId, Author, ItemBody, ParticipantId, Role, Seq};

mod common;

fn demo() -> ActivityId {
    ActivityId::new("demo").unwrap()
}

fn comment(n: u64) -> ItemBody {
    ItemBody::Comment {
        author: Author { id: format!("viewer:{n}").into(), name: format!("观众{n}"), role: Role::Viewer, verified: false },
        text: format!("第{n}条意见"),
        approves: None,
    }
}

/// A record of 12 comments, a hide of comment 5 (13 items) and four audit entries, closed (so its last
/// head is signed), in `dir` as `serve --data-dir dir` would leave it.
async fn make_record(dir: &Path) {
    let record = SqliteRecord::open(&dir.join("shangliang.sqlite3"), RecordOptions::default(), Box::new(|_, _, _| {})).unwrap();
    record.create_activity(demo(), "听证会", ActivityKind::Livestream, ActivityState::Live).await.unwrap();
    let chair = ParticipantId::new("moderator:主持人");
    let mut audit = AuditLog::new();
    let mut log = |record: &SqliteRecord, at: u64, action: &str, target: &str, reason: Option<&str>| {
        let e = audit.append(at, &chair, action, target, "", reason).clone();
        let record = record.clone();
        async move { record.append_audit(&demo(), &e).await.unwrap() }
    };
    log(&record, 1, "floor_granted", "member:王委员", None).await;
    for n in 1..=12 {
        record.append_durable(&demo(), comment(n), true).await.unwrap();
        if n == 5 {
            record.append_durable(&demo(), ItemBody::Hide { target: Seq(5) }, true).await.unwrap();
            log(&record, 2, "comment_hidden", "#5", Some("广告")).await;
        }
    }
    log(&record, 3, "floor_revoked", "member:王委员", Some("发言结束")).await;
    log(&record, 4, "comment_hidden", "#9", Some("人身攻击")).await;
    let entries = record.audit_log(&demo()).await.unwrap();
    let head = entries.last().unwrap().hash.clone();
    let summary = shangliang::consult::Consultation::new(demo(), Default::default(), 0).summary(5);
    record.put_summary(&demo(), serde_json::to_string(&summary).unwrap(), head, "{}".into()).await.unwrap();
}

fn verify(dir: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shangliang"))
        .args(["verify-record", "--activity", "demo", "--data-dir", dir.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

#[track_caller]
fn assert_fails_naming(out: &Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "verify-record passed a tampered record:\n{}", String::from_utf8_lossy(&out.stdout));
    for w in words {
        assert!(err.contains(w), "the message names {w:?}: {err}");
    }
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("shangliang.sqlite3")).unwrap()
}

/// What an attacker who knows the published chain rule does after editing `audit_log`:
/// recompute every hash and `summaries.audit_head`, so the chain alone verifies.
fn rechain(db: &Connection) {
    let mut stmt = db
        .prepare("SELECT idx, ts_ms, actor, action, target, detail, reason FROM audit_log WHERE activity='demo' ORDER BY idx")
        .unwrap();
    type Row = (i64, i64, String, String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Row> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut chain = AuditLog::new();
    for (idx, ts, actor, action, target, detail, reason) in rows {
        let e: AuditEntry = chain
            .append(ts as u64, &ParticipantId::from(actor), &action, &target.unwrap_or_default(), &detail.unwrap_or_default(), reason.as_deref())
            .clone();
        let (prev, hash) = (hex::decode(&e.prev_hash).unwrap(), hex::decode(&e.hash).unwrap());
        db.execute("UPDATE audit_log SET prev_hash=?1, hash=?2 WHERE activity='demo' AND idx=?3", params![prev, hash, idx]).unwrap();
    }
    db.execute("UPDATE summaries SET audit_head=?1 WHERE activity='demo'", [chain.head()]).unwrap();
}

#[tokio::test]
async fn an_untouched_record_verifies_against_its_signed_head_and_an_exported_one() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    let out = verify(dir.path(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("17 log leaves (13 items, 4 audit entries)"), "{text}");
    // The export carries the signed head; the record verifies against it.
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_shangliang"))
        .args(["export", "--format", "json", "--activity", "demo", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let json: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(json["tree_head"]["size"], 17);
    let public = std::fs::read_to_string(dir.path().join("record-signing.key.pub")).unwrap();
    assert_eq!(json["tree_head"]["public_key"], public.trim());
    let head = dir.path().join("published.json");
    std::fs::write(&head, &export.stdout).unwrap();
    let out = verify(dir.path(), &["--head", head.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("extends the head published"));
}

#[tokio::test]
async fn deleting_comment_seq_5_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    db(dir.path()).execute("DELETE FROM items WHERE activity='demo' AND seq=5", []).unwrap();
    assert_fails_naming(&verify(dir.path(), &[]), &["item seq 5 is missing", "deleted"]);
}

#[tokio::test]
async fn deleting_comment_seq_5_and_renumbering_the_rest_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    let db = db(dir.path());
    db.execute("DELETE FROM items WHERE activity='demo' AND seq=5", []).unwrap();
    for seq in 6..=13 {
        db.execute("UPDATE items SET seq=seq-1 WHERE activity='demo' AND seq=?1", [seq]).unwrap();
    }
    assert_fails_naming(&verify(dir.path(), &[]), &["row seq 5", "renumbered"]);
}

#[tokio::test]
async fn editing_an_audit_entrys_actor_and_reason_with_the_chain_recomputed_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    let db = db(dir.path());
    db.execute("UPDATE audit_log SET actor='moderator:别人', reason='违规' WHERE activity='demo' AND idx=2", []).unwrap();
    rechain(&db);
    assert_fails_naming(&verify(dir.path(), &[]), &["audit entry idx 2", "edited after it was logged"]);
}

#[tokio::test]
async fn deleting_an_audit_entry_and_renumbering_with_the_chain_recomputed_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    let db = db(dir.path());
    db.execute("DELETE FROM audit_log WHERE activity='demo' AND idx=2", []).unwrap();
    for idx in 3..=4 {
        db.execute("UPDATE audit_log SET idx=idx-1 WHERE activity='demo' AND idx=?1", [idx]).unwrap();
    }
    rechain(&db);
    assert_fails_naming(&verify(dir.path(), &[]), &["audit entry idx 4", "not in audit_log"]);
}

#[tokio::test]
async fn truncating_the_tail_with_the_chain_and_the_log_rows_recomputed_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    let db = db(dir.path());
    // The last two audit entries and the last two comments go, with their log rows: the rows
    // left are consistent with each other; only the signed head remembers.
    db.execute("DELETE FROM audit_log WHERE activity='demo' AND idx >= 3", []).unwrap();
    db.execute("DELETE FROM items WHERE activity='demo' AND seq >= 12", []).unwrap();
    db.execute("DELETE FROM log_leaves WHERE activity='demo' AND (audit_idx >= 3 OR item_seq >= 12)", []).unwrap();
    rechain(&db);
    assert_fails_naming(&verify(dir.path(), &[]), &["holds 13 leaves", "covers 17", "removed from the end"]);
}

#[tokio::test]
async fn rolling_back_the_signed_heads_too_is_caught_by_a_head_published_earlier() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    let head = std::process::Command::new(env!("CARGO_BIN_EXE_shangliang"))
        .args(["export", "--format", "md", "--activity", "demo", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(head.status.success(), "{}", String::from_utf8_lossy(&head.stderr));
    let minutes = dir.path().join("minutes.md");
    std::fs::write(&minutes, &head.stdout).unwrap();
    // The attacker keeps only the first signed head and the rows under it, and re-chains.
    let db = db(dir.path());
    let first: i64 = db.query_row("SELECT MIN(size) FROM tree_heads WHERE activity='demo'", [], |r| r.get(0)).unwrap();
    db.execute("DELETE FROM tree_heads WHERE activity='demo' AND size > ?1", [first]).unwrap();
    let keep_items: i64 = db
        .query_row("SELECT COUNT(*) FROM log_leaves WHERE activity='demo' AND leaf < ?1 AND item_seq IS NOT NULL", [first], |r| r.get(0))
        .unwrap();
    let keep_audit = first - keep_items;
    db.execute("DELETE FROM log_leaves WHERE activity='demo' AND leaf >= ?1", [first]).unwrap();
    db.execute("DELETE FROM items WHERE activity='demo' AND seq > ?1", [keep_items]).unwrap();
    db.execute("DELETE FROM audit_log WHERE activity='demo' AND idx > ?1", [keep_audit]).unwrap();
    rechain(&db);
    // Against what the database holds alone, a consistent earlier state: it passes.
    let out = verify(dir.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The minutes the secretary filed hold the head of 17 leaves.
    assert_fails_naming(&verify(dir.path(), &["--head", minutes.to_str().unwrap()]), &["fewer than the 17", "removed since"]);
}

#[tokio::test]
async fn a_forged_tree_head_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    // A new root in the latest head: without the key the signature no longer covers it.
    db(dir.path()).execute("UPDATE tree_heads SET root=zeroblob(32) WHERE activity='demo' AND size=17", []).unwrap();
    assert_fails_naming(&verify(dir.path(), &[]), &["size 17", "does not verify with public key"]);
}

#[tokio::test]
async fn editing_a_comment_and_its_logged_leaf_hash_is_caught_by_the_root() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    let db = db(dir.path());
    db.execute("UPDATE items SET public=0 WHERE activity='demo' AND seq=3", []).unwrap();
    assert_fails_naming(&verify(dir.path(), &[]), &["comment seq 3", "edited after it was logged"]);
    db.execute("UPDATE log_leaves SET hash=zeroblob(32) WHERE activity='demo' AND item_seq=3", []).unwrap();
    assert_fails_naming(&verify(dir.path(), &[]), &["do not give the root", "rewritten"]);
}

#[tokio::test]
async fn a_hub_restarted_on_an_altered_log_refuses_to_extend_it() {
    let dir = tempfile::tempdir().unwrap();
    make_record(dir.path()).await;
    db(dir.path()).execute("UPDATE tree_heads SET root=zeroblob(32) WHERE activity='demo' AND size=17", []).unwrap();
    let record = SqliteRecord::open(&dir.path().join("shangliang.sqlite3"), RecordOptions::default(), Box::new(|_, _, _| {})).unwrap();
    let err = record.append_durable(&demo(), comment(99), true).await.unwrap_err();
    assert!(err.to_string().contains("was altered"), "{err}");
    assert_eq!(record.head(&demo()).unwrap(), Seq(13), "nothing was appended");
}

#[tokio::test]
async fn the_tree_head_endpoint_serves_the_latest_signed_head_with_its_key() {
    let hub = common::TestHub::start(|_| {}).await;
    hub.hub.record.append_durable(&demo(), comment(1), true).await.unwrap();
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let head: serde_json::Value = loop {
        let r = client.get(hub.http("/api/activities/demo/tree-head")).send().await.unwrap();
        if r.status() == 200 {
            break r.json().await.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no head signed: {}", r.status());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let public = std::fs::read_to_string(hub.dir.path().join("record-signing.key.pub")).unwrap();
    assert_eq!(head["public_key"], public.trim());
    assert_eq!(head["log"], "demo");
    assert!(head["size"].as_u64().unwrap() >= 1);
    let sth: shangliang::record::merkle::SignedTreeHead = serde_json::from_value(head).unwrap();
    sth.verify(&public.trim().parse().unwrap()).unwrap();
    let missing = client.get(hub.http("/api/activities/nope/tree-head")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
