//! The durable consultation record: activities, every item of their topics, and the
//! moderators' audit log, in one SQLite file (the embedded default).
//!
//! # Contract
//! An `append` that answers `Ok(item)` is **durable** (it survives `kill -9` and, with
//! `synchronous=FULL`, power loss) and has **already been handed to the commit hook** (the
//! server's hook publishes into the fan-out core). An `append` that answers `Err` was not given
//! a seq; nobody sees it. Per activity, seqs are `1, 2, 3 ...` with no gap and no repeat, and
//! the hook sees them in that order.
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
//!   (Open a file with one `Record` only; should two processes share one by mistake, the
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
//!     req   = queue.blocking_recv()            // ends when every Record handle is dropped
//!     batch = [req] + queue.try_recv()*        // up to max_batch
//!     BEGIN IMMEDIATE
//!     for each request: execute it (append: seq = head+1, ts = now, encode_item once, INSERT)
//!                       a request refused on its own (no such activity ...) is answered now
//!     COMMIT                                   // the one fsync of the batch
//!     ok   => heads += batch; for each item in seq order: on_commit(activity, item, public);
//!             answer every request Ok
//!     fail => ROLLBACK; forget the batch's heads; answer every request Err(Unavailable)
//! }
//! ```
//! Cancelling an `append` future after it was queued does not withdraw it: it will be stored
//! and published; only the answer is lost.
//!
//! The blocking methods (`create_activity`, `set_activity_state`) wait for the writer's
//! commit on the calling thread (a few milliseconds); the hook must therefore never call them,
//! nor wait for an `append`, or the writer would wait for itself.

mod audit;
pub mod merkle;
pub mod postgres;
mod read;
mod schema;
mod writer;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Epoch, Item, ItemBody, Seq};
use tokio::sync::mpsc;

pub use audit::{AuditEntry, AuditHash, GENESIS_HASH};
pub use schema::SCHEMA_VERSION;

use read::ReadPool;
use writer::{Op, Reply, Request, Value, WriterDriver};

/// Requests that may wait for the writer before new ones are refused with
/// [`RecordError::Overloaded`].
pub const QUEUE_CAPACITY: usize = 65_536;

/// What an activity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A video consultation room: members join with camera and microphone.
    Room,
    /// A livestreamed deliberation: a stage of speakers watched by the public.
    Livestream,
}

/// Where an activity is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityState {
    /// Announced, not started.
    Scheduled,
    /// Running now.
    Live,
    /// Over; its record stays.
    Ended,
}

/// The text was not the name of a variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownName(pub String);

macro_rules! named_enum {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name on the wire and in the record (snake_case).
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }
        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s { $($name => Ok($ty::$variant),)* _ => Err(UnknownName(s.to_owned())) }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
named_enum!(ActivityKind { Room => "room", Livestream => "livestream" });
named_enum!(ActivityState { Scheduled => "scheduled", Live => "live", Ended => "ended" });

/// An activity as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Its id; also the id of its comment topic.
    pub id: ActivityId,
    /// Human-readable title.
    pub title: String,
    /// Room or livestream.
    pub kind: ActivityKind,
    /// Scheduled, live or ended.
    pub state: ActivityState,
    /// The epoch of its topic: chosen at random when the activity is created, so a record that
    /// was lost and recreated can never be mistaken for the old one by a resuming client.
    pub epoch: Epoch,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

impl Activity {
    /// A new activity, created now, with a fresh random epoch: non-zero and below 2^31, so that
    /// JavaScript clients hold it exactly. Both record backends create activities this way.
    pub fn fresh(id: ActivityId, title: &str, kind: ActivityKind, state: ActivityState) -> Self {
        Activity {
            id,
            title: title.to_owned(),
            kind,
            state,
            epoch: Epoch(rand::random_range(1..1u32 << 31)),
            created_ms: writer::now_ms(),
        }
    }
}

/// Tuning of a [`Record`].
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Group commit: the most requests the writer puts in one transaction.
    pub max_batch: usize,
    /// How many read connections serve `items`, `latest`, `activities` ...
    pub read_connections: usize,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            max_batch: 1024,
            read_connections: 4,
        }
    }
}

/// Called by the writer thread for each committed item, in seq order, before the `append`
/// that made it is answered: `(activity, item, public)`. It runs on the writer thread, so it
/// must be quick and must not wait on the [`Record`] (see the module docs).
pub type CommitHook = Box<dyn Fn(&ActivityId, &Item, bool) + Send + 'static>;

/// Everything that can go wrong with the record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// An activity with this id exists already.
    #[error("activity {0} already exists")]
    AlreadyExists(ActivityId),
    /// There is no activity with this id.
    #[error("no activity {0}")]
    NoSuchActivity(ActivityId),
    /// Too many requests are waiting for the writer; nothing was stored. Try again later.
    #[error("the record is overloaded ({QUEUE_CAPACITY} requests queued)")]
    Overloaded,
    /// The request could not be made durable (the commit failed, or the writer has stopped);
    /// nothing of it was stored or published.
    #[error("the record is unavailable: {0}")]
    Unavailable(String),
    /// SQLite failed on a read, or while opening the file.
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// Something stored cannot be decoded.
    #[error("the record holds corrupt data: {0}")]
    Corrupt(String),
    /// An audit entry does not continue its activity's chain.
    #[error(
        "audit entry for {activity} out of order: expected idx {expected_idx} and the previous hash"
    )]
    AuditOutOfOrder {
        /// The activity.
        activity: ActivityId,
        /// The idx the next entry must have.
        expected_idx: u64,
    },
}

/// Handle to the record. Cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Record {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Some` until drop; taken first so the writer sees the end of its queue.
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    reads: ReadPool,
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

impl Record {
    /// Opens the record at `path`, creating the file and its schema if needed (migrations are
    /// versioned by `PRAGMA user_version`), in WAL mode with `synchronous=FULL`, and starts the
    /// writer thread. `on_commit` sees every item committed from now on.
    pub fn open_sqlite(
        path: &Path,
        opts: RecordOptions,
        on_commit: CommitHook,
    ) -> Result<Record, RecordError> {
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
            #[cfg(test)]
            fail_next_commit: fail_next_commit.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("record-writer".into())
            .spawn(move || driver.run())
            .map_err(|e| {
                RecordError::Unavailable(format!("cannot start the writer thread: {e}"))
            })?;
        Ok(Record {
            inner: Arc::new(Inner {
                tx: Some(tx),
                writer: Some(writer),
                reads,
                #[cfg(test)]
                fail_next_commit,
            }),
        })
    }

    fn submit(&self, op: Op, reply: Reply) -> Result<(), RecordError> {
        let tx = self.inner.tx.as_ref().ok_or_else(writer_gone)?;
        tx.try_send(Request { op, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RecordError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => writer_gone(),
        })
    }

    /// Sends `op` to the writer and blocks this thread until it is committed.
    fn call_blocking(&self, op: Op) -> Result<Value, RecordError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(op, Reply::Blocking(tx))?;
        rx.recv().map_err(|_| writer_gone())?
    }

    async fn call(&self, op: Op) -> Result<Value, RecordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(op, Reply::Async(tx))?;
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

    /// Creates an activity with a fresh random epoch. Blocks until it is durable.
    /// `Err(AlreadyExists)` if the id is taken.
    pub fn create_activity(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<Activity, RecordError> {
        let activity = Activity::fresh(id, title, kind, state);
        match self.call_blocking(Op::CreateActivity(activity))? {
            Value::Activity(a) => Ok(a),
            _ => unreachable!("the writer answers CreateActivity with an Activity"),
        }
    }

    /// Changes an activity's state. Blocks until it is durable. `Err(NoSuchActivity)`.
    pub fn set_activity_state(
        &self,
        id: &ActivityId,
        state: ActivityState,
    ) -> Result<(), RecordError> {
        self.call_blocking(Op::SetState {
            id: id.clone(),
            state,
        })
        .map(drop)
    }

    /// Every activity, oldest first.
    pub fn activities(&self) -> Result<Vec<Activity>, RecordError> {
        self.inner.reads.with(read::activities)
    }

    /// One activity, if it exists.
    pub fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError> {
        self.inner.reads.with(|c| read::activity(c, id))
    }

    /// The last committed seq of an activity: `Seq(0)` if it has no items or does not exist.
    pub fn head(&self, id: &ActivityId) -> Result<Seq, RecordError> {
        self.inner.reads.with(|c| read::head(c, id))
    }

    /// Appends an item to an activity's topic: the writer gives it the next seq and the
    /// current time, commits it, hands it to the commit hook, then answers. `Ok` means durable
    /// and published; see the module docs. `public` is whether the public view may show it
    /// (false for comments held for review).
    pub async fn append(
        &self,
        activity: &ActivityId,
        body: ItemBody,
        public: bool,
    ) -> Result<Item, RecordError> {
        match self
            .call(Op::Append {
                activity: activity.clone(),
                body,
                public,
            })
            .await?
        {
            Value::Item(item) => Ok(item),
            _ => unreachable!("the writer answers Append with an Item"),
        }
    }

    /// The items with `from <= seq <= to`, in seq order; only public ones if `public_only`.
    pub async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<Item>, RecordError> {
        let id = activity.clone();
        self.read(move |c| read::items(c, &id, from, to, public_only))
            .await
    }

    /// The last `n` items (only public ones if `public_only`), in seq order.
    pub async fn latest(
        &self,
        activity: &ActivityId,
        n: usize,
        public_only: bool,
    ) -> Result<Vec<Item>, RecordError> {
        let id = activity.clone();
        self.read(move |c| read::latest(c, &id, n, public_only))
            .await
    }

    /// Appends a moderator action to its activity's audit log; answers once durable.
    /// `Err(AuditOutOfOrder)` unless `entry.idx` is the last idx + 1 (1 for the first) and
    /// `entry.prev_hash` the last entry's hash ([`GENESIS_HASH`] for the first).
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<(), RecordError> {
        self.call(Op::AppendAudit(entry)).await.map(drop)
    }

    /// Stores the latest session summary (JSON) of an activity with the audit chain head it
    /// was made at and the moderation state's checkpoint, replacing the previous ones; answers
    /// once durable.
    pub async fn put_summary(
        &self,
        activity: &ActivityId,
        json: String,
        audit_head: String,
        state: String,
    ) -> Result<(), RecordError> {
        self.call(Op::PutSummary { activity: activity.clone(), json, audit_head, state }).await.map(drop)
    }

    /// The moderation state's latest checkpoint of an activity (see `put_summary`).
    pub fn checkpoint(&self, activity: &ActivityId) -> Result<Option<String>, RecordError> {
        self.inner.reads.with(|c| read::checkpoint(c, activity))
    }

    /// The latest stored summary JSON and audit chain head of an activity.
    pub fn summary(&self, activity: &ActivityId) -> Result<Option<(String, String)>, RecordError> {
        self.inner.reads.with(|c| read::summary(c, activity))
    }

    /// An activity's audit log, in idx order.
    pub async fn audit_log(&self, activity: &ActivityId) -> Result<Vec<AuditEntry>, RecordError> {
        let id = activity.clone();
        self.read(move |c| read::audit_log(c, &id)).await
    }
}

#[cfg(test)]
mod tests;
