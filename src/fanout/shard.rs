//! A shard: one task that owns the subscriptions of its connections and writes shared frames
//! to them: straight into the socket for a connection registered with a [`Wire`] (a
//! non-blocking write; what does not fit waits in the wire's buffer, which the shard writes out
//! when the socket is writable again), or into the connection's queue otherwise. Fed only by
//! its command channel, so the order in which commands are sent is the order in which they take
//! effect.
//!
//! ```text
//! loop { poll: every wire with pending bytes (write what the socket takes; else wait for it)
//!        and the command channel → handle_cmd(cmd, now) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::sync::mpsc::error::TrySendError;

use super::conn::{ConnShared, Queued};
use super::policy::LagTracker;
use super::ring::{VFS, Vf, vf_parts};
use super::wire::{Opcode, Wire, Written};
use shangliang_signaling::Form;

/// The frames of one topic for one flush: one per (view, form) that had subscribers.
#[derive(Debug)]
pub(crate) struct FrameSet {
    pub(crate) topic: u64,
    pub(crate) frames: [Option<Bytes>; VFS],
    /// When the oldest item of the flush was published.
    pub(crate) first_published: Instant,
}

/// Where a connection's frames go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// A bounded queue that the session task reads and writes to the socket.
    Queue(mpsc::Sender<Queued>),
    /// The socket itself.
    Wire(Arc<Wire>),
}

#[derive(Debug)]
pub(crate) enum ShardCmd {
    Connect { conn: u64, sink: Sink, shared: Arc<ConnShared> },
    /// Subscribe (or re-subscribe, replacing the previous subscription to the topic). A `held`
    /// subscription keeps its frames (up to `queue_frames`) until `Release`: the session is
    /// still writing its catch-up to the same socket.
    Add { conn: u64, topic: u64, vf: Vf, slot: u8, gen_: u32, held: bool },
    /// The session has written the catch-up: write the held frames, then deliver as usual.
    Release { conn: u64, topic: u64 },
    Remove { conn: u64, topic: u64 },
    Disconnect { conn: u64 },
    Deliver(Arc<FrameSet>),
    /// Answered once every command sent before it has taken effect.
    Barrier(oneshot::Sender<()>),
}

/// How many deliveries of recent flushes found the connection's queue still holding an earlier
/// frame (or full): the share tells the flusher that consumers — the session tasks, their
/// sockets or the clients behind them — are not keeping up with the flush rate.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    deliveries: std::sync::atomic::AtomicU64,
    backlogged: std::sync::atomic::AtomicU64,
}

impl Backlog {
    fn add(&self, deliveries: u64, backlogged: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.deliveries.fetch_add(deliveries, Relaxed);
        self.backlogged.fetch_add(backlogged, Relaxed);
    }

    /// The share of backlogged deliveries since the last call (0 if there were none).
    pub(crate) fn take_share(&self) -> f64 {
        use std::sync::atomic::Ordering::Relaxed;
        let d = self.deliveries.swap(0, Relaxed);
        let b = self.backlogged.swap(0, Relaxed);
        if d == 0 { 0.0 } else { b as f64 / d as f64 }
    }
}

#[derive(Debug)]
struct SubRef {
    conn: u32,
    slot: u8,
    gen_: u32,
    /// Frames kept while the subscription is held (see `ShardCmd::Add`).
    held: Option<Vec<Bytes>>,
}

#[derive(Debug)]
struct ConnEntry {
    id: u64,
    sink: Sink,
    shared: Arc<ConnShared>,
    lag: LagTracker,
    /// (topic, vf, position in that topic's list)
    subs: Vec<(u64, Vf, usize)>,
    /// In the shard's list of wires with pending bytes.
    pending: bool,
}

/// What one frame handed to a connection came to.
enum Outcome {
    /// Taken (by the socket, its buffer, the queue or the held list); `free` more fit.
    Taken { free: usize, backlogged: bool },
    Full,
    Gone,
}

fn opcode(vf: Vf) -> Opcode {
    if vf_parts(vf).1 == Form::Json { Opcode::Text } else { Opcode::Binary }
}

/// Hands `frame` to connection `c`: the socket (or its buffer) for a wire, else the queue.
fn send_to(c: &mut ConnEntry, op: Opcode, frame: &Bytes, slot: u8, gen_: u32, cap: usize) -> Outcome {
    match &c.sink {
        Sink::Queue(tx) => {
            let backlogged = tx.capacity() < tx.max_capacity();
            match tx.try_send((slot, gen_, frame.clone())) {
                Ok(()) => Outcome::Taken { free: tx.capacity(), backlogged },
                Err(TrySendError::Full(_)) => Outcome::Full,
                // The session is gone; its handle's drop will disconnect it.
                Err(TrySendError::Closed(_)) => Outcome::Gone,
            }
        }
        Sink::Wire(w) => match w.write_frame(op, frame, (slot, gen_), cap) {
            Written::Sent => Outcome::Taken { free: cap, backlogged: false },
            Written::Queued { free } => {
                c.pending = true;
                Outcome::Taken { free, backlogged: true }
            }
            Written::Full => Outcome::Full,
            // The socket failed: the session finds out when it reads.
            Written::Failed => Outcome::Gone,
        },
    }
}

/// The state of one shard. Pure bookkeeping apart from `try_send` into the queues.
#[derive(Debug)]
pub(crate) struct Shard {
    conns: Vec<Option<ConnEntry>>,
    free: Vec<u32>,
    by_id: HashMap<u64, u32>,
    topics: HashMap<u64, [Vec<SubRef>; VFS]>,
    queue_frames: usize,
    lag_close_after: Duration,
    backlog: Arc<Backlog>,
    /// Connections (indices) whose wire has bytes pending.
    pending: Vec<u32>,
}

impl Drop for Shard {
    /// The fan-out is going away (every sender of the shard's channel is gone): a queue's
    /// receiver learns it from its closed queue; a wire connection has no queue, so it is told
    /// to close with 1001 — the same close its session gives a queue that ended.
    fn drop(&mut self) {
        for c in self.conns.iter().flatten() {
            if matches!(c.sink, Sink::Wire(_)) {
                c.shared.close(shangliang_signaling::close::GOING_AWAY, "server shutting down");
            }
        }
    }
}

impl Shard {
    /// Reports backlog into `backlog` (shared with the flusher).
    pub(crate) fn with_backlog(mut self, backlog: Arc<Backlog>) -> Self {
        self.backlog = backlog;
        self
    }

    pub(crate) fn new(queue_frames: usize, lag_close_after: Duration) -> Self {
        Shard {
            conns: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            topics: HashMap::new(),
            queue_frames,
            lag_close_after,
            backlog: Arc::default(),
            pending: Vec::new(),
        }
    }

    /// The shard task: handles commands until every sender is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ShardCmd>) {
        let mut cmds = Vec::with_capacity(256);
        loop {
            let n = std::future::poll_fn(|cx| {
                self.poll_wires(cx);
                rx.poll_recv_many(cx, &mut cmds, 256)
            })
            .await;
            if n == 0 {
                return;
            }
            let now = tokio::time::Instant::now().into_std();
            for cmd in cmds.drain(..) {
                self.handle_cmd(cmd, now);
            }
        }
    }

    /// Writes out the wires with pending bytes as far as their sockets take them; a wire that
    /// is still pending has registered this task to be woken when its socket is writable.
    fn poll_wires(&mut self, cx: &mut std::task::Context<'_>) {
        let mut i = 0;
        while i < self.pending.len() {
            let ci = self.pending[i] as usize;
            let done = match self.conns[ci].as_ref() {
                Some(ConnEntry { sink: Sink::Wire(w), .. }) => w.poll_drain(cx).is_ready(),
                _ => true,
            };
            if done {
                self.pending.swap_remove(i);
                if let Some(c) = self.conns[ci].as_mut() {
                    c.pending = false;
                }
            } else {
                i += 1;
            }
        }
    }

    /// Notes a connection whose wire was left with pending bytes.
    fn note_pending(&mut self, ci: u32) {
        if let Some(c) = self.conns[ci as usize].as_mut()
            && c.pending
            && !self.pending.contains(&ci)
        {
            self.pending.push(ci);
        }
    }

    pub(crate) fn handle_cmd(&mut self, cmd: ShardCmd, now: Instant) {
        match cmd {
            ShardCmd::Connect { conn, sink, shared } => {
                let entry =
                    ConnEntry { id: conn, sink, shared, lag: LagTracker::default(), subs: Vec::new(), pending: false };
                let idx = match self.free.pop() {
                    Some(i) => {
                        self.conns[i as usize] = Some(entry);
                        i
                    }
                    None => {
                        self.conns.push(Some(entry));
                        (self.conns.len() - 1) as u32
                    }
                };
                self.by_id.insert(conn, idx);
            }
            ShardCmd::Add { conn, topic, vf, slot, gen_, held } => {
                let Some(&ci) = self.by_id.get(&conn) else { return };
                self.remove_sub(ci, topic);
                let lists = self.topics.entry(topic).or_default();
                lists[vf].push(SubRef { conn: ci, slot, gen_, held: held.then(Vec::new) });
                let pos = lists[vf].len() - 1;
                if let Some(c) = self.conns[ci as usize].as_mut() {
                    c.subs.push((topic, vf, pos));
                }
            }
            ShardCmd::Release { conn, topic } => {
                if let Some(&ci) = self.by_id.get(&conn) {
                    self.release(ci, topic, now);
                }
            }
            ShardCmd::Remove { conn, topic } => {
                if let Some(&ci) = self.by_id.get(&conn) {
                    self.remove_sub(ci, topic);
                }
            }
            ShardCmd::Disconnect { conn } => {
                if let Some(&ci) = self.by_id.get(&conn) {
                    self.drop_conn(ci);
                }
            }
            ShardCmd::Deliver(set) => self.deliver(&set, now),
            ShardCmd::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }

    fn remove_sub(&mut self, ci: u32, topic: u64) {
        let Some(conn) = self.conns[ci as usize].as_mut() else { return };
        let Some(i) = conn.subs.iter().position(|s| s.0 == topic) else { return };
        let (_, vf, pos) = conn.subs.swap_remove(i);
        let Some(lists) = self.topics.get_mut(&topic) else { return };
        let list = &mut lists[vf];
        list.swap_remove(pos);
        if let Some(moved) = list.get(pos) {
            let moved_conn = self.conns[moved.conn as usize].as_mut().expect("subscribed conn exists");
            for s in moved_conn.subs.iter_mut().filter(|s| s.0 == topic) {
                s.2 = pos;
            }
        }
        if lists.iter().all(Vec::is_empty) {
            self.topics.remove(&topic);
        }
    }

    /// Writes a held subscription's frames and lets it receive directly from now on.
    fn release(&mut self, ci: u32, topic: u64, now: Instant) {
        let Some(c) = self.conns[ci as usize].as_ref() else { return };
        let Some(&(_, vf, pos)) = c.subs.iter().find(|s| s.0 == topic) else { return };
        let Some(sub) = self.topics.get_mut(&topic).and_then(|l| l[vf].get_mut(pos)) else { return };
        let Some(held) = sub.held.take() else { return };
        let (slot, gen_) = (sub.slot, sub.gen_);
        let mut slow = false;
        for frame in &held {
            let c = self.conns[ci as usize].as_mut().expect("checked above");
            let outcome = send_to(c, opcode(vf), frame, slot, gen_, self.queue_frames);
            slow |= self.take_outcome(ci, outcome, now).1;
        }
        self.note_pending(ci);
        if slow {
            self.close_slow(ci);
        }
    }

    /// Applies an outcome to the connection's lag; returns (taken, lagged out).
    fn take_outcome(&mut self, ci: u32, outcome: Outcome, now: Instant) -> (bool, bool) {
        let Some(c) = self.conns[ci as usize].as_mut() else { return (false, false) };
        match outcome {
            Outcome::Taken { free, .. } => {
                c.lag.handle_sent(free, self.queue_frames);
                (true, false)
            }
            Outcome::Full => (false, c.lag.handle_drop(now, self.lag_close_after)),
            Outcome::Gone => (false, false),
        }
    }

    fn close_slow(&mut self, ci: u32) {
        if let Some(c) = self.conns[ci as usize].as_ref() {
            c.shared.close(shangliang_signaling::close::SLOW_CONSUMER, "slow consumer");
            metrics::counter!("shangliang_fanout_slow_closed_total").increment(1);
        }
        self.drop_conn(ci);
    }

    fn drop_conn(&mut self, ci: u32) {
        while let Some(&(topic, _, _)) = self.conns[ci as usize].as_ref().and_then(|c| c.subs.first()) {
            self.remove_sub(ci, topic);
        }
        if self.conns[ci as usize].as_ref().is_some_and(|c| c.pending) {
            self.pending.retain(|&p| p != ci);
        }
        if let Some(c) = self.conns[ci as usize].take() {
            self.by_id.remove(&c.id);
            self.free.push(ci);
        }
    }

    fn deliver(&mut self, set: &FrameSet, now: Instant) {
        let Some(lists) = self.topics.get_mut(&set.topic) else { return };
        let cap = self.queue_frames;
        let (mut delivered, mut dropped, mut backlogged) = (0u64, 0u64, 0u64);
        let mut slow: Vec<u32> = Vec::new();
        for (vf, frame) in set.frames.iter().enumerate() {
            let Some(frame) = frame else { continue };
            let op = opcode(vf);
            for s in lists[vf].iter_mut() {
                let Some(c) = self.conns[s.conn as usize].as_mut() else { continue };
                let was_pending = c.pending;
                let outcome = match s.held.as_mut() {
                    Some(held) if held.len() < cap => {
                        held.push(frame.clone());
                        Outcome::Taken { free: cap - held.len(), backlogged: true }
                    }
                    Some(_) => Outcome::Full,
                    None => send_to(c, op, frame, s.slot, s.gen_, cap),
                };
                match outcome {
                    Outcome::Taken { free, backlogged: b } => {
                        delivered += 1;
                        backlogged += u64::from(b);
                        c.lag.handle_sent(free, cap);
                    }
                    Outcome::Full => {
                        dropped += 1;
                        backlogged += 1;
                        if c.lag.handle_drop(now, self.lag_close_after) {
                            slow.push(s.conn);
                        }
                    }
                    Outcome::Gone => {}
                }
                if c.pending && !was_pending {
                    self.pending.push(s.conn);
                }
            }
        }
        metrics::histogram!("shangliang_fanout_publish_to_send_seconds")
            .record(now.saturating_duration_since(set.first_published).as_secs_f64());
        metrics::counter!("shangliang_fanout_deliveries_total").increment(delivered);
        self.backlog.add(delivered + dropped, backlogged);
        if dropped > 0 {
            metrics::counter!("shangliang_fanout_dropped_frames_total").increment(dropped);
        }
        for ci in slow {
            if self.conns[ci as usize].is_some() {
                self.close_slow(ci);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::conn::ConnReceiver;
    use crate::fanout::Outbound;

    fn conn(shard: &mut Shard, id: u64, cap: usize, now: Instant) -> ConnReceiver {
        let (tx, rx) = mpsc::channel(cap);
        let shared = Arc::new(ConnShared::default());
        shard.handle_cmd(ShardCmd::Connect { conn: id, sink: Sink::Queue(tx), shared: Arc::clone(&shared) }, now);
        ConnReceiver { rx: Some(rx), shared, done: false }
    }

    fn subscribe(shard: &mut Shard, r: &ConnReceiver, id: u64, topic: u64, now: Instant) {
        let gen_ = r.shared.bump(0);
        shard.handle_cmd(ShardCmd::Add { conn: id, topic, vf: 0, slot: 0, gen_, held: false }, now);
    }

    fn frames(topic: u64, n: u8, now: Instant) -> ShardCmd {
        let mut frames: [Option<Bytes>; VFS] = Default::default();
        frames[0] = Some(Bytes::from(vec![n]));
        ShardCmd::Deliver(Arc::new(FrameSet { topic, frames, first_published: now }))
    }

    fn drain(r: &mut ConnReceiver) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(Outbound::Frame(f)) = r.try_recv() {
            got.push(f[0]);
        }
        got
    }

    #[test]
    fn shard_closes_a_lagging_connection_and_keeps_delivering_to_the_rest() {
        let t0 = Instant::now();
        let mut shard = Shard::new(2, Duration::from_secs(5));
        let mut slow = conn(&mut shard, 1, 2, t0);
        let mut fast = conn(&mut shard, 2, 2, t0);
        subscribe(&mut shard, &slow, 1, 7, t0);
        subscribe(&mut shard, &fast, 2, 7, t0);
        let mut fast_got = Vec::new();
        for i in 0..10u8 {
            shard.handle_cmd(frames(7, i, t0), t0 + Duration::from_secs(i.into()));
            fast_got.extend(drain(&mut fast));
        }
        assert_eq!(fast_got, (0..10).collect::<Vec<_>>());
        // Frames 0 and 1 fill the slow queue; 2 starts the lag at t0+2s; 7 (t0+7s) closes it.
        assert_eq!(slow.try_recv(), Some(Outbound::Close { code: 4408, reason: "slow consumer" }));
        assert_eq!(slow.try_recv(), None);
        assert!(!shard.by_id.contains_key(&1), "the shard forgot the slow connection");
    }

    #[test]
    fn removing_one_subscriber_keeps_the_others_in_place() {
        let t0 = Instant::now();
        let mut shard = Shard::new(8, Duration::from_secs(5));
        let mut rs: Vec<ConnReceiver> = (0..4).map(|id| conn(&mut shard, id, 8, t0)).collect();
        for (id, r) in rs.iter().enumerate() {
            subscribe(&mut shard, r, id as u64, 3, t0);
        }
        shard.handle_cmd(ShardCmd::Remove { conn: 1, topic: 3 }, t0);
        shard.handle_cmd(ShardCmd::Disconnect { conn: 0 }, t0);
        // Re-subscribing moves a subscriber within the list.
        let gen_ = rs[3].shared.bump(0);
        shard.handle_cmd(ShardCmd::Add { conn: 3, topic: 3, vf: 0, slot: 0, gen_, held: false }, t0);
        shard.handle_cmd(frames(3, 42, t0), t0);
        let got: Vec<Vec<u8>> = rs.iter_mut().map(drain).collect();
        assert_eq!(got, [vec![], vec![], vec![42], vec![42]]);
        shard.handle_cmd(ShardCmd::Disconnect { conn: 2 }, t0);
        shard.handle_cmd(ShardCmd::Disconnect { conn: 3 }, t0);
        assert!(shard.topics.is_empty(), "no empty topic lists are kept");
    }

    mod wire {
        use super::*;
        use crate::fanout::wire::tests::FakeSocket;

        fn wire_conn(shard: &mut Shard, id: u64, room: usize, now: Instant) -> (Arc<FakeSocket>, Arc<ConnShared>) {
            let socket = FakeSocket::with_room(room);
            let wire = Arc::new(Wire::new(socket.clone()));
            let shared = Arc::new(ConnShared::default());
            wire.attach(shared.clone());
            shard.handle_cmd(ShardCmd::Connect { conn: id, sink: Sink::Wire(wire), shared: shared.clone() }, now);
            (socket, shared)
        }

        fn add(shard: &mut Shard, shared: &ConnShared, id: u64, topic: u64, held: bool, now: Instant) {
            let gen_ = shared.bump(0);
            shard.handle_cmd(ShardCmd::Add { conn: id, topic, vf: 0, slot: 0, gen_, held }, now);
        }

        fn payloads(s: &FakeSocket) -> Vec<u8> {
            s.frames().into_iter().map(|(op, p)| {
                assert_eq!(op, 2, "MessagePack frames are binary");
                p[0]
            }).collect()
        }

        #[test]
        fn a_delivery_is_written_to_the_socket_with_nothing_kept_pending() {
            let t0 = Instant::now();
            let mut shard = Shard::new(4, Duration::from_secs(5));
            let (a, sa) = wire_conn(&mut shard, 1, 1 << 16, t0);
            let (b, sb) = wire_conn(&mut shard, 2, 1 << 16, t0);
            add(&mut shard, &sa, 1, 9, false, t0);
            add(&mut shard, &sb, 2, 9, false, t0);
            for i in 0..3 {
                shard.handle_cmd(frames(9, i, t0), t0);
            }
            assert_eq!(payloads(&a), [0, 1, 2]);
            assert_eq!(payloads(&b), [0, 1, 2]);
            assert!(shard.pending.is_empty(), "no connection is left with pending bytes");
        }

        #[test]
        fn a_held_subscription_gets_its_frames_after_the_release_in_order() {
            let t0 = Instant::now();
            let mut shard = Shard::new(4, Duration::from_secs(5));
            let (s, shared) = wire_conn(&mut shard, 1, 1 << 16, t0);
            add(&mut shard, &shared, 1, 9, true, t0);
            shard.handle_cmd(frames(9, 1, t0), t0);
            shard.handle_cmd(frames(9, 2, t0), t0);
            assert!(payloads(&s).is_empty(), "nothing reaches the socket while the catch-up is written");
            shard.handle_cmd(ShardCmd::Release { conn: 1, topic: 9 }, t0);
            shard.handle_cmd(frames(9, 3, t0), t0);
            assert_eq!(payloads(&s), [1, 2, 3]);
        }

        #[test]
        fn a_socket_that_stops_taking_frames_is_closed_after_the_lag_and_the_rest_go_on() {
            let t0 = Instant::now();
            let mut shard = Shard::new(2, Duration::from_secs(5));
            let (stuck, s1) = wire_conn(&mut shard, 1, 0, t0);
            let (fine, s2) = wire_conn(&mut shard, 2, 1 << 16, t0);
            add(&mut shard, &s1, 1, 7, false, t0);
            add(&mut shard, &s2, 2, 7, false, t0);
            for i in 0..10u8 {
                shard.handle_cmd(frames(7, i, t0), t0 + Duration::from_secs(i.into()));
            }
            assert_eq!(payloads(&fine), (0..10).collect::<Vec<_>>());
            // Frames 0 and 1 wait in the stuck wire; 2 starts the lag at t0+2s; 7 closes it.
            assert!(s1.is_closed(), "the slow connection is told to close");
            assert!(!shard.by_id.contains_key(&1), "the shard forgot the slow connection");
            assert!(shard.pending.is_empty(), "the forgotten connection is not polled");
            assert!(payloads(&stuck).is_empty());
        }

        #[tokio::test]
        async fn a_wire_connection_is_told_to_close_when_the_fan_out_goes_away() {
            let t0 = Instant::now();
            let mut shard = Shard::new(4, Duration::from_secs(5));
            let (_s, shared) = wire_conn(&mut shard, 1, 1 << 16, t0);
            let mut rx = ConnReceiver { rx: None, shared, done: false };
            let (tx, cmds) = mpsc::unbounded_channel();
            let task = tokio::spawn(shard.run(cmds));
            drop(tx); // the fan-out is dropped: the shard ends
            task.await.unwrap();
            let out = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("not left waiting");
            assert_eq!(out, Some(Outbound::Close { code: shangliang_signaling::close::GOING_AWAY, reason: "server shutting down" }));
        }

        #[tokio::test]
        async fn the_shard_writes_pending_bytes_once_the_socket_is_writable() {
            let fanout_like = |shard: Shard| {
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(shard.run(rx));
                (tx, task)
            };
            let t0 = Instant::now();
            let mut shard = Shard::new(8, Duration::from_secs(5));
            let (s, shared) = wire_conn(&mut shard, 1, 2, t0);
            add(&mut shard, &shared, 1, 9, false, t0);
            let (tx, task) = fanout_like(shard);
            for i in 0..3 {
                tx.send(frames(9, i, t0)).unwrap();
            }
            let (done_tx, done_rx) = oneshot::channel();
            tx.send(ShardCmd::Barrier(done_tx)).unwrap();
            done_rx.await.unwrap();
            assert!(payloads(&s).is_empty(), "2 bytes of room: not even one whole frame");
            s.open(1 << 16); // wakes the shard, which writes the rest
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while payloads(&s).len() < 3 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(payloads(&s), [0, 1, 2]);
            drop(tx);
            task.await.unwrap();
        }
    }
}
