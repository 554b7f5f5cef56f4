//! The writer thread: sole owner of the write connection, sequencer of every activity's items.
//! See the module docs of [`super`] for the run loop and why it is shaped so.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(test)]
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, params};
use shangliang_signaling::{ActivityId, Form, Item, ItemBody, Seq, encode_item};
use tokio::sync::{mpsc, oneshot};

use super::log::{self, LogState};
use super::read::{audit_head, get_u64, sql_int};
use crate::record::audit::{AuditHash, AuditRow, GENESIS_HASH};
use crate::record::merkle::{self, LogKey};
use crate::record::proof::LeafRef;
use crate::record::{Activity, ActivityState, AppendDone, CommitHook, RecordError, now_ms};

/// One request to the writer and where its answer goes.
pub(super) struct Request {
    pub(super) op: Op,
    pub(super) reply: Reply,
}

pub(super) enum Op {
    Append {
        activity: ActivityId,
        body: ItemBody,
        public: bool,
    },
    CreateActivity(Activity),
    SetState {
        id: ActivityId,
        state: ActivityState,
    },
    AppendAudit(AuditRow),
    PutSummary { activity: ActivityId, json: String, audit_head: String, state: String },
    /// Sign the heads that are due (sent by the ticker thread every sign interval).
    Tick,
    /// Makes the writer thread panic, to test what callers see when it is gone.
    #[cfg(test)]
    Crash,
}

/// What a request produced, handed back once it is durable.
pub(super) enum Value {
    Item(Item),
    Activity(Activity),
    Done,
}

type Answer = Result<Value, RecordError>;

/// Where a request's answer goes: an append's [`AppendDone`] (called here, on the writer
/// thread), a oneshot someone awaits, or a std channel a blocking caller waits on (a tokio
/// oneshot cannot be waited on synchronously inside a runtime).
pub(super) enum Reply {
    Append(AppendDone),
    Async(oneshot::Sender<Answer>),
    Blocking(std::sync::mpsc::SyncSender<Answer>),
    /// Nobody waits (a tick).
    Nobody,
}

impl Reply {
    pub(super) fn send(self, answer: Answer) {
        match self {
            Reply::Append(done) => done(answer.map(|v| match v {
                Value::Item(item) => item,
                _ => unreachable!("the writer answers Append with an Item"),
            })),
            // The caller may have gone away: nothing to tell then.
            Reply::Async(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Nobody => {}
        }
    }
}

/// A request executed inside the open transaction, to be answered after COMMIT.
struct Staged {
    reply: Reply,
    value: Value,
    /// For items: the activity and public flag to hand to the commit hook.
    publish: Option<(ActivityId, bool)>,
}

/// Either executed (answer after commit) or refused on its own (answer now, batch goes on).
type Step = Result<(Value, Option<(ActivityId, bool)>), RecordError>;

/// Owns the write connection; fed by [`Request`]s through a bounded channel.
pub(super) struct WriterDriver {
    pub(super) conn: Connection,
    pub(super) rx: mpsc::Receiver<Request>,
    pub(super) on_commit: CommitHook,
    pub(super) max_batch: usize,
    /// Committed head (last seq) of each activity the writer has touched. Only this thread
    /// writes items, so once loaded from the file it stays exact.
    pub(super) heads: HashMap<ActivityId, u64>,
    /// Committed `(idx, hash)` of the last audit entry per activity, likewise.
    pub(super) audit_heads: HashMap<ActivityId, (u64, AuditHash)>,
    /// Heads as the open transaction leaves them; merged into `heads` on COMMIT, dropped on
    /// failure so that no seq is handed out twice or skipped.
    pub(super) pending_heads: HashMap<ActivityId, u64>,
    pub(super) pending_audit: HashMap<ActivityId, (u64, AuditHash)>,
    /// Signs the tree heads.
    pub(super) key: std::sync::Arc<LogKey>,
    /// A head is signed once this many leaves are unsigned ...
    pub(super) sign_every: u64,
    /// ... or once the oldest unsigned leaf waited this long (and when the writer stops).
    pub(super) sign_interval_ms: u64,
    /// Each touched activity's Merkle log as committed, and as the open transaction leaves it.
    pub(super) logs: HashMap<ActivityId, LogState>,
    pub(super) pending_logs: HashMap<ActivityId, LogState>,
    #[cfg(test)]
    pub(super) fail_next_commit: Arc<AtomicBool>,
}

impl WriterDriver {
    /// The run loop: block for one request, take whatever else is queued (up to `max_batch`),
    /// handle them as one transaction, repeat. Ends when every `Record` handle is gone.
    pub(super) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch.min(4096));
        while let Some(first) = self.rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            self.handle_batch(&mut batch);
        }
        // Closing: sign whatever is unsigned, so the record ends on a signed head.
        if self.any_due(u64::MAX) {
            let mut failure = self.conn.execute_batch("BEGIN IMMEDIATE").err().map(|e| e.to_string());
            if failure.is_none() {
                failure = self.sign_due(u64::MAX, now_ms()).err().map(|e| e.to_string());
            }
            if failure.is_none() {
                failure = self.commit().err();
            }
            if let Some(why) = failure {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::error!(error = %why, "could not sign the record's last tree heads");
            }
        }
    }

    /// Whether some log has unsigned leaves that are due at `now` (`u64::MAX`: any).
    fn any_due(&self, now: u64) -> bool {
        self.logs.values().any(|l| self.due(l, now))
    }

    fn due(&self, l: &LogState, now: u64) -> bool {
        let unsigned = l.frontier.size() - l.signed;
        unsigned > 0 && (unsigned >= self.sign_every || now.saturating_sub(l.signed_ms) >= self.sign_interval_ms)
    }

    /// Signs, inside the open transaction, a head for every log that is due at `now`, dated
    /// `ts`.
    fn sign_due(&mut self, now: u64, ts: u64) -> rusqlite::Result<()> {
        let ids: Vec<ActivityId> = self
            .pending_logs
            .iter()
            .chain(self.logs.iter().filter(|(id, _)| !self.pending_logs.contains_key(*id)))
            .filter(|(_, l)| self.due(l, now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let mut state = match self.pending_logs.get(&id) {
                Some(s) => s.clone(),
                None => self.logs[&id].clone(),
            };
            let sth = self.key.sign(&id, state.frontier.head(), ts);
            log::insert_head(&self.conn, &sth, &state.frontier)?;
            state.signed = sth.size;
            state.signed_ms = ts;
            self.pending_logs.insert(id, state);
        }
        Ok(())
    }

    /// Makes sure the open transaction has `activity`'s log loaded. `Ok(Err)`: the stored log
    /// was altered, so nothing more is appended to it (see [`log::load`]).
    fn log_of(&mut self, activity: &ActivityId) -> rusqlite::Result<Result<(), RecordError>> {
        if self.pending_logs.contains_key(activity) {
            return Ok(Ok(()));
        }
        let state = match self.logs.get(activity) {
            Some(s) => s.clone(),
            None => match log::load(&self.conn, activity, &self.key.public()) {
                Ok(s) => s,
                Err(RecordError::Storage(e)) => return Err(e),
                Err(e) => {
                    tracing::error!(%activity, "{e}");
                    return Ok(Err(e));
                }
            },
        };
        self.pending_logs.insert(activity.clone(), state);
        Ok(Ok(()))
    }

    /// Appends a leaf to `activity`'s log, which [`Self::log_of`] has loaded.
    fn push_leaf(&mut self, activity: &ActivityId, what: LeafRef, leaf: &[u8]) -> rusqlite::Result<()> {
        let state = self.pending_logs.get_mut(activity).expect("log_of loaded it");
        let hash = merkle::leaf_hash(leaf);
        let index = state.frontier.push_leaf_hash(hash);
        log::insert_leaf(&self.conn, activity, index, what, &hash)
    }

    fn handle_batch(&mut self, batch: &mut Vec<Request>) {
        let now = now_ms();
        batch.retain(|r| !matches!(r.op, Op::Tick));
        if batch.is_empty() && !self.any_due(now) {
            return;
        }
        let mut staged: Vec<Staged> = Vec::with_capacity(batch.len());
        let mut not_run: Vec<Reply> = Vec::new();
        let mut failure = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .err()
            .map(|e| e.to_string());
        for Request { op, reply } in batch.drain(..) {
            if failure.is_some() {
                not_run.push(reply);
                continue;
            }
            match self.stage(op, now) {
                Ok(Ok((value, publish))) => staged.push(Staged {
                    reply,
                    value,
                    publish,
                }),
                Ok(Err(refused)) => reply.send(Err(refused)),
                Err(e) => {
                    failure = Some(e.to_string());
                    not_run.push(reply);
                }
            }
        }
        if failure.is_none() {
            failure = self.sign_due(now, now).err().map(|e| e.to_string());
        }
        if failure.is_none() {
            failure = self.commit().err();
        }

        if let Some(why) = failure {
            tracing::error!(error = %why, requests = staged.len() + not_run.len(), "record commit failed");
            let _ = self.conn.execute_batch("ROLLBACK");
            // If COMMIT failed after all (e.g. an fsync error after the write), the file may
            // hold the batch anyway: forget every cached head so they are read back from the
            // file, and a seq is never handed out twice.
            self.pending_heads.clear();
            self.pending_audit.clear();
            self.heads.clear();
            self.audit_heads.clear();
            self.pending_logs.clear();
            self.logs.clear();
            let replies = staged.into_iter().map(|s| s.reply).chain(not_run);
            for reply in replies {
                reply.send(Err(RecordError::Unavailable(format!(
                    "commit failed: {why}"
                ))));
            }
            return;
        }

        self.heads.extend(self.pending_heads.drain());
        self.audit_heads.extend(self.pending_audit.drain());
        self.logs.extend(self.pending_logs.drain());
        // Durable now. Publish in seq order, then answer: an answered append is both durable
        // and already in the fan-out.
        for s in &staged {
            if let (Some((activity, public)), Value::Item(item)) = (&s.publish, &s.value) {
                let hook = AssertUnwindSafe(|| (self.on_commit)(activity, item, *public));
                if catch_unwind(hook).is_err() {
                    tracing::error!(%activity, seq = %item.seq, "record commit hook panicked");
                }
            }
        }
        for s in staged {
            s.reply.send(Ok(s.value));
        }
    }

    fn commit(&mut self) -> Result<(), String> {
        #[cfg(test)]
        if self.fail_next_commit.swap(false, Ordering::SeqCst) {
            return Err("injected commit failure".into());
        }
        self.conn.execute_batch("COMMIT").map_err(|e| e.to_string())
    }

    /// Executes one request inside the open transaction. `Err` is a storage failure that
    /// fails the whole batch; `Ok(Err)` refuses this request alone.
    fn stage(&mut self, op: Op, now: u64) -> rusqlite::Result<Step> {
        match op {
            Op::Append {
                activity,
                body,
                public,
            } => self.stage_append(activity, body, public, now),
            Op::CreateActivity(activity) => self.stage_create(activity),
            Op::SetState { id, state } => {
                let n = self
                    .conn
                    .prepare_cached("UPDATE activities SET state = ?2 WHERE id = ?1")?
                    .execute(params![id.as_str(), state.as_str()])?;
                Ok(if n == 0 {
                    Err(RecordError::NoSuchActivity(id))
                } else {
                    Ok((Value::Done, None))
                })
            }
            Op::AppendAudit(row) => self.stage_audit(row),
            Op::PutSummary { activity, json, audit_head, state } => {
                if self.head_of(&activity)?.is_none() {
                    return Ok(Err(RecordError::NoSuchActivity(activity)));
                }
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO summaries (activity, json, audit_head, updated_ms, state) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![activity.as_str(), json, audit_head, sql_int(now), state])?;
                Ok(Ok((Value::Done, None)))
            }
            Op::Tick => Ok(Ok((Value::Done, None))),
            #[cfg(test)]
            Op::Crash => panic!("record writer crash requested by a test"),
        }
    }

    fn stage_append(
        &mut self,
        activity: ActivityId,
        body: ItemBody,
        public: bool,
        now: u64,
    ) -> rusqlite::Result<Step> {
        let Some(head) = self.head_of(&activity)? else {
            return Ok(Err(RecordError::NoSuchActivity(activity)));
        };
        if let Err(e) = self.log_of(&activity)? {
            return Ok(Err(e));
        }
        let item = Item {
            seq: Seq(head + 1),
            ts: now,
            body,
        };
        let blob = encode_item(Form::MsgPack, &item);
        let (kind, author) = match &item.body {
            ItemBody::Comment { author, .. } => ("comment", Some(author.id.as_str())),
            ItemBody::Hide { .. } => ("hide", None),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO items (activity, seq, ts_ms, kind, author, public, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                activity.as_str(),
                sql_int(item.seq.0),
                sql_int(now),
                kind,
                author,
                public,
                &blob[..]
            ])?;
        let leaf = merkle::item_leaf(&activity, item.seq, public, &blob);
        self.push_leaf(&activity, LeafRef::Item(item.seq.0), &leaf)?;
        self.pending_heads.insert(activity.clone(), item.seq.0);
        Ok(Ok((Value::Item(item), Some((activity, public)))))
    }

    fn stage_create(&mut self, a: Activity) -> rusqlite::Result<Step> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO activities (id, title, kind, state, epoch, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                a.id.as_str(),
                a.title,
                a.kind.as_str(),
                a.state.as_str(),
                a.epoch.0,
                sql_int(a.created_ms)
            ])?;
        if n == 0 {
            return Ok(Err(RecordError::AlreadyExists(a.id)));
        }
        self.pending_heads.insert(a.id.clone(), 0);
        Ok(Ok((Value::Activity(a), None)))
    }

    fn stage_audit(&mut self, e: AuditRow) -> rusqlite::Result<Step> {
        let activity = e.activity.clone();
        if self.head_of(&activity)?.is_none() {
            return Ok(Err(RecordError::NoSuchActivity(activity)));
        }
        let last = match self
            .pending_audit
            .get(&activity)
            .or(self.audit_heads.get(&activity))
        {
            Some(&last) => Some(last),
            None => audit_head(&self.conn, &activity)?,
        };
        let (expected_idx, expected_prev) = last.map_or((1, GENESIS_HASH), |(i, h)| (i + 1, h));
        if e.idx != expected_idx || e.prev_hash != expected_prev {
            return Ok(Err(RecordError::AuditOutOfOrder {
                activity,
                expected_idx,
            }));
        }
        if let Err(refused) = self.log_of(&activity)? {
            return Ok(Err(refused));
        }
        self.conn
            .prepare_cached(
                "INSERT INTO audit_log \
                 (activity, idx, ts_ms, actor, action, target, reason, prev_hash, hash, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                activity.as_str(),
                sql_int(e.idx),
                sql_int(e.ts_ms),
                e.actor,
                e.action,
                e.target,
                e.reason,
                &e.prev_hash[..],
                &e.hash[..],
                e.detail
            ])?;
        self.push_leaf(&activity, LeafRef::Audit(e.idx), &merkle::audit_leaf(&e))?;
        self.pending_audit.insert(activity, (e.idx, e.hash));
        Ok(Ok((Value::Done, None)))
    }

    /// The head of an activity as the open transaction sees it; `None` if it does not exist.
    fn head_of(&mut self, id: &ActivityId) -> rusqlite::Result<Option<u64>> {
        if let Some(&h) = self.pending_heads.get(id).or(self.heads.get(id)) {
            return Ok(Some(h));
        }
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM activities WHERE id = ?1")?
            .exists([id.as_str()])?;
        if !exists {
            return Ok(None);
        }
        let h = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM items WHERE activity = ?1")?
            .query_row([id.as_str()], |r| get_u64(r, 0))?;
        // Into `pending`, not `heads`: only a committed batch makes anything it read certain.
        self.pending_heads.insert(id.clone(), h);
        Ok(Some(h))
    }
}
