//! The cluster's [`Record`]: activities, every item of their topics, the audit log, summaries
//! and checkpoints in PostgreSQL, shared by all hub nodes. **PostgreSQL is the sequencer** in
//! cluster mode, and the fence of each activity's moderation is a PostgreSQL advisory lock.
//!
//! # Contract
//! An append answered `Ok(item)` is committed in PostgreSQL (durable before the poster is
//! acknowledged) and has been handed to the commit hook. Per activity, seqs are `1, 2, 3 ...`
//! with no gap and no repeat, whichever node appended them: the seq comes from
//! `UPDATE activities SET head = head + n ... RETURNING head` in the same transaction as the
//! item rows, so the row lock on the activity orders concurrent writers of all nodes.
//!
//! # Why PostgreSQL and not JetStream sequences
//! The seq must be identical on every node, dense, and durable before the poster's ack; the
//! history must be in PostgreSQL for resume and export. With JetStream as the sequencer an item
//! is made durable twice (stream, then a copy into PostgreSQL by every node or a writer) and the
//! two can disagree during a PostgreSQL outage. With PostgreSQL as the sequencer there is one
//! durable truth; NATS (`crate::bus`) carries only notifications, so losing NATS costs latency
//! (gaps are healed from here within ~0.5 s), never data. The cost: one PostgreSQL transaction
//! per group of appends per node (group commit amortises it), well within the comment rates a
//! consultation sees (thousands per second).
//!
//! # The catalogue
//! [`Record::activities`], [`Record::activity`] and [`Record::head`] answer from a copy of the
//! `activities` table that [`Record::catalogue`] re-reads (the cluster calls it every tick), so
//! they never wait on the network: at most a tick old. An activity created through this node is
//! in it at once.
//!
//! # The writer (one task per node)
//! ```text
//! loop {
//!     batch = [queue.recv()] + queue.try_recv()*         // group commit, up to MAX_BATCH
//!     BEGIN
//!     for each activity of the batch, in id order (no deadlock between nodes):
//!         UPDATE activities SET head = head + n RETURNING head   -> seqs head-n+1 ..= head
//!         INSERT INTO items ... (one statement, UNNEST of arrays)
//!     COMMIT
//!     ok   => on_commit(activity, item, public) for each item in seq order; answer Ok
//!     fail => answer Err(Unavailable); drop the connection, reconnect on the next batch
//! }
//! ```
//! A commit whose answer is lost (the connection broke during COMMIT) is answered `Err` though
//! it may have been stored: the poster is told "not accepted" and the item still appears. The
//! reverse (an acknowledged item lost) cannot happen.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use shangliang_signaling::consult::AuditEntry;
use shangliang_signaling::{ActivityId, Epoch, Item, ItemBody, Seq};
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

use super::audit::{AuditRow, GENESIS_HASH};
use super::{
    Activity, ActivityKind, ActivityState, AppendDone, CommitHook, Fence, QUEUE_CAPACITY, Record,
    RecordError, StoredItem, now_ms,
};

/// Most appends committed in one transaction.
const MAX_BATCH: usize = 1024;
/// How long a connection attempt or one statement may take before the database is called
/// unavailable.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(74100601);
CREATE TABLE IF NOT EXISTS activities (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    head        BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS items (
    activity    TEXT NOT NULL REFERENCES activities(id),
    seq         BIGINT NOT NULL,
    ts          BIGINT NOT NULL,
    public      BOOLEAN NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (activity, seq)
);
CREATE TABLE IF NOT EXISTS audit_log (
    activity    TEXT NOT NULL REFERENCES activities(id),
    idx         BIGINT NOT NULL,
    ts_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    detail      TEXT,
    reason      TEXT,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL,
    PRIMARY KEY (activity, idx)
);
CREATE TABLE IF NOT EXISTS summaries (
    activity    TEXT PRIMARY KEY REFERENCES activities(id),
    json        TEXT NOT NULL,
    audit_head  TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
ALTER TABLE summaries ADD COLUMN IF NOT EXISTS state TEXT;
COMMIT;
";

fn unavailable(e: impl std::fmt::Display) -> RecordError {
    RecordError::Unavailable(format!("database: {e}"))
}

async fn connect(url: &str) -> Result<Client, RecordError> {
    let (client, conn) = tokio::time::timeout(DB_TIMEOUT, tokio_postgres::connect(url, NoTls))
        .await
        .map_err(|_| unavailable("connection timed out"))?
        .map_err(pg_error)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!("database connection ended: {e}");
        }
    });
    Ok(client)
}

/// A driver error with the server's message (tokio-postgres' `Display` says only "db error").
fn pg_error(e: tokio_postgres::Error) -> RecordError {
    match e.as_db_error() {
        Some(db) => unavailable(format!("{}: {}", db.code().code(), db.message())),
        None => match std::error::Error::source(&e) {
            Some(src) => unavailable(format!("{e}: {src}")),
            None => unavailable(e),
        },
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, RecordError> {
    tokio::time::timeout(DB_TIMEOUT, f)
        .await
        .map_err(|_| unavailable("statement timed out"))?
        .map_err(pg_error)
}

struct AppendReq {
    activity: ActivityId,
    body: ItemBody,
    public: bool,
    done: AppendDone,
}

/// The PostgreSQL advisory lock key of an activity's moderation fence: 8 bytes of SHA-256,
/// stable everywhere (`SELECT * FROM pg_locks WHERE locktype = 'advisory'` shows who holds it).
pub fn fence_key(activity: &ActivityId) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest([b"shangliang-home\0".as_slice(), activity.as_str().as_bytes()].concat());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The `activities` table as last read, with the health of the last read.
#[derive(Default)]
struct Catalogue {
    activities: Vec<Activity>,
    heads: HashMap<ActivityId, Seq>,
    /// `None` while the last read worked; else its error.
    error: Option<String>,
}

/// Handle to the PostgreSQL record. Cheap to clone.
#[derive(Clone)]
pub struct PgRecord {
    inner: Arc<PgInner>,
}

struct PgInner {
    url: String,
    /// The read connection, reconnected on demand. Queries on one `Client` are pipelined, so
    /// one connection serves every concurrent reader.
    reader: Mutex<Option<Arc<Client>>>,
    tx: mpsc::Sender<AppendReq>,
    catalogue: RwLock<Catalogue>,
    /// The connection that holds this node's activity locks (session-level advisory locks:
    /// released by PostgreSQL when the connection or the node dies), and how many times it
    /// has been (re)connected: locks taken under an older generation are gone.
    locker: tokio::sync::Mutex<Option<Client>>,
    lock_generation: AtomicU64,
}

impl PgRecord {
    /// Connects, creates the schema if needed, reads the catalogue and starts the writer task
    /// (on the current runtime). Fails if the database cannot be reached now (a node refuses
    /// to start blind); later outages are survived by reconnecting.
    pub async fn connect(url: &str, on_commit: CommitHook) -> Result<PgRecord, RecordError> {
        let client = connect(url).await?;
        timed(client.batch_execute(SCHEMA)).await?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = PgWriterDriver {
            url: url.to_owned(),
            client: Some(client),
            rx,
            on_commit,
        };
        tokio::spawn(writer.run());
        let record = PgRecord {
            inner: Arc::new(PgInner {
                url: url.to_owned(),
                reader: Mutex::new(None),
                tx,
                catalogue: RwLock::new(Catalogue::default()),
                locker: tokio::sync::Mutex::new(None),
                lock_generation: AtomicU64::new(0),
            }),
        };
        record.catalogue().await?;
        Ok(record)
    }

    fn read_catalogue(&self) -> std::sync::RwLockReadGuard<'_, Catalogue> {
        self.inner.catalogue.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_catalogue(&self) -> std::sync::RwLockWriteGuard<'_, Catalogue> {
        self.inner.catalogue.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the exclusive lock named `key` for this node if nobody holds it: `Ok(Some(gen))`
    /// with the lock connection's generation, `Ok(None)` if another node holds it. The lock
    /// lives as long as the lock connection (see [`PgRecord::lock_generation`]).
    async fn try_lock(&self, key: i64) -> Result<Option<u64>, RecordError> {
        let mut guard = self.inner.locker.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(connect(&self.inner.url).await?);
            self.inner.lock_generation.fetch_add(1, Ordering::SeqCst);
        }
        let c = guard.as_ref().expect("connected above");
        let row = timed(c.query_one("SELECT pg_try_advisory_lock($1)", &[&key])).await?;
        let got: bool = row.get(0);
        Ok(got.then(|| self.inner.lock_generation.load(Ordering::SeqCst)))
    }

    /// Releases a lock taken with [`PgRecord::try_lock`] under generation `generation` (a
    /// lock of an older generation went with its connection).
    async fn unlock(&self, key: i64, generation: u64) {
        let guard = self.inner.locker.lock().await;
        if self.inner.lock_generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            let _ = timed(c.execute("SELECT pg_advisory_unlock($1)", &[&key])).await;
        }
    }

    /// The lock connection's generation now, or `u64::MAX` if it is closed (every lock is
    /// gone).
    fn lock_generation(&self) -> u64 {
        match self.inner.locker.try_lock() {
            Ok(g) if g.as_ref().is_none_or(|c| c.is_closed()) => u64::MAX,
            _ => self.inner.lock_generation.load(Ordering::SeqCst),
        }
    }

    async fn reader(&self) -> Result<Arc<Client>, RecordError> {
        {
            let guard = self.inner.reader.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(connect(&self.inner.url).await?);
        *self.inner.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Every activity with its head (last committed seq), oldest first, read now.
    async fn read_activities(&self) -> Result<Vec<(Activity, Seq)>, RecordError> {
        let c = self.reader().await?;
        let rows = timed(c.query(
            "SELECT id, title, kind, state, epoch, created_ms, head FROM activities ORDER BY created_ms, id",
            &[],
        ))
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let kind: String = r.get(2);
                let state: String = r.get(3);
                let epoch: i64 = r.get(4);
                let created: i64 = r.get(5);
                let head: i64 = r.get(6);
                let corrupt =
                    |what: &str| RecordError::Corrupt(format!("activity {id:?}: bad {what}"));
                Ok((
                    Activity {
                        id: ActivityId::new(&id).map_err(|_| corrupt("id"))?,
                        title: r.get(1),
                        kind: kind.parse().map_err(|_| corrupt("kind"))?,
                        state: state.parse().map_err(|_| corrupt("state"))?,
                        epoch: Epoch(u32::try_from(epoch).map_err(|_| corrupt("epoch"))?),
                        created_ms: created.max(0) as u64,
                    },
                    Seq(head.max(0) as u64),
                ))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Record for PgRecord {
    /// Shared by every node, since it lives here; in this node's catalogue at once, in the
    /// others' within a tick.
    async fn create_activity(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<Activity, RecordError> {
        let a = Activity::fresh(id, title, kind, state);
        let c = self.reader().await?;
        let n = timed(c.execute(
            "INSERT INTO activities (id, title, kind, state, epoch, created_ms) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO NOTHING",
            &[&a.id.as_str(), &a.title, &a.kind.as_str(), &a.state.as_str(), &i64::from(a.epoch.0), &(a.created_ms as i64)],
        ))
        .await?;
        if n == 0 {
            return Err(RecordError::AlreadyExists(a.id));
        }
        let mut cat = self.write_catalogue();
        if !cat.activities.iter().any(|x| x.id == a.id) {
            cat.activities.push(a.clone());
            cat.heads.insert(a.id.clone(), Seq(0));
        }
        Ok(a)
    }

    /// In this node's catalogue at once, in the others' within a tick.
    async fn set_activity_state(&self, id: &ActivityId, state: ActivityState) -> Result<(), RecordError> {
        let c = self.reader().await?;
        let n = timed(c.execute(
            "UPDATE activities SET state = $2 WHERE id = $1",
            &[&id.as_str(), &state.as_str()],
        ))
        .await?;
        if n == 0 {
            return Err(RecordError::NoSuchActivity(id.clone()));
        }
        if let Some(a) = self.write_catalogue().activities.iter_mut().find(|a| a.id == *id) {
            a.state = state;
        }
        Ok(())
    }

    fn activities(&self) -> Result<Vec<Activity>, RecordError> {
        Ok(self.read_catalogue().activities.clone())
    }

    fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError> {
        Ok(self.read_catalogue().activities.iter().find(|a| a.id == *id).cloned())
    }

    fn head(&self, id: &ActivityId) -> Result<Seq, RecordError> {
        Ok(self.read_catalogue().heads.get(id).copied().unwrap_or_default())
    }

    async fn catalogue(&self) -> Result<Vec<(Activity, Seq)>, RecordError> {
        match self.read_activities().await {
            Ok(list) => {
                let mut cat = self.write_catalogue();
                cat.activities = list.iter().map(|(a, _)| a.clone()).collect();
                cat.heads = list.iter().map(|(a, h)| (a.id.clone(), *h)).collect();
                cat.error = None;
                Ok(list)
            }
            Err(e) => {
                self.write_catalogue().error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn health(&self) -> Result<(), String> {
        match &self.read_catalogue().error {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }

    /// The writer gives the item the activity's next seq, commits, hands it to the commit hook,
    /// then answers. See the module docs.
    fn append(&self, activity: &ActivityId, body: ItemBody, public: bool, done: AppendDone) {
        let req = AppendReq {
            activity: activity.clone(),
            body,
            public,
            done,
        };
        if let Err(e) = self.inner.tx.try_send(req) {
            let (why, req) = match e {
                mpsc::error::TrySendError::Full(r) => (RecordError::Overloaded, r),
                mpsc::error::TrySendError::Closed(r) => {
                    (unavailable("the writer task has stopped"), r)
                }
            };
            (req.done)(Err(why));
        }
    }

    async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<StoredItem>, RecordError> {
        let c = self.reader().await?;
        let rows = timed(c.query(
            "SELECT seq, ts, public, body FROM items
             WHERE activity = $1 AND seq BETWEEN $2 AND $3 AND (public OR NOT $4) ORDER BY seq",
            &[
                &activity.as_str(),
                &(from.0 as i64),
                &(to.0.min(i64::MAX as u64) as i64),
                &public_only,
            ],
        ))
        .await?;
        let mut items = rows
            .iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let ts: i64 = r.get(1);
                let body: &str = r.get(3);
                let body = serde_json::from_str(body)
                    .map_err(|e| RecordError::Corrupt(format!("item {activity}/{seq}: {e}")))?;
                Ok(StoredItem {
                    item: Item {
                        seq: Seq(seq as u64),
                        ts: ts as u64,
                        body,
                    },
                    public: r.get(2),
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        if public_only && !items.is_empty() {
            // The public gets tombstones for hidden comments: the targets of the hides after
            // `from` (a hide always comes after its target).
            let hides = timed(c.query(
                "SELECT (body::jsonb ->> 'target')::bigint FROM items
                 WHERE activity = $1 AND seq > $2 AND body::jsonb ->> 'k' = 'hide'",
                &[&activity.as_str(), &(from.0 as i64)],
            ))
            .await?;
            let hidden = hides.iter().filter_map(|r| r.get::<_, Option<i64>>(0)).map(|t| Seq(t as u64)).collect();
            crate::record::tombstone_hidden(&mut items, &hidden);
        }
        Ok(items)
    }

    /// Appends a moderator action to its activity's audit log; answers once committed. The
    /// chain is checked by the database in the same statement: the row is inserted only if
    /// `idx - 1` holds `prev_hash` (genesis for idx 1), and the primary key refuses a second
    /// entry at one idx. So two nodes that both believe they run an activity's moderation
    /// (a moment of disagreement about ownership) cannot fork the chain: the second write is
    /// refused with `AuditOutOfOrder`.
    async fn append_audit(
        &self,
        activity: &ActivityId,
        entry: &AuditEntry,
    ) -> Result<(), RecordError> {
        let e = AuditRow::from_entry(activity, entry)?;
        let c = self.reader().await?;
        let idx = e.idx.min(i64::MAX as u64) as i64;
        let res = timed(c.execute(
            "INSERT INTO audit_log (activity, idx, ts_ms, actor, action, target, detail, reason, prev_hash, hash)
             SELECT $1::TEXT, $2::BIGINT, $3::BIGINT, $4::TEXT, $5::TEXT, $6::TEXT, $7::TEXT, $8::TEXT,
                    $9::BYTEA, $10::BYTEA
             WHERE ($2::BIGINT = 1 AND $9::BYTEA = $11::BYTEA)
                OR EXISTS (SELECT 1 FROM audit_log
                           WHERE activity = $1::TEXT AND idx = $2::BIGINT - 1 AND hash = $9::BYTEA)
             ON CONFLICT (activity, idx) DO NOTHING",
            &[
                &activity.as_str(),
                &idx,
                &(e.ts_ms.min(i64::MAX as u64) as i64),
                &e.actor,
                &e.action,
                &e.target,
                &e.detail,
                &e.reason,
                &&e.prev_hash[..],
                &&e.hash[..],
                &&GENESIS_HASH[..],
            ],
        ))
        .await?;
        if res == 1 {
            return Ok(());
        }
        let row = timed(c.query_one(
            "SELECT COALESCE(MAX(idx), 0) FROM audit_log WHERE activity = $1",
            &[&activity.as_str()],
        ))
        .await?;
        let last: i64 = row.get(0);
        Err(RecordError::AuditOutOfOrder {
            activity: activity.clone(),
            expected_idx: last as u64 + 1,
        })
    }

    /// An activity's audit log, in idx order.
    async fn audit_log(&self, activity: &ActivityId) -> Result<Vec<AuditEntry>, RecordError> {
        let c = self.reader().await?;
        let rows = timed(c.query(
            "SELECT idx, ts_ms, actor, action, target, detail, reason, prev_hash, hash
             FROM audit_log WHERE activity = $1 ORDER BY idx",
            &[&activity.as_str()],
        ))
        .await?;
        let hash = |v: &[u8], idx: i64| -> Result<[u8; 32], RecordError> {
            v.try_into().map_err(|_| {
                RecordError::Corrupt(format!("audit entry {activity}/{idx}: hash is not 32 bytes"))
            })
        };
        rows.iter()
            .map(|r| {
                let idx: i64 = r.get(0);
                let ts: i64 = r.get(1);
                Ok(AuditRow {
                    activity: activity.clone(),
                    idx: idx.max(0) as u64,
                    ts_ms: ts.max(0) as u64,
                    actor: r.get(2),
                    action: r.get(3),
                    target: r.get(4),
                    detail: r.get(5),
                    reason: r.get(6),
                    prev_hash: hash(r.get(7), idx)?,
                    hash: hash(r.get(8), idx)?,
                }
                .into_entry())
            })
            .collect()
    }

    /// Stores the latest session summary of an activity with the audit head it was made at
    /// and the moderation state's checkpoint.
    async fn put_summary(
        &self,
        activity: &ActivityId,
        json: String,
        audit_head: String,
        state: String,
    ) -> Result<(), RecordError> {
        let c = self.reader().await?;
        timed(c.execute(
            "INSERT INTO summaries (activity, json, audit_head, updated_ms, state) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (activity) DO UPDATE SET json = $2, audit_head = $3, updated_ms = $4, state = $5",
            &[&activity.as_str(), &json, &audit_head, &(now_ms() as i64), &state],
        ))
        .await?;
        Ok(())
    }

    /// The moderation state's latest checkpoint of an activity.
    async fn checkpoint(&self, activity: &ActivityId) -> Result<Option<String>, RecordError> {
        let c = self.reader().await?;
        let row = timed(c.query_opt(
            "SELECT state FROM summaries WHERE activity = $1",
            &[&activity.as_str()],
        ))
        .await?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    /// The latest stored summary JSON and audit chain head of an activity.
    async fn summary(
        &self,
        activity: &ActivityId,
    ) -> Result<Option<(String, String)>, RecordError> {
        let c = self.reader().await?;
        let row = timed(c.query_opt(
            "SELECT json, audit_head FROM summaries WHERE activity = $1",
            &[&activity.as_str()],
        ))
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn fence(&self, activity: &ActivityId) -> Result<Option<Fence>, RecordError> {
        let key = fence_key(activity);
        Ok(self.try_lock(key).await?.map(|generation| Fence { key, generation }))
    }

    async fn unfence(&self, fence: Fence) {
        self.unlock(fence.key, fence.generation).await;
    }

    fn fence_held(&self, fence: Fence) -> bool {
        self.lock_generation() == fence.generation
    }

    // The Merkle log is kept by the SQLite record only so far: the cluster's writers (one per
    // node, all appending to one activity) would have to share the frontier through the
    // database. Until then PostgreSQL signs nothing, says so, and `verify-record` refuses.
    async fn tree_head(&self, _activity: &ActivityId) -> Result<Option<crate::record::merkle::SignedTreeHead>, RecordError> {
        Ok(None)
    }

    fn log_public_key(&self) -> Option<crate::record::merkle::LogPublicKey> {
        None
    }

    async fn log_dump(&self, _activity: &ActivityId) -> Result<crate::record::proof::LogDump, RecordError> {
        Err(RecordError::Unavailable("the PostgreSQL record keeps no Merkle log yet (only the SQLite record does; verify-record --chain-only checks its audit chain)".into()))
    }
}

/// Owns the write connection; the sequencer of every append this node makes.
struct PgWriterDriver {
    url: String,
    client: Option<Client>,
    rx: mpsc::Receiver<AppendReq>,
    on_commit: CommitHook,
}

impl PgWriterDriver {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.handle_batch(batch).await;
        }
    }

    async fn handle_batch(&mut self, batch: Vec<AppendReq>) {
        // Group by activity, in id order (every node locks activity rows in the same order).
        // The answers are kept apart from the rows: they are not `Sync`, and the rows are
        // borrowed across the transaction's awaits.
        let mut groups: BTreeMap<ActivityId, Vec<(ItemBody, bool)>> = BTreeMap::new();
        let mut dones: BTreeMap<ActivityId, Vec<AppendDone>> = BTreeMap::new();
        for r in batch {
            groups.entry(r.activity.clone()).or_default().push((r.body, r.public));
            dones.entry(r.activity).or_default().push(r.done);
        }
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            match connect(&self.url).await {
                Ok(c) => self.client = Some(c),
                Err(e) => return fail_all(dones, &e.to_string()),
            }
        }
        let client = self.client.as_mut().expect("connected above");
        let ts = now_ms();
        match commit_batch(client, &groups, ts).await {
            Ok(firsts) => {
                for ((activity, rows), (_, dones)) in groups.into_iter().zip(dones) {
                    let Some(first) = firsts.get(&activity).copied() else {
                        for done in dones {
                            done(Err(RecordError::NoSuchActivity(activity.clone())));
                        }
                        continue;
                    };
                    // Every item of the batch reaches the hook before any append is answered,
                    // as in the SQLite writer.
                    let items: Vec<Item> = rows
                        .into_iter()
                        .enumerate()
                        .map(|(i, (body, public))| {
                            let item = Item {
                                seq: Seq(first + i as u64),
                                ts,
                                body,
                            };
                            (self.on_commit)(&activity, &item, public);
                            item
                        })
                        .collect();
                    for (item, done) in items.into_iter().zip(dones) {
                        done(Ok(item));
                    }
                }
            }
            Err(e) => {
                tracing::warn!("record commit failed: {e}");
                self.client = None;
                fail_all(dones, &e.to_string());
            }
        }
    }
}

fn fail_all(dones: BTreeMap<ActivityId, Vec<AppendDone>>, why: &str) {
    for done in dones.into_values().flatten() {
        done(Err(RecordError::Unavailable(why.to_owned())));
    }
}

/// One transaction for the whole batch. Answers the first seq given to each activity that
/// exists (absent: no such activity, nothing stored for it).
async fn commit_batch(
    client: &mut Client,
    groups: &BTreeMap<ActivityId, Vec<(ItemBody, bool)>>,
    ts: u64,
) -> Result<BTreeMap<ActivityId, u64>, RecordError> {
    let tx = timed(client.transaction()).await?;
    let mut firsts = BTreeMap::new();
    for (activity, reqs) in groups {
        let n = reqs.len() as i64;
        let row = timed(tx.query_opt(
            "UPDATE activities SET head = head + $2 WHERE id = $1 RETURNING head",
            &[&activity.as_str(), &n],
        ))
        .await?;
        let Some(row) = row else { continue };
        let head: i64 = row.get(0);
        let first = head - n + 1;
        let seqs: Vec<i64> = (first..=head).collect();
        let publics: Vec<bool> = reqs.iter().map(|(_, public)| *public).collect();
        let bodies: Vec<String> = reqs
            .iter()
            .map(|(body, _)| serde_json::to_string(body).expect("item bodies serialize"))
            .collect();
        timed(tx.execute(
            "INSERT INTO items (activity, seq, ts, public, body)
             SELECT $1, s, $2, p, b FROM UNNEST($3::BIGINT[], $4::BOOLEAN[], $5::TEXT[]) AS u(s, p, b)",
            &[&activity.as_str(), &(ts as i64), &seqs, &publics, &bodies],
        ))
        .await?;
        firsts.insert(activity.clone(), first as u64);
    }
    timed(tx.commit()).await?;
    Ok(firsts)
}
