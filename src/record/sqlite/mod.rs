//! The [`Record`] in one SQLite file (the embedded default): activities, every item of their
//! topics, the moderators' audit log, summaries and checkpoints.
//!
//! # Contract
//! An append answered `Ok(item)` is **durable** (it survives `kill -9` and, with
//! `synchronous=FULL`, power loss) and has **already been handed to the commit hook** (the
//! server's hook publishes into the fan-out core). An append answered `Err` was not given a
//! seq; nobody sees it. Per activity, seqs are `1, 2, 3 ...` with no gap and no repeat, and the
//! hook sees them in that order.
//!
//! One exception, inherent to any database: if COMMIT reports failure although the data did
//! reach the file (e.g. an fsync error after the write), the append answers `Err` yet its row
//! is stored, and the hook never saw it. The writer then re-reads its heads from the file, so
//! no seq is ever handed out twice.
//!
//! # Why it is built this way
//! - **One writer thread is the sequencer.** SQLite allows one writer at a time anyway; giving
//!   that role to one thread that owns the write connection makes it also the natural place
//!   to assign `seq = head + 1` and `ts`, with no lock and no race between "pick the number" and
//!   "store it". Heads are cached in the thread and are exact, since nothing else writes items.
//!   (Open a file with one `SqliteRecord` only; should two processes share one by mistake, the
//!   `(activity, seq)` primary key fails the colliding batch rather than store a duplicate.)
//! - **WAL**: readers (the read connections, `spawn_blocking`) see the last committed state
//!   and never block the writer or each other; a commit appends to the WAL instead of
//!   rewriting pages of the main file.
//! - **`synchronous=FULL`**: in WAL mode every COMMIT fsyncs the WAL, so an acknowledged
//!   comment survives an OS crash or power cut, not only a process crash. (`NORMAL` would only
//!   sync at checkpoints and can lose the last commits.)
//! - **Group commit**: one fsync costs about as much for 1 row as for 1000. The writer takes
//!   every request that queued while it was busy (up to [`RecordOptions::max_batch`]) into one
//!   transaction, so under load the fsync is amortised over the batch and throughput grows
//!   with the load instead of being capped at fsyncs per second; an idle record still commits
//!   a lone append at once (no timer, no added latency).
//! - **Bounded queue**: beyond [`QUEUE_CAPACITY`] queued requests `append` fails fast with
//!   [`RecordError::Overloaded`] instead of growing memory.
//!
//! # The run loop (`writer::WriterDriver::run`)
//! ```text
//! loop {
//!     req   = queue.blocking_recv()            // ends when every SqliteRecord handle is dropped
//!     batch = [req] + queue.try_recv()*        // up to max_batch
//!     BEGIN IMMEDIATE
//!     for each request: execute it (append: seq = head+1, ts = now, encode_item once, INSERT)
//!                       a request refused on its own (no such activity ...) is answered now
//!     COMMIT                                   // the one fsync of the batch
//!     ok   => heads += batch; for each item in seq order: on_commit(activity, item, public);
//!             answer every request Ok (an append's `AppendDone` runs here, on this thread)
//!     fail => ROLLBACK; forget the batch's heads; answer every request Err(Unavailable)
//! }
//! ```
//! A queued append cannot be withdrawn: it will be stored and published even if whoever
//! waits for its answer has gone away.
//!
//! The fence ([`Record::fence`]) is always granted: one process owns the file, and the
//! moderation drivers of one process are kept unique by the server's registry.
//!
//! The hook and every `AppendDone` run on the writer thread: they must never wait for the
//! record, or the writer would wait for itself.

pub mod admin;
mod log;
mod pool;
mod read;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use shangliang_signaling::consult::AuditEntry;
use shangliang_signaling::{ActivityId, ItemBody, Seq};
use tokio::sync::mpsc;

pub use schema::SCHEMA_VERSION;

use super::audit::AuditRow;
use super::merkle::{LogKey, LogPublicKey, SignedTreeHead};
use super::proof::LogDump;
use super::{
    Activity, ActivityKind, ActivityState, AppendDone, CommitHook, Fence, QUEUE_CAPACITY, Record,
    RecordError, StoredItem,
};
use pool::ReadPool;
use writer::{Op, Reply, Request, Value, WriterDriver};

/// Tuning of a [`SqliteRecord`].
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Group commit: the most requests the writer puts in one transaction.
    pub max_batch: usize,
    /// How many read connections serve `items`, `activities` ...
    pub read_connections: usize,
    /// The Ed25519 key file that signs the Merkle log's heads (created 0600 if missing);
    /// default: [`LogKey::FILE_NAME`] beside the database file.
    pub key_path: Option<PathBuf>,
    /// A key to sign with instead of a key file (tests; `export` and `verify-record`, which
    /// open the record without appending and so never sign).
    pub key: Option<Arc<LogKey>>,
    /// A head is signed once this many leaves of an activity are unsigned ...
    pub sign_every: u64,
    /// ... or once its oldest unsigned leaf waited this long, and when the record closes.
    pub sign_interval: Duration,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            max_batch: 1024,
            read_connections: 4,
            key_path: None,
            key: None,
            sign_every: 256,
            sign_interval: Duration::from_secs(2),
        }
    }
}

/// Handle to the SQLite record. Cheap to clone; the writer thread stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct SqliteRecord {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Some` until drop; taken first so the writer sees the end of its queue.
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    reads: ReadPool,
    public: LogPublicKey,
    #[cfg(test)]
    fail_next_commit: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            // The hook may hold the last handle; the writer thread cannot wait for itself.
            if writer.thread().id() != std::thread::current().id() {
                let _ = writer.join();
            }
        }
    }
}

fn writer_gone() -> RecordError {
    RecordError::Unavailable("the record's writer thread has stopped".into())
}

impl SqliteRecord {
    /// Opens the record at `path`, creating the file and its schema if needed (migrations are
    /// versioned by `PRAGMA user_version`), in WAL mode with `synchronous=FULL`, and starts the
    /// writer thread. `on_commit` sees every item committed from now on. Loads (or creates)
    /// the log's signing key first ([`RecordOptions::key_path`]).
    pub fn open(
        path: &Path,
        opts: RecordOptions,
        on_commit: CommitHook,
    ) -> Result<SqliteRecord, RecordError> {
        let key_path = opts.key_path.clone().unwrap_or_else(|| {
            LogKey::default_path(path.parent().unwrap_or(Path::new(".")))
        });
        let key = match &opts.key {
            Some(k) => k.clone(),
            None => Arc::new(LogKey::load_or_create(&key_path).map_err(|e| RecordError::Unavailable(e.to_string()))?),
        };
        let public = key.public();
        let conn = schema::open_writer(path)?;
        let reads = ReadPool::open(path, opts.read_connections)?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        #[cfg(test)]
        let fail_next_commit = Arc::new(AtomicBool::new(false));
        let driver = WriterDriver {
            conn,
            rx,
            on_commit,
            max_batch: opts.max_batch.max(1),
            heads: Default::default(),
            audit_heads: Default::default(),
            pending_heads: Default::default(),
            pending_audit: Default::default(),
            key,
            sign_every: opts.sign_every.max(1),
            sign_interval_ms: opts.sign_interval.as_millis() as u64,
            logs: Default::default(),
            pending_logs: Default::default(),
            #[cfg(test)]
            fail_next_commit: fail_next_commit.clone(),
        };
        // The ticker: asks the writer every sign interval to sign what is due, so that the
        // last leaves of a burst are signed within the interval even if nothing follows. It
        // holds the queue weakly and ends with the record.
        let weak = tx.downgrade();
        let interval = opts.sign_interval.max(Duration::from_millis(10));
        std::thread::Builder::new()
            .name("record-heads".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    let Some(tx) = weak.upgrade() else { break };
                    let _ = tx.try_send(Request { op: Op::Tick, reply: Reply::Nobody });
                }
            })
            .map_err(|e| RecordError::Unavailable(format!("cannot start the ticker thread: {e}")))?;
        let writer = std::thread::Builder::new()
            .name("record-writer".into())
            .spawn(move || driver.run())
            .map_err(|e| {
                RecordError::Unavailable(format!("cannot start the writer thread: {e}"))
            })?;
        Ok(SqliteRecord {
            inner: Arc::new(Inner {
                tx: Some(tx),
                writer: Some(writer),
                reads,
                public,
                #[cfg(test)]
                fail_next_commit,
            }),
        })
    }

    /// Queues `op`; on refusal the reply is handed back so the caller can answer it.
    fn submit(&self, op: Op, reply: Reply) -> Result<(), (RecordError, Reply)> {
        let Some(tx) = self.inner.tx.as_ref() else {
            return Err((writer_gone(), reply));
        };
        tx.try_send(Request { op, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) => (RecordError::Overloaded, r.reply),
            mpsc::error::TrySendError::Closed(r) => (writer_gone(), r.reply),
        })
    }

    /// Creates an activity like [`Record::create_activity`], blocking this thread until it is
    /// durable (a few milliseconds): for start-up code that is not async. Never from the commit
    /// hook, which runs on the writer thread.
    pub fn create_activity_blocking(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<Activity, RecordError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let op = Op::CreateActivity(Activity::fresh(id, title, kind, state));
        self.submit(op, Reply::Blocking(tx)).map_err(|(e, _)| e)?;
        match rx.recv().map_err(|_| writer_gone())?? {
            Value::Activity(a) => Ok(a),
            _ => unreachable!("the writer answers CreateActivity with an Activity"),
        }
    }

    async fn call(&self, op: Op) -> Result<Value, RecordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(op, Reply::Async(tx)).map_err(|(e, _)| e)?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<R, RecordError> + Send + 'static,
    ) -> Result<R, RecordError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.reads.with(f))
            .await
            .map_err(|e| RecordError::Unavailable(format!("read task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl Record for SqliteRecord {
    async fn create_activity(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<Activity, RecordError> {
        let activity = Activity::fresh(id, title, kind, state);
        match self.call(Op::CreateActivity(activity)).await? {
            Value::Activity(a) => Ok(a),
            _ => unreachable!("the writer answers CreateActivity with an Activity"),
        }
    }

    async fn set_activity_state(&self, id: &ActivityId, state: ActivityState) -> Result<(), RecordError> {
        self.call(Op::SetState { id: id.clone(), state }).await.map(drop)
    }

    fn activities(&self) -> Result<Vec<Activity>, RecordError> {
        self.inner.reads.with(read::activities)
    }

    fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError> {
        self.inner.reads.with(|c| read::activity(c, id))
    }

    fn head(&self, id: &ActivityId) -> Result<Seq, RecordError> {
        self.inner.reads.with(|c| read::head(c, id))
    }

    async fn catalogue(&self) -> Result<Vec<(Activity, Seq)>, RecordError> {
        self.read(|c| {
            read::activities(c)?
                .into_iter()
                .map(|a| {
                    let head = read::head(c, &a.id)?;
                    Ok((a, head))
                })
                .collect()
        })
        .await
    }

    fn health(&self) -> Result<(), String> {
        self.activities().map(drop).map_err(|e| e.to_string())
    }

    fn append(&self, activity: &ActivityId, body: ItemBody, public: bool, done: AppendDone) {
        let op = Op::Append {
            activity: activity.clone(),
            body,
            public,
        };
        if let Err((e, reply)) = self.submit(op, Reply::Append(done)) {
            reply.send(Err(e));
        }
    }

    async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<StoredItem>, RecordError> {
        let id = activity.clone();
        self.read(move |c| read::items(c, &id, from, to, public_only))
            .await
    }

    async fn append_audit(
        &self,
        activity: &ActivityId,
        entry: &AuditEntry,
    ) -> Result<(), RecordError> {
        let row = AuditRow::from_entry(activity, entry)?;
        self.call(Op::AppendAudit(row))
            .await
            .map(drop)
    }

    async fn audit_log(&self, activity: &ActivityId) -> Result<Vec<AuditEntry>, RecordError> {
        let id = activity.clone();
        let rows = self.read(move |c| read::audit_log(c, &id)).await?;
        Ok(rows.into_iter().map(AuditRow::into_entry).collect())
    }

    async fn put_summary(
        &self,
        activity: &ActivityId,
        json: String,
        audit_head: String,
        state: String,
    ) -> Result<(), RecordError> {
        let op = Op::PutSummary {
            activity: activity.clone(),
            json,
            audit_head,
            state,
        };
        self.call(op).await.map(drop)
    }

    async fn summary(&self, activity: &ActivityId) -> Result<Option<(String, String)>, RecordError> {
        let id = activity.clone();
        self.read(move |c| read::summary(c, &id)).await
    }

    async fn checkpoint(&self, activity: &ActivityId) -> Result<Option<String>, RecordError> {
        let id = activity.clone();
        self.read(move |c| read::checkpoint(c, &id)).await
    }

    async fn fence(&self, _activity: &ActivityId) -> Result<Option<Fence>, RecordError> {
        Ok(Some(Fence {
            key: 0,
            generation: 0,
        }))
    }

    async fn unfence(&self, _fence: Fence) {}

    fn fence_held(&self, _fence: Fence) -> bool {
        true
    }

    async fn tree_head(&self, activity: &ActivityId) -> Result<Option<SignedTreeHead>, RecordError> {
        let id = activity.clone();
        self.read(move |c| log::latest_head(c, &id)).await
    }

    fn log_public_key(&self) -> Option<LogPublicKey> {
        Some(self.inner.public)
    }

    async fn log_dump(&self, activity: &ActivityId) -> Result<LogDump, RecordError> {
        let id = activity.clone();
        self.read(move |c| log::dump(c, &id)).await
    }
}

#[cfg(test)]
mod tests;
