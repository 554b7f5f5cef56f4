//! Cross-node delivery: where a posted item gets its seq and how every node's fan-out
//! receives it.
//!
//! - [`Bus::Local`] (one node, the embedded default): the SQLite [`Record`] sequences; its
//!   commit hook publishes into the fan-out.
//! - [`Bus::Cluster`] (`serve --nats ... --database postgres://...`): PostgreSQL sequences
//!   (one row lock per activity orders the appends of all nodes) and stores; each node
//!   publishes what it committed on NATS; every node puts what it receives back in seq order
//!   and feeds its fan-out; gaps (a lost NATS message, a NATS outage, a node killed between
//!   commit and publish) are read back from PostgreSQL. See [`cluster`].
//!
//! # Why PostgreSQL and not JetStream sequences
//! The seq must be identical on every node, dense, and durable before the poster's ack; the
//! history must be in PostgreSQL for resume and export. With JetStream as the sequencer an item
//! is made durable twice (stream, then a copy into PostgreSQL by every node or a writer) and the
//! two can disagree during a PostgreSQL outage. With PostgreSQL as the sequencer there is one
//! durable truth; NATS carries only notifications, so losing NATS costs latency (gaps are
//! healed from PostgreSQL within ~0.5 s), never data. The cost: one PostgreSQL transaction per
//! group of appends per node (group commit amortises it), well within the comment rates a
//! consultation sees (thousands per second).

pub mod cluster;
pub mod members;
pub mod owner;
pub mod sequencer;

use std::sync::Arc;

use shangliang_signaling::{ActivityId, Item, ItemBody, Seq};

use crate::record::{Activity, AuditEntry, Record, RecordError};
pub use cluster::{Cluster, ClusterConfig, ClusterHealth};
pub use owner::room_owner;

/// Proof that this node runs an activity's moderation; see [`Bus::fence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    key: i64,
    generation: u64,
}

/// The PostgreSQL advisory lock key of an activity's moderation fence: 8 bytes of SHA-256,
/// stable everywhere (`SELECT * FROM pg_locks WHERE locktype = 'advisory'` shows who holds it).
pub fn fence_key(activity: &ActivityId) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest([b"shangliang-home\0".as_slice(), activity.as_str().as_bytes()].concat());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Where items are sequenced and how they travel.
#[derive(Clone)]
pub enum Bus {
    /// One node: the embedded record sequences.
    Local(Record),
    /// Several nodes sharing NATS and PostgreSQL.
    Cluster(Arc<Cluster>),
}

impl Bus {
    /// Appends an item to an activity's topic. `Ok` means durable and sequenced; see
    /// [`Record::append`] and [`crate::record::postgres::PgRecord::append`].
    pub async fn append(
        &self,
        activity: &ActivityId,
        body: ItemBody,
        public: bool,
    ) -> Result<Item, RecordError> {
        match self {
            Bus::Local(r) => r.append(activity, body, public).await,
            Bus::Cluster(c) => c.append(activity, body, public).await,
        }
    }

    /// The items with `from <= seq <= to` from the durable record.
    pub async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<Item>, RecordError> {
        match self {
            Bus::Local(r) => r.items(activity, from, to, public_only).await,
            Bus::Cluster(c) => c.items(activity, from, to, public_only).await,
        }
    }

    /// Every activity, oldest first (in cluster mode: as last read, at most a tick old).
    pub fn activities(&self) -> Result<Vec<Activity>, RecordError> {
        match self {
            Bus::Local(r) => r.activities(),
            Bus::Cluster(c) => Ok(c.activities()),
        }
    }

    /// One activity, if it exists.
    pub fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError> {
        match self {
            Bus::Local(r) => r.activity(id),
            Bus::Cluster(c) => Ok(c.activities().into_iter().find(|a| a.id == *id)),
        }
    }

    /// The last committed seq of an activity (`Seq(0)` if none; in cluster mode as last read).
    pub fn head(&self, id: &ActivityId) -> Result<Seq, RecordError> {
        match self {
            Bus::Local(r) => r.head(id),
            Bus::Cluster(c) => Ok(c.head(id)),
        }
    }

    /// Appends a moderator action to the activity's audit log (chain-checked; see
    /// [`Record::append_audit`]). In cluster mode the log is in PostgreSQL, so it continues
    /// when the activity's home moves to another node.
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<(), RecordError> {
        match self {
            Bus::Local(r) => r.append_audit(entry).await,
            Bus::Cluster(c) => c.record().append_audit(entry).await,
        }
    }

    /// An activity's audit log, in idx order.
    pub async fn audit_log(&self, activity: &ActivityId) -> Result<Vec<AuditEntry>, RecordError> {
        match self {
            Bus::Local(r) => r.audit_log(activity).await,
            Bus::Cluster(c) => c.record().audit_log(activity).await,
        }
    }

    /// Stores the latest session summary with the audit head it was made at and the
    /// moderation state's checkpoint.
    pub async fn put_summary(
        &self,
        activity: &ActivityId,
        json: String,
        audit_head: String,
        state: String,
    ) -> Result<(), RecordError> {
        match self {
            Bus::Local(r) => r.put_summary(activity, json, audit_head, state).await,
            Bus::Cluster(c) => c.record().put_summary(activity, json, audit_head, state).await,
        }
    }

    /// The moderation state's latest checkpoint of an activity.
    pub async fn checkpoint(&self, activity: &ActivityId) -> Result<Option<String>, RecordError> {
        match self {
            Bus::Local(r) => r.checkpoint(activity),
            Bus::Cluster(c) => c.record().checkpoint(activity).await,
        }
    }

    /// The latest stored summary JSON and audit head of an activity.
    pub async fn summary(
        &self,
        activity: &ActivityId,
    ) -> Result<Option<(String, String)>, RecordError> {
        match self {
            Bus::Local(r) => r.summary(activity),
            Bus::Cluster(c) => c.record().summary(activity).await,
        }
    }

    /// Makes this node the only one that runs `activity`'s moderation (cluster mode): a
    /// session-level advisory lock in PostgreSQL, held until [`Bus::unfence`] or until this
    /// node's lock connection (or the node) dies. `Ok(None)`: another node holds it — it still
    /// believes it is home (say, cut off from NATS but not from PostgreSQL), and two drivers
    /// must never run at once. Always granted in single-node mode.
    pub async fn fence(&self, activity: &ActivityId) -> Result<Option<Fence>, RecordError> {
        match self {
            Bus::Local(_) => Ok(Some(Fence { key: 0, generation: 0 })),
            Bus::Cluster(c) => {
                let key = fence_key(activity);
                Ok(c.record().try_lock(key).await?.map(|generation| Fence { key, generation }))
            }
        }
    }

    /// Gives a fence back (the activity's home moved).
    pub async fn unfence(&self, fence: Fence) {
        if let Bus::Cluster(c) = self {
            c.record().unlock(fence.key, fence.generation).await;
        }
    }

    /// Whether a fence is still held (its lock connection has not been lost since).
    pub fn fence_held(&self, fence: Fence) -> bool {
        match self {
            Bus::Local(_) => true,
            Bus::Cluster(c) => c.record().lock_generation() == fence.generation,
        }
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        match self {
            Bus::Local(_) => None,
            Bus::Cluster(c) => Some(c),
        }
    }

    /// The home node of `activity` if it is another node (cluster mode only): that node runs
    /// its moderation and hosts its video room. `None`: this node.
    pub fn home_elsewhere(&self, activity: &ActivityId) -> Option<String> {
        let c = self.cluster()?;
        let home = c.home(activity);
        (home != c.me()).then_some(home)
    }

    /// Health of NATS and PostgreSQL; `None` in single-node mode.
    pub fn cluster_health(&self) -> Option<ClusterHealth> {
        match self {
            Bus::Local(_) => None,
            Bus::Cluster(c) => Some(c.health()),
        }
    }
}
