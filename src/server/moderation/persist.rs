//! The moderation record's writer: one task per driver writes its audit entries and session
//! summaries to the record, in the order they were made, and gives the fence back last.
//!
//! ```text
//! loop {
//!     take everything queued                  // a summary followed by a later one is dropped
//!     for each, in order:
//!         write it; on a transient error (database down, writer busy) wait and write it again
//!                   (100 ms, doubling, at most 5 s), holding back everything after it;
//!                   on a refusal that will not change (the stored chain is not this driver's)
//!                   stop writing and tell the driver, which stops (and is started again from
//!                   the stored chain by the next message)
//!     written  = entries durable so far        // what `/metrics` shows, next to `queued`
//! }
//! ```
//!
//! Why in order and retried: the record refuses an audit entry that does not continue the
//! stored chain, so a lost entry would block every later one; and a summary carries the audit
//! head it was made at, so it must not be stored before the entries up to that head are (or
//! `verify-record` would find the head missing from the chain).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use shangliang_signaling::ActivityId;
use shangliang_signaling::consult::AuditEntry;
use tokio::sync::mpsc;

use crate::record::{Fence, Record, RecordError};

/// First wait before a failed write is tried again; it doubles up to [`RETRY_MAX`].
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two tries of one write.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(5);

/// One write, in the order the driver made it.
#[derive(Debug)]
pub(super) enum Persist {
    /// An audit entry (the driver's chain, in order).
    Audit(AuditEntry),
    /// The session summary with the audit head it was made at and the checkpoint.
    Summary {
        /// The summary (JSON).
        json: String,
        /// The audit chain head it was made at.
        head: String,
        /// The moderation state's checkpoint (JSON).
        state: String,
    },
    /// Give the moderation fence back (the driver stopped).
    Release(Fence),
    /// Answered once everything queued before it is written (or refused): a graceful
    /// shutdown waits for the final summary with it.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What the driver sees of its writer.
#[derive(Clone)]
pub(super) struct Persister {
    tx: mpsc::UnboundedSender<Persist>,
    progress: Arc<Progress>,
}

#[derive(Default)]
struct Progress {
    /// Audit entries handed to the writer.
    queued: AtomicU64,
    /// Audit entries durable in the record.
    written: AtomicU64,
    /// A write was refused for good: the driver must stop.
    broken: AtomicBool,
}

impl Persister {
    /// Starts the writer of `activity`'s moderation record on `control`.
    pub(super) fn spawn(
        control: &tokio::runtime::Handle,
        record: Arc<dyn Record>,
        activity: ActivityId,
    ) -> Persister {
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = Arc::new(Progress::default());
        control.spawn(run(record, activity, rx, progress.clone()));
        Persister { tx, progress }
    }

    /// Queues a write.
    pub(super) fn send(&self, p: Persist) {
        if matches!(p, Persist::Audit(_)) {
            self.progress.queued.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.tx.send(p);
    }

    /// Audit entries queued so far, and how many of them are durable.
    #[cfg(test)]
    pub(super) fn audit_progress(&self) -> (u64, u64) {
        (
            self.progress.queued.load(Ordering::Relaxed),
            self.progress.written.load(Ordering::Relaxed),
        )
    }

    /// Whether a write was refused for good (the stored chain is not this driver's).
    pub(super) fn is_broken(&self) -> bool {
        self.progress.broken.load(Ordering::Relaxed)
    }
}

async fn run(
    record: Arc<dyn Record>,
    activity: ActivityId,
    mut rx: mpsc::UnboundedReceiver<Persist>,
    progress: Arc<Progress>,
) {
    let mut queue: VecDeque<Persist> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(p) => queue.push_back(p),
                None => return,
            }
        }
        while let Ok(p) = rx.try_recv() {
            queue.push_back(p);
        }
        let Some(p) = queue.pop_front() else { continue };
        let p = match p {
            Persist::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            p => p,
        };
        // A later summary replaces this one (it is written after every entry before it, too).
        if matches!(p, Persist::Summary { .. }) && queue.iter().any(|q| matches!(q, Persist::Summary { .. })) {
            continue;
        }
        if progress.broken.load(Ordering::Relaxed) && !matches!(p, Persist::Release(_)) {
            continue;
        }
        let is_audit = matches!(p, Persist::Audit(_));
        match write_until_done(record.as_ref(), &activity, &p).await {
            Ok(()) if is_audit => {
                progress.written.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(e) => {
                metrics::counter!("shangliang_consult_persist_failed_total").increment(1);
                tracing::error!(
                    %activity,
                    "moderation record write refused ({e}); the driver stops and starts again from the stored record"
                );
                progress.broken.store(true, Ordering::Relaxed);
            }
        }
        let (queued, written) = (progress.queued.load(Ordering::Relaxed), progress.written.load(Ordering::Relaxed));
        metrics::gauge!("shangliang_consult_audit_unwritten", "activity" => activity.to_string())
            .set(queued.saturating_sub(written) as f64);
    }
}

/// Writes `p`, trying again after transient errors for as long as it takes; `Err` only for a
/// refusal that will not change.
async fn write_until_done(record: &dyn Record, activity: &ActivityId, p: &Persist) -> Result<(), RecordError> {
    let mut wait = RETRY_FIRST;
    let mut tried = false;
    loop {
        let res = match p {
            Persist::Audit(e) => record.append_audit(activity, e).await,
            Persist::Summary { json, head, state } => {
                record.put_summary(activity, json.clone(), head.clone(), state.clone()).await
            }
            Persist::Release(fence) => {
                record.unfence(*fence).await;
                Ok(())
            }
            Persist::Flush(_) => Ok(()),
        };
        match res {
            Ok(()) => return Ok(()),
            // A try whose answer was lost may have stored the entry after all.
            Err(RecordError::AuditOutOfOrder { .. }) if tried && already_stored(record, activity, p).await => {
                return Ok(());
            }
            Err(e) if e.is_transient() => {
                tried = true;
                metrics::counter!("shangliang_consult_persist_retries_total").increment(1);
                tracing::warn!(%activity, "moderation record write failed ({e}); trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether the record holds exactly this audit entry at its position.
async fn already_stored(record: &dyn Record, activity: &ActivityId, p: &Persist) -> bool {
    let Persist::Audit(e) = p else { return false };
    record
        .audit_log(activity)
        .await
        .is_ok_and(|log| log.get(e.index as usize) == Some(e))
}
