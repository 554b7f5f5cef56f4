//! The per-connection queue: what a shard writes into and the session task reads from.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use shangliang_signaling::limits::MAX_SUBSCRIPTIONS;
use tokio::sync::mpsc;

/// What the session task of a connection must send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A ready websocket frame (binary for MessagePack, text for JSON).
    Frame(Bytes),
    /// Close the websocket with this code and reason; nothing follows.
    Close {
        /// The websocket close code, e.g. [`shangliang_signaling::close::SLOW_CONSUMER`].
        code: u16,
        /// The close reason text.
        reason: &'static str,
    },
}

/// A queued frame: the subscription slot it was delivered for, that subscription's generation,
/// and the frame. Frames of an ended or replaced subscription are skipped by the receiver.
pub(crate) type Queued = (u8, u32, Bytes);

/// State shared by a connection's handle, its receiver and its shard.
#[derive(Debug, Default)]
pub(crate) struct ConnShared {
    /// Current generation of each subscription slot; bumped by every subscribe and unsubscribe.
    gens: [AtomicU32; MAX_SUBSCRIPTIONS],
    /// Set by the shard, which then drops the queue's only sender: a receiver parked on an
    /// empty queue wakes with "closed"; a busy one checks this flag before its next frame.
    /// Either way the close comes before any queued frame, with no extra wake-up machinery
    /// on the hot path.
    close: OnceLock<(u16, &'static str)>,
    /// Wakes the receiver of a connection whose shard writes to its socket ([`super::Wire`]):
    /// there is no queue whose sender could be dropped. Used once, for the close.
    closed: tokio::sync::Notify,
}

impl ConnShared {
    pub(crate) fn bump(&self, slot: u8) -> u32 {
        self.gens[slot as usize].fetch_add(1, Ordering::AcqRel) + 1
    }

    pub(crate) fn current(&self, slot: u8, gen_: u32) -> bool {
        self.gens[slot as usize].load(Ordering::Acquire) == gen_
    }

    /// Asks the receiver to close the connection, ahead of any queued frames. The caller
    /// (the shard) must drop the queue's sender right after.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let _ = self.close.set((code, reason));
        self.closed.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.close.get().is_some()
    }
}

/// The receiving end of a connection's bounded queue. Read it from the connection's session
/// task and write what it yields to the socket, in order. For a connection whose shard writes
/// to the socket itself ([`super::Fanout::connect_wire`]) there is no queue: the receiver only
/// ever yields the close.
#[derive(Debug)]
pub struct ConnReceiver {
    /// `None` for a wire connection.
    pub(crate) rx: Option<mpsc::Receiver<Queued>>,
    pub(crate) shared: std::sync::Arc<ConnShared>,
    pub(crate) done: bool,
}

impl ConnReceiver {
    /// The next thing to send. A pending close comes before queued frames. `None` once the
    /// close was returned or the connection was dropped. Cancel-safe (use it in `select!`).
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(out) = self.poll_close() {
                return out;
            }
            let Some(rx) = self.rx.as_mut() else {
                self.shared.closed.notified().await;
                continue;
            };
            match rx.recv().await {
                Some((slot, gen_, frame)) => {
                    if self.shared.current(slot, gen_) && !self.shared.is_closed() {
                        return Some(Outbound::Frame(frame));
                    }
                }
                None => {
                    if !self.shared.is_closed() {
                        self.done = true;
                        return None;
                    }
                }
            }
        }
    }

    /// Like [`ConnReceiver::recv`] without waiting: `None` if nothing is ready now.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if let Some(out) = self.poll_close() {
            return out;
        }
        let rx = self.rx.as_mut()?;
        while let Ok((slot, gen_, frame)) = rx.try_recv() {
            if self.shared.current(slot, gen_) {
                return Some(Outbound::Frame(frame));
            }
        }
        None
    }

    /// `Some(out)` if the answer is decided by the close state.
    fn poll_close(&mut self) -> Option<Option<Outbound>> {
        if self.done {
            return Some(None);
        }
        let &(code, reason) = self.shared.close.get()?;
        self.done = true;
        Some(Some(Outbound::Close { code, reason }))
    }
}
