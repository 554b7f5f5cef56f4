//! The durable consultation record, behind one seam: the [`Record`] trait.
//!
//! Two implementations: [`sqlite::SqliteRecord`] (one file, the embedded default) and
//! [`postgres::PgRecord`] (shared by the nodes of a cluster). Everything the hub stores goes
//! through the trait: activities, every item of their topics, the moderators' audit log, the
//! session summary with the moderation state's checkpoint, and the *fence* that lets only one
//! node run an activity's moderation. A new storage need is a new trait method with both
//! implementations (and a test of each), never a `match` on the backend.
//!
//! # Contract of an append
//! [`Record::append`] queues an item and returns at once (the caller does not wait for the
//! commit: appends are pipelined). The record gives the item the activity's next seq — per
//! activity `1, 2, 3 ...`, no gap, no repeat, whichever node appended — and commits it. After
//! the commit it hands the item to the **commit hook** (given when the record was opened; the
//! hub's hook feeds the fan-out), in seq order, and only then calls the append's
//! [`AppendDone`] with `Ok(item)`. So an answered `Ok` means durable (it survives `kill -9`)
//! *and* already handed on for delivery. `Err` means it was not stored (see each
//! implementation for the one exception a database cannot avoid: a commit whose answer is
//! lost).
//!
//! # Why a trait object (`Arc<dyn Record>`) and not generics
//! The backend is chosen at start-up by a command-line flag, and every part of the server
//! (sessions, moderation drivers, the cluster's delivery, the HTTP API) holds the record. As a
//! type parameter it would spread to every one of them and to axum's state types for no gain:
//! a call costs one boxed future (`async_trait`), which is nothing next to an fsync or a
//! network round trip, and the hot path ([`Record::append`]) is not async at all.

pub mod admin;
pub mod audit;
pub mod merkle;
pub mod postgres;
pub mod proof;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod testing;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use shangliang_signaling::consult::AuditEntry;
use shangliang_signaling::{ActivityId, Epoch, Item, ItemBody, Seq};

/// Requests that may wait for a record's writer before new ones are refused with
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
            created_ms: now_ms(),
        }
    }
}

/// An item as stored, with whether the public view may show it (false for comments held for
/// review).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredItem {
    /// The item.
    pub item: Item,
    /// Whether the public view may show it.
    pub public: bool,
}

/// Called by the record for each committed item, in seq order, before the append that made it
/// is answered: `(activity, item, public)`. It runs on the record's writer (a thread or a
/// task), so it must be quick and must never wait on the record.
pub type CommitHook = Box<dyn Fn(&ActivityId, &Item, bool) + Send + 'static>;

/// The answer to one [`Record::append`]: called exactly once, on the record's writer after the
/// commit (and after the commit hook saw the item) — or at once, on the caller's thread, if
/// the append cannot even be queued. Like the hook it must be quick and must not block: hand
/// the answer to a channel.
pub type AppendDone = Box<dyn FnOnce(Result<Item, RecordError>) + Send + 'static>;

/// Proof that this node runs an activity's moderation; see [`Record::fence`]. Opaque: only
/// the record that granted it can tell whether it still holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    pub(crate) key: i64,
    pub(crate) generation: u64,
}

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
    /// The request could not be made durable (the commit failed, the database is unreachable,
    /// or the writer has stopped); nothing of it was stored or published.
    #[error("the record is unavailable: {0}")]
    Unavailable(String),
    /// SQLite failed on a read, or while opening the file.
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// Something stored (or handed in to be stored) cannot be decoded.
    #[error("the record holds corrupt data: {0}")]
    Corrupt(String),
    /// An audit entry does not continue its activity's chain.
    #[error(
        "audit entry for {activity} out of order: expected idx {expected_idx} and the previous hash"
    )]
    AuditOutOfOrder {
        /// The activity.
        activity: ActivityId,
        /// The idx (position from 1) the next entry must have.
        expected_idx: u64,
    },
}

impl RecordError {
    /// Whether trying the same request again later may succeed (the database was down, the
    /// writer busy). `false` for refusals that will not change: a broken audit chain, an
    /// unknown activity, corrupt data.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RecordError::Overloaded | RecordError::Unavailable(_) | RecordError::Storage(_)
        )
    }
}

/// The durable record. See the module docs for the append contract and why it is a trait
/// object.
#[async_trait::async_trait]
pub trait Record: Send + Sync + 'static {
    // ---- activities --------------------------------------------------------------------

    /// Creates an activity with a fresh random epoch ([`Activity::fresh`]); answers once it is
    /// durable. `Err(AlreadyExists)` if the id is taken.
    async fn create_activity(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<Activity, RecordError>;

    /// Changes an activity's state (scheduled → live → ended); answers once durable.
    /// `Err(NoSuchActivity)` if there is none.
    async fn set_activity_state(&self, id: &ActivityId, state: ActivityState) -> Result<(), RecordError>;

    /// Every activity, oldest first. Answered without waiting on the network: SQLite reads its
    /// file, PostgreSQL answers from the catalogue it re-reads every [`Record::catalogue`]
    /// call (at most a cluster tick old).
    fn activities(&self) -> Result<Vec<Activity>, RecordError>;

    /// One activity, if it exists (like [`Record::activities`]).
    fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError>;

    /// The last committed seq of an activity, `Seq(0)` if it has no items or does not exist
    /// (like [`Record::activities`]: exact for SQLite, as last read for PostgreSQL).
    fn head(&self, id: &ActivityId) -> Result<Seq, RecordError>;

    /// Reads every activity with its head afresh (and, for PostgreSQL, refreshes the catalogue
    /// [`Record::activities`] answers from). The cluster calls it every tick to find new
    /// activities and items it did not hear of.
    async fn catalogue(&self) -> Result<Vec<(Activity, Seq)>, RecordError>;

    /// `Ok` while the record can be used; otherwise what is wrong (for `/healthz`).
    fn health(&self) -> Result<(), String>;

    // ---- items -------------------------------------------------------------------------

    /// Queues an item for `activity`'s topic and returns at once; `done` is answered once it
    /// is durable (see the module docs). `public` is whether the public view may show it.
    fn append(&self, activity: &ActivityId, body: ItemBody, public: bool, done: AppendDone);

    /// [`Record::append`], waiting for the answer.
    async fn append_durable(
        &self,
        activity: &ActivityId,
        body: ItemBody,
        public: bool,
    ) -> Result<Item, RecordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.append(
            activity,
            body,
            public,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await
            .map_err(|_| RecordError::Unavailable("the record's writer has stopped".into()))?
    }

    /// The items with `from <= seq <= to`, in seq order; only public ones if `public_only`.
    async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<StoredItem>, RecordError>;

    // ---- the moderators' audit log -----------------------------------------------------

    /// Appends a moderator action to `activity`'s audit log; answers once durable. Refused
    /// with `AuditOutOfOrder` unless it continues the stored chain: its `index` is the last
    /// one + 1 (0 for the first) and its `prev_hash` the last entry's `hash` (64 zeros for the
    /// first). So two writers or a bug cannot fork the chain silently.
    async fn append_audit(&self, activity: &ActivityId, entry: &AuditEntry)
    -> Result<(), RecordError>;

    /// `activity`'s audit log, oldest first.
    async fn audit_log(&self, activity: &ActivityId) -> Result<Vec<AuditEntry>, RecordError>;

    // ---- summary and checkpoint --------------------------------------------------------

    /// Stores the latest session summary (JSON) of an activity with the audit chain head it
    /// was made at and the moderation state's checkpoint (JSON), replacing the previous ones;
    /// answers once durable.
    async fn put_summary(
        &self,
        activity: &ActivityId,
        json: String,
        audit_head: String,
        state: String,
    ) -> Result<(), RecordError>;

    /// The latest stored summary JSON and audit chain head of an activity.
    async fn summary(&self, activity: &ActivityId) -> Result<Option<(String, String)>, RecordError>;

    /// The moderation state's latest checkpoint of an activity (see [`Record::put_summary`]).
    async fn checkpoint(&self, activity: &ActivityId) -> Result<Option<String>, RecordError>;

    // ---- the moderation fence ----------------------------------------------------------

    /// Makes the caller the only one that runs `activity`'s moderation until
    /// [`Record::unfence`] or until it dies. `Ok(None)`: someone else holds it (in a cluster,
    /// another node that still believes it is home — two drivers must never run at once).
    async fn fence(&self, activity: &ActivityId) -> Result<Option<Fence>, RecordError>;

    /// Gives a fence back.
    async fn unfence(&self, fence: Fence);

    /// Whether `fence` still holds (it can be lost with the database connection that held it).
    fn fence_held(&self, fence: Fence) -> bool;

    // ---- the Merkle log (see `proof`) ---------------------------------------------------

    /// The latest signed head of `activity`'s Merkle log, if one was signed (heads are
    /// signed within seconds of an append and when the record closes).
    async fn tree_head(&self, activity: &ActivityId) -> Result<Option<merkle::SignedTreeHead>, RecordError>;

    /// The public key that verifies this record's heads; `None` if it keeps no log.
    fn log_public_key(&self) -> Option<merkle::LogPublicKey>;

    /// Every stored row the log of `activity` covers, for `verify-record`.
    async fn log_dump(&self, activity: &ActivityId) -> Result<proof::LogDump, RecordError>;
}

/// What the public gets in place of a hidden comment: an item at the comment's seq (so the
/// topic stays contiguous) that is itself a hide of that seq, with no text. A client removes
/// it like any hide (there is nothing to remove) and never sees the original.
pub fn tombstone(hidden: &Item) -> Item {
    Item { seq: hidden.seq, ts: hidden.ts, body: ItemBody::Hide { target: hidden.seq } }
}

/// Replaces, for the public view, every item whose seq is in `hidden` with its [`tombstone`].
/// Both records' `items(public_only = true)` answer through it, so a resume read from the
/// record (after a restart, or beyond the in-memory history) never re-sends a hidden text.
pub(crate) fn tombstone_hidden(items: &mut [StoredItem], hidden: &std::collections::HashSet<Seq>) {
    for s in items.iter_mut() {
        if matches!(s.item.body, ItemBody::Comment { .. }) && hidden.contains(&s.item.seq) {
            s.item = tombstone(&s.item);
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
