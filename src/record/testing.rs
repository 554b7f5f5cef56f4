//! A [`Record`] for unit tests of its users: a real SQLite record (in a temp directory) with
//! faults that can be switched on — failed or refused audit writes, appends held back until
//! the test lets them commit.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use shangliang_signaling::consult::AuditEntry;
use shangliang_signaling::{ActivityId, ItemBody, Seq};

use super::sqlite::{RecordOptions, SqliteRecord};
use super::{
    Activity, ActivityKind, ActivityState, AppendDone, CommitHook, Fence, Record, RecordError,
    StoredItem,
};

type Held = (ActivityId, ItemBody, bool, AppendDone);

/// A SQLite record with switchable faults.
pub(crate) struct Faulty {
    inner: SqliteRecord,
    _dir: tempfile::TempDir,
    /// The next this many audit writes fail as unavailable (a transient error).
    pub fail_audit: AtomicU32,
    /// Every audit write is refused as out of order (someone else's chain).
    pub refuse_audit: AtomicBool,
    /// Audit writes tried so far.
    pub audit_tries: AtomicU32,
    /// While `Some`, appends wait here instead of going to the writer.
    held: Mutex<Option<Vec<Held>>>,
}

impl Faulty {
    /// A fresh record with one live livestream, `activity`, whose commits go to `hook`.
    pub async fn open(activity: &ActivityId, hook: CommitHook) -> Arc<Faulty> {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteRecord::open(&dir.path().join("r.sqlite3"), RecordOptions::default(), hook).unwrap();
        inner
            .create_activity(activity.clone(), "测试", ActivityKind::Livestream, ActivityState::Live)
            .await
            .unwrap();
        Arc::new(Faulty {
            inner,
            _dir: dir,
            fail_audit: AtomicU32::new(0),
            refuse_audit: AtomicBool::new(false),
            audit_tries: AtomicU32::new(0),
            held: Mutex::new(None),
        })
    }

    /// From now on appends wait until [`Faulty::release`].
    pub fn hold_appends(&self) {
        *self.held.lock().unwrap() = Some(Vec::new());
    }

    /// How many appends are waiting.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap().as_ref().map_or(0, Vec::len)
    }

    /// Lets the waiting appends go to the writer, in order, and stops holding.
    pub fn release(&self) {
        let held = self.held.lock().unwrap().take().unwrap_or_default();
        for (a, body, public, done) in held {
            self.inner.append(&a, body, public, done);
        }
    }
}

#[async_trait::async_trait]
impl Record for Faulty {
    async fn create_activity(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<Activity, RecordError> {
        self.inner.create_activity(id, title, kind, state).await
    }
    async fn set_activity_state(&self, id: &ActivityId, state: ActivityState) -> Result<(), RecordError> {
        self.inner.set_activity_state(id, state).await
    }
    fn activities(&self) -> Result<Vec<Activity>, RecordError> {
        self.inner.activities()
    }
    fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError> {
        self.inner.activity(id)
    }
    fn head(&self, id: &ActivityId) -> Result<Seq, RecordError> {
        self.inner.head(id)
    }
    async fn catalogue(&self) -> Result<Vec<(Activity, Seq)>, RecordError> {
        self.inner.catalogue().await
    }
    fn health(&self) -> Result<(), String> {
        self.inner.health()
    }
    fn append(&self, activity: &ActivityId, body: ItemBody, public: bool, done: AppendDone) {
        let mut held = self.held.lock().unwrap();
        match held.as_mut() {
            Some(list) => list.push((activity.clone(), body, public, done)),
            None => self.inner.append(activity, body, public, done),
        }
    }
    async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<StoredItem>, RecordError> {
        self.inner.items(activity, from, to, public_only).await
    }
    async fn append_audit(&self, activity: &ActivityId, entry: &AuditEntry) -> Result<(), RecordError> {
        self.audit_tries.fetch_add(1, Ordering::SeqCst);
        if self.refuse_audit.load(Ordering::SeqCst) {
            return Err(RecordError::AuditOutOfOrder { activity: activity.clone(), expected_idx: 0 });
        }
        if self
            .fail_audit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(RecordError::Unavailable("injected audit write failure".into()));
        }
        self.inner.append_audit(activity, entry).await
    }
    async fn audit_log(&self, activity: &ActivityId) -> Result<Vec<AuditEntry>, RecordError> {
        self.inner.audit_log(activity).await
    }
    async fn put_summary(
        &self,
        activity: &ActivityId,
        json: String,
        audit_head: String,
        state: String,
    ) -> Result<(), RecordError> {
        self.inner.put_summary(activity, json, audit_head, state).await
    }
    async fn summary(&self, activity: &ActivityId) -> Result<Option<(String, String)>, RecordError> {
        self.inner.summary(activity).await
    }
    async fn checkpoint(&self, activity: &ActivityId) -> Result<Option<String>, RecordError> {
        self.inner.checkpoint(activity).await
    }
    async fn fence(&self, activity: &ActivityId) -> Result<Option<Fence>, RecordError> {
        self.inner.fence(activity).await
    }
    async fn unfence(&self, fence: Fence) {
        self.inner.unfence(fence).await
    }
    fn fence_held(&self, fence: Fence) -> bool {
        self.inner.fence_held(fence)
    }
    async fn tree_head(&self, activity: &ActivityId) -> Result<Option<crate::record::merkle::SignedTreeHead>, RecordError> {
        self.inner.tree_head(activity).await
    }
    fn log_public_key(&self) -> Option<crate::record::merkle::LogPublicKey> {
        self.inner.log_public_key()
    }
    async fn log_dump(&self, activity: &ActivityId) -> Result<crate::record::proof::LogDump, RecordError> {
        self.inner.log_dump(activity).await
    }
}
