//! The read side: a few read connections.
//!
//! In WAL mode readers see the last committed state and never block the writer (nor it them),
//! so reads need no coordination with the writer thread. Each connection sits behind its own
//! `std::sync::Mutex`; a caller takes the first free one, or waits for one. Async callers run
//! the queries (`read.rs`) from `spawn_blocking`, never on a runtime worker.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

use super::schema::open_reader;
use crate::record::RecordError;

pub(super) struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReadPool {
    pub(super) fn open(path: &Path, n: usize) -> Result<ReadPool, RecordError> {
        let conns = (0..n.max(1))
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(ReadPool {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` on a free connection, waiting for one if all are busy.
    pub(super) fn with<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        let guard = (0..n)
            .find_map(|i| self.conns[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| lock(&self.conns[start % n]));
        f(&guard)
    }
}

// A panic while a connection was held leaves nothing half-done in it: statements are reset
// when dropped, so a poisoned lock is still a usable connection.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

