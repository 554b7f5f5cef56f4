//! The cluster record: activities and every item of their topics in PostgreSQL, shared by all
//! hub nodes. **PostgreSQL is the sequencer** in cluster mode (see `src/bus/mod.rs` for why).
//!
//! # Contract
//! An [`PgRecord::append`] that answers `Ok(item)` is committed in PostgreSQL (durable before
//! the poster is acknowledged) and has been handed to the commit hook. Per activity, seqs are
//! `1, 2, 3 ...` with no gap and no repeat, whichever node appended them: the seq comes from
//! `UPDATE activities SET head = head + n ... RETURNING head` in the same transaction as the
//! item rows, so the row lock on the activity orders concurrent writers of all nodes.
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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shangliang_signaling::{ActivityId, Epoch, Item, ItemBody, Seq};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, NoTls};

use super::{Activity, ActivityKind, ActivityState, AuditEntry, CommitHook, GENESIS_HASH, RecordError};

/// Most appends committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Appends that may wait for the writer before new ones are refused.
const QUEUE_CAPACITY: usize = 65_536;
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
    reply: oneshot::Sender<Result<Item, RecordError>>,
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
    /// The connection that holds this node's activity locks (session-level advisory locks:
    /// released by PostgreSQL when the connection or the node dies), and how many times it
    /// has been (re)connected: locks taken under an older generation are gone.
    locker: tokio::sync::Mutex<Option<Client>>,
    lock_generation: std::sync::atomic::AtomicU64,
}

impl PgRecord {
    /// Connects, creates the schema if needed and starts the writer task. Fails if the
    /// database cannot be reached now (a node refuses to start blind); later outages are
    /// survived by reconnecting.
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
        Ok(PgRecord {
            inner: Arc::new(PgInner {
                url: url.to_owned(),
                reader: Mutex::new(None),
                tx,
                locker: tokio::sync::Mutex::new(None),
                lock_generation: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Takes the exclusive lock named `key` for this node if nobody holds it: `Ok(Some(gen))`
    /// with the lock connection's generation, `Ok(None)` if another node holds it. The lock
    /// lives as long as the lock connection (see [`PgRecord::lock_generation`]).
    pub async fn try_lock(&self, key: i64) -> Result<Option<u64>, RecordError> {
        use std::sync::atomic::Ordering;
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
    pub async fn unlock(&self, key: i64, generation: u64) {
        use std::sync::atomic::Ordering;
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
    pub fn lock_generation(&self) -> u64 {
        use std::sync::atomic::Ordering;
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

    /// Appends an item: the writer gives it the activity's next seq, commits, hands it to the
    /// commit hook, then answers. See the module docs.
    pub async fn append(
        &self,
        activity: &ActivityId,
        body: ItemBody,
        public: bool,
    ) -> Result<Item, RecordError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .try_send(AppendReq {
                activity: activity.clone(),
                body,
                public,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RecordError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => unavailable("the writer task has stopped"),
            })?;
        rx.await
            .map_err(|_| unavailable("the writer task has stopped"))?
    }

    /// Creates an activity with a fresh random epoch (shared by every node, since it lives
    /// here). `Err(AlreadyExists)` if the id is taken.
    pub async fn create_activity(
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
        Ok(a)
    }

    /// Every activity with its head (last committed seq), oldest first.
    pub async fn activities(&self) -> Result<Vec<(Activity, Seq)>, RecordError> {
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

    /// The items with `from <= seq <= to`, in seq order; only public ones if `public_only`.
    pub async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<(Item, bool)>, RecordError> {
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
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let ts: i64 = r.get(1);
                let body: &str = r.get(3);
                let body = serde_json::from_str(body)
                    .map_err(|e| RecordError::Corrupt(format!("item {activity}/{seq}: {e}")))?;
                Ok((
                    Item {
                        seq: Seq(seq as u64),
                        ts: ts as u64,
                        body,
                    },
                    r.get(2),
                ))
            })
            .collect()
    }
}

impl PgRecord {
    /// Appends a moderator action to its activity's audit log; answers once committed. The
    /// chain is checked by the database in the same statement: the row is inserted only if
    /// `idx - 1` holds `prev_hash` (genesis for idx 1), and the primary key refuses a second
    /// entry at one idx. So two nodes that both believe they run an activity's moderation
    /// (a moment of disagreement about ownership) cannot fork the chain: the second write is
    /// refused with `AuditOutOfOrder`.
    pub async fn append_audit(&self, e: AuditEntry) -> Result<(), RecordError> {
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
                &e.activity.as_str(),
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
            &[&e.activity.as_str()],
        ))
        .await?;
        let last: i64 = row.get(0);
        Err(RecordError::AuditOutOfOrder {
            activity: e.activity,
            expected_idx: last as u64 + 1,
        })
    }

    /// An activity's audit log, in idx order.
    pub async fn audit_log(&self, activity: &ActivityId) -> Result<Vec<AuditEntry>, RecordError> {
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
                Ok(AuditEntry {
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
                })
            })
            .collect()
    }

    /// Stores the latest session summary of an activity with the audit head it was made at
    /// and the moderation state's checkpoint.
    pub async fn put_summary(
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
    pub async fn checkpoint(&self, activity: &ActivityId) -> Result<Option<String>, RecordError> {
        let c = self.reader().await?;
        let row = timed(c.query_opt(
            "SELECT state FROM summaries WHERE activity = $1",
            &[&activity.as_str()],
        ))
        .await?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    /// The latest stored summary JSON and audit chain head of an activity.
    pub async fn summary(
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
        let mut groups: BTreeMap<ActivityId, Vec<AppendReq>> = BTreeMap::new();
        for r in batch {
            groups.entry(r.activity.clone()).or_default().push(r);
        }
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            match connect(&self.url).await {
                Ok(c) => self.client = Some(c),
                Err(e) => return fail_all(groups, &e.to_string()),
            }
        }
        let client = self.client.as_mut().expect("connected above");
        let ts = now_ms();
        match commit_batch(client, &groups, ts).await {
            Ok(firsts) => {
                for (activity, reqs) in groups {
                    let Some(first) = firsts.get(&activity).copied() else {
                        for r in reqs {
                            let _ = r
                                .reply
                                .send(Err(RecordError::NoSuchActivity(activity.clone())));
                        }
                        continue;
                    };
                    for (i, r) in reqs.into_iter().enumerate() {
                        let item = Item {
                            seq: Seq(first + i as u64),
                            ts,
                            body: r.body,
                        };
                        (self.on_commit)(&activity, &item, r.public);
                        let _ = r.reply.send(Ok(item));
                    }
                }
            }
            Err(e) => {
                tracing::warn!("record commit failed: {e}");
                self.client = None;
                fail_all(groups, &e.to_string());
            }
        }
    }
}

fn fail_all(groups: BTreeMap<ActivityId, Vec<AppendReq>>, why: &str) {
    for r in groups.into_values().flatten() {
        let _ = r.reply.send(Err(RecordError::Unavailable(why.to_owned())));
    }
}

/// One transaction for the whole batch. Answers the first seq given to each activity that
/// exists (absent: no such activity, nothing stored for it).
async fn commit_batch(
    client: &mut Client,
    groups: &BTreeMap<ActivityId, Vec<AppendReq>>,
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
        let publics: Vec<bool> = reqs.iter().map(|r| r.public).collect();
        let bodies: Vec<String> = reqs
            .iter()
            .map(|r| serde_json::to_string(&r.body).expect("item bodies serialize"))
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
