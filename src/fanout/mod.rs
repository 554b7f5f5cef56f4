//! The sharded in-memory fan-out core: topics, history rings, shards, batching, thinning and
//! the slow-consumer policy. No sockets; the server drives it through [`Fanout`].
//!
//! # Calling contract and run loop
//!
//! ```text
//! server                                fanout
//! ──────                                ──────
//! open_topic(topic, epoch, last_seq)    topic with an empty ring at last_seq
//! record commits item → publish(..)     check seq == last_seq+1, encode once (MsgPack now,
//!                                       JSON on first use), thin?, append to the ring
//! ws connects → connect_wire(form, wire) (ConnHandle, ConnReceiver), conn placed on shard
//!   (or connect(form): a queue instead)  conn_id % shards; with a wire the shard writes to
//!                                       the socket and the receiver yields only the close
//! client `sub` → subscribe(..)          under the topic lock: catch-up up to the flushed edge,
//!                                       and registration on the shard (see "Atomic subscribe")
//!   send `subscribed`, then the catch-up (CatchUp), then release(conn, topic) (a wire
//!   subscription is held until then), then loop:
//!   session: while let Some(out) = rx.recv().await { write frame / close }
//!
//! flusher task, every `interval`:           shard task i (owns its connections):
//!   for each dirty topic, under its lock:     loop { cmd = channel.recv().await;
//!     build ONE batch frame per (view,form)     Add/Remove/Connect/Disconnect: bookkeeping
//!       that has subscribers (encode_batch)     Deliver(frames): for each subscriber
//!     send Deliver(frames) to the shards           wire: writev(header, frame) into the
//!       that hold subscribers                      socket, the rest pending (queue: try_send);
//!   wait until every shard has handled it          full ⇒ frame dropped, lag tracked;
//!   interval = adaptive(flush time)                lagging ≥ lag_close_after ⇒ Close;
//!                                                writes out pending wires when writable }
//! ```
//!
//! A session, as the server drives it:
//!
//! ```no_run
//! # async fn session() {
//! use shangliang::fanout::{CatchUp, Fanout, FanoutConfig, Outbound};
//! use shangliang_signaling::{ActivityId, Epoch, Form, Seq};
//!
//! let fanout = Fanout::new(FanoutConfig::default());
//! let topic = ActivityId::new("demo").unwrap();
//! fanout.open_topic(topic.clone(), Epoch(1), Seq(0)); // epoch and last seq from the record
//! let (conn, mut rx) = fanout.connect(Form::MsgPack);
//! let sub = fanout.subscribe(&conn, &topic, false, None).unwrap();
//! // send `subscribed { epoch: sub.epoch, offset: sub.offset }`, then:
//! match sub.catch_up {
//!     CatchUp::Live => {}
//!     CatchUp::Frames(frames) => { /* send each frame */ }
//!     CatchUp::FromRecord { from, to, then } => { /* read from..=to, encode_batch, send; then `then` */ }
//!     CatchUp::Reset { frame, .. } => { /* send frame */ }
//! }
//! while let Some(out) = rx.recv().await {
//!     match out {
//!         Outbound::Frame(frame) => { /* ws.send(frame) */ }
//!         Outbound::Close { code, reason } => { /* ws.close(code, reason) */ break }
//!     }
//! }
//! drop(conn); // ends every subscription of the connection
//! # }
//! ```
//!
//! # Rules (quoted by `docs/protocol.md`)
//!
//! - **Batches.** Every flush sends each subscriber at most one `batch` frame per topic,
//!   covering the contiguous range `from..=to` of everything published since the previous
//!   flush. The frame is built once per topic, view and form and shared by all subscribers.
//!   A batch is sent even if none of its items is visible in the view, so that `from` of the
//!   next batch always follows `to` of the previous one unless frames were lost.
//! - **Views.** The *full view* (moderators) carries every item. The *public view* leaves out
//!   items held for review (`public = false` at publish; not counted anywhere) and items thinned
//!   out (counted in `thinned`).
//! - **Thinning** (only when `public_max_per_sec > 0`): per topic and per one-second window of
//!   the items' accept time `ts` (`ts / 1000`), at most `public_max_per_sec` *thinnable* public
//!   items reach the public view; later ones in the same window are thinned. Thinnable means a
//!   comment whose author has the role `viewer`. Comments of members, guests and moderators and
//!   every other item (e.g. `hide`) are never thinned and do not use up the budget. The decision
//!   is made once at publish and kept with the item: live batches, catch-up and snapshots agree,
//!   and every node of a cluster that sees the same items decides the same.
//! - **Subscribe and resume.** `subscribe` answers with an `offset` (what the client holds
//!   before the first live batch, which starts at `offset + 1`) and a [`CatchUp`]:
//!   no resume → [`CatchUp::Live`] at the live edge; resume from another epoch →
//!   [`CatchUp::Reset`] (`epoch_changed`); resume offset ahead of the topic → reset
//!   (`offset_ahead`); more than [`MAX_CATCH_UP`] items behind → reset (`history_gone`);
//!   items after the offset still in the ring → [`CatchUp::Frames`]; some older than the ring →
//!   [`CatchUp::FromRecord`] (the server reads them from the record) followed by the ring part.
//!   A reset's snapshot holds the latest [`SNAPSHOT_ITEMS`] items visible in the view.
//!   The items the server reads from the record for `FromRecord` are not thinned; for the
//!   public view the server must leave out held items itself.
//! - **Slow consumers.** Each connection has one bounded queue of `queue_frames` frames shared by
//!   all its subscriptions. A frame that does not fit is dropped for that connection only (the
//!   client sees the gap by `from` and re-subscribes with `resume`). A connection lags from its
//!   first lost frame until a frame is queued while half its queue is free; one that loses a
//!   frame after lagging for `lag_close_after` gets `Close { 4408, "slow consumer" }`, which the
//!   receiver yields before any queued frame.
//! - **Re-subscribe** on the same connection replaces the subscription; frames of the old one
//!   still in the queue are skipped by the receiver, so the new catch-up is not duplicated.
//!
//! # Atomic subscribe
//!
//! Each topic keeps `flushed_to`, the last seq handed to the shards. The flusher builds a flush
//! and sends `Deliver` to the shards *while holding the topic lock*; `subscribe` computes the
//! catch-up up to `flushed_to` and sends `Add` to the connection's shard under the same lock.
//! A shard handles its channel in order, so the connection receives exactly the flushes after
//! `flushed_to`: no gap, no duplicate. A resume offset between `flushed_to` and the last
//! published seq (possible after a node switch) first flushes the topic, under the lock.

mod conn;
mod policy;
mod ring;
mod shard;
#[cfg(test)]
mod tests;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use shangliang_signaling::limits::{MAX_SUBSCRIPTIONS, SNAPSHOT_ITEMS};
use shangliang_signaling::{
    ActivityId, Epoch, Form, Item, Position, ResetReason, Seq, ServerMsg, encode_server,
};
use tokio::sync::{mpsc, oneshot};

pub use conn::{ConnReceiver, Outbound};
pub use wire::{Opcode, Wire, WireSocket};
use conn::ConnShared;
use policy::{AdaptiveInterval, Thinning, is_thinnable};
use ring::{Entry, Ring, VFS, View, vf, vf_parts};
use shard::{FrameSet, Shard, ShardCmd, Sink};

/// A resume further behind than this many items becomes a `reset` with `history_gone`.
pub const MAX_CATCH_UP: u64 = 100_000;
/// Most seqs covered by one catch-up batch frame.
const CATCH_UP_CHUNK: u64 = 1_000;

/// Tuning of the fan-out core.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Number of shard tasks. Default: the available parallelism.
    pub shards: usize,
    /// The minimum flush interval. Default 20 ms.
    pub flush_interval: Duration,
    /// The adaptive upper bound of the flush interval under load. Default 200 ms.
    pub max_flush_interval: Duration,
    /// History ring capacity, in items per topic. Default 10 000.
    pub ring_capacity: usize,
    /// Per-connection queue bound, in frames. Default 64.
    pub queue_frames: usize,
    /// A connection that keeps losing frames this long is closed. Default 5 s.
    pub lag_close_after: Duration,
    /// Thinnable items per second and topic in the public view; 0 turns thinning off (default).
    pub public_max_per_sec: u32,
    /// Run each shard on a thread of its own (with a one-thread runtime) instead of as a task
    /// of the caller's runtime. The hub does: a shard writing one flush to 10,000 sockets holds
    /// its thread for ~100 ms, and as a task it would hold a worker of the runtime the sessions
    /// read on — every post and ack would wait behind the delivery. On threads of their own the
    /// OS interleaves them. Default false (the tests drive shards on the test's runtime).
    pub shard_threads: bool,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            flush_interval: Duration::from_millis(20),
            max_flush_interval: Duration::from_millis(200),
            ring_capacity: 10_000,
            queue_frames: 64,
            lag_close_after: Duration::from_secs(5),
            public_max_per_sec: 0,
            shard_threads: false,
        }
    }
}

/// Why a fan-out call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FanoutError {
    /// The topic was never opened.
    #[error("no such topic")]
    NoSuchTopic,
    /// A publish did not carry the next sequence number of the topic.
    #[error("out of order publish: expected seq {expected}, got {got}")]
    OutOfOrder {
        /// The seq the topic expected (last seq + 1).
        expected: Seq,
        /// The seq the item carried.
        got: Seq,
    },
    /// The connection already holds [`MAX_SUBSCRIPTIONS`] subscriptions.
    #[error("too many subscriptions on this connection")]
    TooManySubscriptions,
    /// The connection was closed (slow consumer); drop it.
    #[error("the connection was closed")]
    Closed,
}

/// Which subscribers of a topic an un-sequenced [`Fanout::broadcast`] reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Views {
    /// Every subscriber.
    All,
    /// Moderators (the full view) only.
    Full,
    /// Everyone but the moderators (the public view).
    Public,
}

/// What the server may ask about a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's epoch.
    pub epoch: Epoch,
    /// The last published seq.
    pub last_seq: Seq,
    /// The oldest seq still in the ring, or `last_seq + 1` if the ring is empty.
    pub ring_first: Seq,
    /// Current subscriptions (all views and forms).
    pub subscribers: usize,
}

/// The answer to a successful subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The topic's epoch.
    pub epoch: Epoch,
    /// What the client holds once it has the catch-up: the first live batch starts right after.
    pub offset: Seq,
    /// What to send before the live frames.
    pub catch_up: CatchUp,
}

/// What a subscriber must be sent before its live frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// No resume: `offset` is the live edge.
    Live,
    /// Resume honoured from the ring: batch frames covering `resume.offset+1 ..= edge`
    /// (possibly none).
    Frames(Vec<Bytes>),
    /// Resume honoured, but `from..=to` is older than the ring: read it from the record and send
    /// it as a batch, then send `then` (the ring part, may be empty).
    FromRecord {
        /// First seq to read from the record.
        from: Seq,
        /// Last seq to read from the record.
        to: Seq,
        /// Ring frames following `to`.
        then: Vec<Bytes>,
    },
    /// Resume not honoured: send this ready `reset` frame (with the snapshot); `offset` is the
    /// live edge.
    Reset {
        /// Why.
        reason: ResetReason,
        /// The encoded `ServerMsg::Reset`.
        frame: Bytes,
    },
}

struct TopicState {
    epoch: Epoch,
    last_seq: Seq,
    /// Last seq handed to the shards.
    flushed_to: Seq,
    ring: Ring,
    thinning: Thinning,
    /// Subscriptions per (view, form).
    counts: [usize; VFS],
    /// Subscriptions per shard.
    per_shard: Vec<usize>,
    /// Queued in the flusher's dirty list.
    dirty: bool,
}

struct Topic {
    id: u64,
    name: ActivityId,
    state: Mutex<TopicState>,
}

struct Inner {
    cfg: FanoutConfig,
    topics: DashMap<ActivityId, Arc<Topic>>,
    shards: Vec<mpsc::UnboundedSender<ShardCmd>>,
    dirty: Mutex<Vec<Arc<Topic>>>,
    next_conn: AtomicU64,
    next_topic: AtomicU64,
}

/// The fan-out core. Cheap to clone; all clones share it.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").field("topics", &self.inner.topics.len()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a topic lock leaves consistent-enough state (every section is
    // short and writes whole values); keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs `shard` on a thread of its own until its command channel closes (the fan-out is
/// dropped). The sockets it writes stay registered with the runtime that accepted them: their
/// readiness wakes the shard's task wherever it runs.
fn spawn_shard_thread(i: usize, shard: Shard, rx: mpsc::UnboundedReceiver<shard::ShardCmd>) {
    std::thread::Builder::new()
        .name(format!("fanout-shard-{i}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("a one-thread runtime for a fan-out shard");
            rt.block_on(shard.run(rx))
        })
        .expect("spawn a fan-out shard thread");
}

impl Fanout {
    /// Starts the shard tasks and the flusher. Must be called inside a tokio runtime.
    pub fn new(cfg: FanoutConfig) -> Fanout {
        let mut cfg = cfg;
        cfg.shards = cfg.shards.max(1);
        cfg.queue_frames = cfg.queue_frames.max(1);
        let mut shards = Vec::with_capacity(cfg.shards);
        let backlog = Arc::new(shard::Backlog::default());
        for i in 0..cfg.shards {
            let (tx, rx) = mpsc::unbounded_channel();
            let shard = Shard::new(cfg.queue_frames, cfg.lag_close_after).with_backlog(backlog.clone());
            if cfg.shard_threads {
                spawn_shard_thread(i, shard, rx);
            } else {
                tokio::spawn(shard.run(rx));
            }
            shards.push(tx);
        }
        let adaptive = AdaptiveInterval::new(cfg.flush_interval, cfg.max_flush_interval);
        let inner = Arc::new(Inner {
            cfg,
            topics: DashMap::new(),
            shards,
            dirty: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
            next_topic: AtomicU64::new(0),
        });
        tokio::spawn(flusher(Arc::downgrade(&inner), adaptive, backlog));
        Fanout { inner }
    }

    /// Opens a topic whose last published seq is `last_seq`, with an empty ring (older items
    /// live in the record). Idempotent for the same epoch. With another epoch the topic starts
    /// over: its ring is emptied and its seq set to `last_seq`; existing subscribers keep
    /// receiving, with batches of the new epoch.
    pub fn open_topic(&self, topic: ActivityId, epoch: Epoch, last_seq: Seq) {
        let cfg = &self.inner.cfg;
        let fresh = || TopicState {
            epoch,
            last_seq,
            flushed_to: last_seq,
            ring: Ring::new(last_seq, cfg.ring_capacity),
            thinning: Thinning::new(cfg.public_max_per_sec),
            counts: [0; VFS],
            per_shard: vec![0; cfg.shards],
            dirty: false,
        };
        let entry = self.inner.topics.entry(topic.clone()).or_insert_with(|| {
            Arc::new(Topic {
                id: self.inner.next_topic.fetch_add(1, Ordering::Relaxed),
                name: topic,
                state: Mutex::new(fresh()),
            })
        });
        let mut st = lock(&entry.state);
        if st.epoch != epoch {
            let (counts, per_shard, dirty) = (st.counts, std::mem::take(&mut st.per_shard), st.dirty);
            *st = TopicState { counts, per_shard, dirty, ..fresh() };
        }
    }

    /// What is known of a topic.
    pub fn topic_info(&self, topic: &ActivityId) -> Option<TopicInfo> {
        let t = self.topic(topic)?;
        let st = lock(&t.state);
        Some(TopicInfo {
            epoch: st.epoch,
            last_seq: st.last_seq,
            ring_first: st.ring.first(),
            subscribers: st.counts.iter().sum(),
        })
    }

    fn topic(&self, topic: &ActivityId) -> Option<Arc<Topic>> {
        self.inner.topics.get(topic).map(|t| Arc::clone(&t))
    }

    /// Appends an item to a topic; the next flush delivers it. Synchronous and cheap; callable
    /// from any thread. `item.seq` must be the topic's last seq + 1. `public = false` holds the
    /// item for review: only the full view gets it.
    pub fn publish(&self, topic: &ActivityId, item: Item, public: bool) -> Result<(), FanoutError> {
        let t = self.topic(topic).ok_or(FanoutError::NoSuchTopic)?;
        let thinnable = is_thinnable(&item.body);
        let (seq, ts) = (item.seq, item.ts);
        // Encode before taking the lock; a rejected item wastes one encode.
        let mut entry = Entry::new(item, public, false, now());
        let mut st = lock(&t.state);
        let expected = st.last_seq.next();
        if seq != expected {
            return Err(FanoutError::OutOfOrder { expected, got: seq });
        }
        entry.thinned = public && st.thinning.handle_item(ts, thinnable);
        st.ring.push(entry);
        st.last_seq = seq;
        let flushed = st.flushed_to;
        st.ring.evict(flushed);
        if !st.dirty {
            st.dirty = true;
            lock(&self.inner.dirty).push(Arc::clone(&t));
        }
        Ok(())
    }

    /// Sends an un-sequenced message (a moderation `event`) to the topic's current subscribers
    /// of `views`, through the same per-connection queues as the batches (so a slow consumer
    /// loses it like a batch frame). The message is encoded once per form that has
    /// subscribers. Taken under the topic lock, so it is ordered with subscribes: a connection
    /// subscribed before the call gets it, one subscribed after does not (it gets the state).
    /// Not kept in history: a client that resumes gets a fresh `state` instead.
    pub fn broadcast(&self, topic: &ActivityId, views: Views, msg: &ServerMsg) -> Result<(), FanoutError> {
        let t = self.topic(topic).ok_or(FanoutError::NoSuchTopic)?;
        let st = lock(&t.state);
        let mut by_form: [Option<Bytes>; 2] = [None, None];
        let mut frames: [Option<Bytes>; VFS] = Default::default();
        let mut any = false;
        for (i, frame) in frames.iter_mut().enumerate() {
            let (view, form) = vf_parts(i);
            let wanted = match views {
                Views::All => true,
                Views::Full => view == View::Full,
                Views::Public => view == View::Public,
            };
            if !wanted || st.counts[i] == 0 {
                continue;
            }
            let slot = &mut by_form[(form == Form::Json) as usize];
            *frame = Some(slot.get_or_insert_with(|| encode_server(form, msg)).clone());
            any = true;
        }
        if !any {
            return Ok(());
        }
        let set = Arc::new(FrameSet { topic: t.id, frames, first_published: now() });
        for (shard, n) in st.per_shard.iter().enumerate() {
            if *n > 0 {
                let _ = self.inner.shards[shard].send(ShardCmd::Deliver(Arc::clone(&set)));
            }
        }
        Ok(())
    }

    /// Registers a websocket connection: its frames arrive in the returned receiver, in a
    /// bounded queue of `queue_frames` frames shared by all its subscriptions.
    pub fn connect(&self, form: Form) -> (ConnHandle, ConnReceiver) {
        let (tx, rx) = mpsc::channel(self.inner.cfg.queue_frames);
        self.register(form, Sink::Queue(tx), Some(rx), Arc::new(ConnShared::default()))
    }

    /// Registers a websocket connection whose shard writes its frames straight to the socket
    /// (see [`Wire`]): a delivery is a non-blocking write, with no queue and no wake-up of the
    /// session. The session writes its own frames through the same `wire`, and must call
    /// [`Fanout::release`] after writing a subscription's catch-up (until then the shard holds
    /// the subscription's live frames). The receiver yields only the close.
    pub fn connect_wire(&self, form: Form, wire: Arc<Wire>) -> (ConnHandle, ConnReceiver) {
        let shared = Arc::new(ConnShared::default());
        wire.attach(Arc::clone(&shared));
        self.register(form, Sink::Wire(wire), None, shared)
    }

    fn register(
        &self,
        form: Form,
        sink: Sink,
        rx: Option<mpsc::Receiver<conn::Queued>>,
        shared: Arc<ConnShared>,
    ) -> (ConnHandle, ConnReceiver) {
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let shard = (id % self.inner.shards.len() as u64) as usize;
        let wire = matches!(sink, Sink::Wire(_));
        let _ = self.inner.shards[shard].send(ShardCmd::Connect { conn: id, sink, shared: Arc::clone(&shared) });
        let handle = ConnHandle {
            id,
            shard,
            form,
            wire,
            shared: Arc::clone(&shared),
            subs: Mutex::new(Default::default()),
            inner: Arc::clone(&self.inner),
        };
        (handle, ConnReceiver { rx, shared, done: false })
    }

    /// Lets a wire connection's subscription to `topic` receive its live frames, after the
    /// session has written `subscribed` and the catch-up (the frames held meanwhile go first).
    /// Nothing to do for a queue connection: its session writes the catch-up before it reads
    /// the queue again.
    pub fn release(&self, conn: &ConnHandle, topic: &ActivityId) {
        if !conn.wire {
            return;
        }
        let subs = lock(&conn.subs);
        if let Some(rec) = subs.iter().flatten().find(|s| s.topic.name == *topic) {
            let _ = self.inner.shards[conn.shard].send(ShardCmd::Release { conn: conn.id, topic: rec.topic.id });
        }
    }

    /// Subscribes a connection to a topic, atomically with respect to publishes and flushes:
    /// the catch-up ends exactly at `offset`, and the first live batch the connection's queue
    /// receives for this topic starts at `offset + 1`. Subscribing again replaces the previous
    /// subscription (frames of the old one still queued are skipped).
    pub fn subscribe(
        &self,
        conn: &ConnHandle,
        topic: &ActivityId,
        full_view: bool,
        resume: Option<Position>,
    ) -> Result<Subscribed, FanoutError> {
        let t = self.topic(topic).ok_or(FanoutError::NoSuchTopic)?;
        if conn.shared.is_closed() {
            return Err(FanoutError::Closed);
        }
        let view = if full_view { View::Full } else { View::Public };
        let new_vf = vf(view, conn.form);
        let mut subs = lock(&conn.subs);
        let slot = match subs.iter().position(|s| s.as_ref().is_some_and(|s| Arc::ptr_eq(&s.topic, &t))) {
            Some(i) => i,
            None => subs.iter().position(Option::is_none).ok_or(FanoutError::TooManySubscriptions)?,
        };
        let mut st = lock(&t.state);
        let (offset, catch_up) = self.catch_up(&t, &mut st, view, conn.form, resume);
        if let Some(old) = subs[slot].take() {
            st.counts[old.vf] -= 1;
            st.per_shard[conn.shard] -= 1;
        }
        st.counts[new_vf] += 1;
        st.per_shard[conn.shard] += 1;
        let gen_ = conn.shared.bump(slot as u8);
        let _ = self.inner.shards[conn.shard].send(ShardCmd::Add {
            conn: conn.id,
            topic: t.id,
            vf: new_vf,
            slot: slot as u8,
            gen_,
            held: conn.wire,
        });
        let epoch = st.epoch;
        drop(st);
        subs[slot] = Some(SubRec { topic: t, vf: new_vf });
        Ok(Subscribed { epoch, offset, catch_up })
    }

    /// The catch-up for a subscription; the caller holds the topic lock.
    fn catch_up(
        &self,
        t: &Topic,
        st: &mut TopicState,
        view: View,
        form: Form,
        resume: Option<Position>,
    ) -> (Seq, CatchUp) {
        let reset = |st: &TopicState, reason| {
            let msg = ServerMsg::Reset {
                topic: t.name.clone(),
                epoch: st.epoch,
                offset: st.flushed_to,
                reason,
                snapshot: st.ring.snapshot(st.flushed_to, view, SNAPSHOT_ITEMS),
            };
            (st.flushed_to, CatchUp::Reset { reason, frame: encode_server(form, &msg) })
        };
        let Some(pos) = resume else { return (st.flushed_to, CatchUp::Live) };
        if pos.epoch != st.epoch {
            return reset(st, ResetReason::EpochChanged);
        }
        if pos.offset > st.last_seq {
            return reset(st, ResetReason::OffsetAhead);
        }
        if pos.offset > st.flushed_to {
            flush_locked(&self.inner, t, st);
        }
        let edge = st.flushed_to;
        if edge.0 - pos.offset.0 > MAX_CATCH_UP {
            return reset(st, ResetReason::HistoryGone);
        }
        let first = st.ring.first();
        let ring_from = pos.offset.next().max(first);
        let frames = st.ring.batches(&t.name, st.epoch, ring_from, edge, view, form, CATCH_UP_CHUNK);
        if pos.offset.next() < first {
            (pos.offset, CatchUp::FromRecord { from: pos.offset.next(), to: Seq(first.0 - 1), then: frames })
        } else {
            (pos.offset, CatchUp::Frames(frames))
        }
    }

    /// Ends a subscription. Frames of it still queued are skipped by the receiver.
    pub fn unsubscribe(&self, conn: &ConnHandle, topic: &ActivityId) {
        let mut subs = lock(&conn.subs);
        let Some(slot) = subs.iter().position(|s| s.as_ref().is_some_and(|s| s.topic.name == *topic)) else {
            return;
        };
        let rec = subs[slot].take().expect("found above");
        conn.end(slot, &rec);
    }

    /// Flushes every dirty topic now and waits until the shards have handed the frames to the
    /// queues. The flusher does this on its own; tests and benches use it to be deterministic.
    pub async fn flush_now(&self) {
        flush_round(&self.inner).await;
    }

    /// Waits until every shard has handled every command sent so far.
    #[cfg(test)]
    pub(crate) async fn sync(&self) {
        barrier(&self.inner).await;
    }
}

/// Builds and sends one flush of a topic; the caller holds its lock.
fn flush_locked(inner: &Inner, t: &Topic, st: &mut TopicState) {
    st.dirty = false;
    if st.flushed_to == st.last_seq {
        return;
    }
    let (from, to) = (st.flushed_to.next(), st.last_seq);
    let mut frames: [Option<Bytes>; VFS] = Default::default();
    for (i, frame) in frames.iter_mut().enumerate() {
        if st.counts[i] > 0 {
            let (view, form) = vf_parts(i);
            *frame = Some(st.ring.batch(&t.name, st.epoch, from, to, view, form));
        }
    }
    let first_published = st.ring.range(from, from).next().map_or_else(now, |e| e.at);
    st.flushed_to = to;
    st.ring.evict(to);
    if frames.iter().all(Option::is_none) {
        return;
    }
    let set = Arc::new(FrameSet { topic: t.id, frames, first_published });
    for (shard, &n) in st.per_shard.iter().enumerate() {
        if n > 0 {
            let _ = inner.shards[shard].send(ShardCmd::Deliver(Arc::clone(&set)));
        }
    }
}

async fn barrier(inner: &Inner) {
    let waits: Vec<_> = inner
        .shards
        .iter()
        .map(|s| {
            let (tx, rx) = oneshot::channel();
            let _ = s.send(ShardCmd::Barrier(tx));
            rx
        })
        .collect();
    for w in waits {
        let _ = w.await;
    }
}

/// One flush of every dirty topic; returns once the shards have handled it.
async fn flush_round(inner: &Inner) -> bool {
    let dirty = std::mem::take(&mut *lock(&inner.dirty));
    if dirty.is_empty() {
        return false;
    }
    for t in &dirty {
        let mut st = lock(&t.state);
        flush_locked(inner, t, &mut st);
    }
    barrier(inner).await;
    true
}

/// The flusher task: flushes every `interval`, adapting it to the time a flush takes and to
/// the share of connections that still had an earlier frame queued.
async fn flusher(inner: Weak<Inner>, mut adaptive: AdaptiveInterval, backlog: Arc<shard::Backlog>) {
    let mut next = tokio::time::Instant::now() + adaptive.current();
    loop {
        tokio::time::sleep_until(next).await;
        let Some(inner) = inner.upgrade() else { return };
        let start = tokio::time::Instant::now();
        let flushed = flush_round(&inner).await;
        let took = start.elapsed();
        let interval = adaptive.handle_flush(took, backlog.take_share());
        if flushed {
            metrics::histogram!("shangliang_fanout_flush_seconds").record(took.as_secs_f64());
        }
        metrics::gauge!("shangliang_fanout_flush_interval_seconds").set(interval.as_secs_f64());
        next = start + interval;
    }
}

struct SubRec {
    topic: Arc<Topic>,
    vf: usize,
}

/// A connection's registration. Dropping it ends all its subscriptions and frees its queue.
pub struct ConnHandle {
    id: u64,
    shard: usize,
    form: Form,
    /// The shard writes to the socket ([`Fanout::connect_wire`]).
    wire: bool,
    shared: Arc<ConnShared>,
    subs: Mutex<[Option<SubRec>; MAX_SUBSCRIPTIONS]>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle").field("id", &self.id).field("shard", &self.shard).finish()
    }
}

impl ConnHandle {
    /// The form of this connection's frames.
    pub fn form(&self) -> Form {
        self.form
    }

    fn end(&self, slot: usize, rec: &SubRec) {
        let mut st = lock(&rec.topic.state);
        st.counts[rec.vf] -= 1;
        st.per_shard[self.shard] -= 1;
        self.shared.bump(slot as u8);
        let _ = self.inner.shards[self.shard].send(ShardCmd::Remove { conn: self.id, topic: rec.topic.id });
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        let subs = std::mem::take(&mut *lock(&self.subs));
        for (slot, rec) in subs.iter().enumerate() {
            if let Some(rec) = rec {
                self.end(slot, rec);
            }
        }
        let _ = self.inner.shards[self.shard].send(ShardCmd::Disconnect { conn: self.id });
    }
}
