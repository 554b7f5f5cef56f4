//! The fan-out core against the naive design, in the same run.
//!
//! Scenarios: (a) 100,000 subscribers on one topic; (b) 1,000 topics × 100 subscribers.
//! Every subscriber is a tokio task that receives its frames and drops them, as a socket
//! writer would. One round publishes comments and waits until every subscriber has everything.
//!
//! - **sharded**: `shangliang::fanout::Fanout` — items encoded once, one shared batch frame per
//!   topic per flush; a round publishes `K` comments per topic in chunks, one flush per chunk
//!   (a hot stream: `CHUNK` comments per flush interval).
//! - **naive**: a `tokio::sync::broadcast` channel per topic carrying `Arc<Item>`; each
//!   subscriber task serialises every item itself (`rmp_serde::to_vec_named`), one frame per
//!   comment.
//!
//! - **sharded_wire**: the same core with every connection registered by `connect_wire`, as
//!   the hub does since issue 11 step 4: the shard writes each frame into the connection's
//!   socket itself — here a socket that takes everything and notes `to` (the kernel's side of
//!   a real write is not measured; `benches/load` measures that) — with no per-viewer queue push
//!   and no subscriber task to wake.
//!
//! Criterion reports wall time per round; the summary lines at the end report comment
//! deliveries (comments × subscribers) per second of process CPU time (`CLOCK_PROCESS_CPUTIME_ID`,
//! all threads) and the ratio. Run: `cargo bench --bench fanout`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use shangliang::fanout::{ConnHandle, Fanout, FanoutConfig, Outbound, Wire, WireSocket};
use shangliang_signaling::{ActivityId, Author, Epoch, Form, Item, ItemBody, Role, Seq};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, broadcast};

/// Process CPU time (all threads), from `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn item(seq: u64) -> Item {
    Item {
        seq: Seq(seq),
        ts: 1_700_000_000_000 + seq,
        body: ItemBody::Comment {
            author: Author { id: format!("viewer-{}", seq % 977).into(), name: "观众".into(), role: Role::Viewer, verified: false },
            text: format!("这是第 {seq} 条评论，讨论一下这个议题的细节。"),
            approves: None,
        },
    }
}

/// `to` of a MessagePack batch frame, read from its header (a socket writer would not even
/// do this; the bench needs it to know when a subscriber has everything).
fn peek_to(mut b: &[u8]) -> u64 {
    let n = rmp::decode::read_map_len(&mut b).unwrap();
    for _ in 0..n {
        let klen = rmp::decode::read_str_len(&mut b).unwrap() as usize;
        let (key, rest) = b.split_at(klen);
        b = rest;
        match key {
            b"to" => return rmp::decode::read_int(&mut b).unwrap(),
            b"t" | b"topic" => {
                let l = rmp::decode::read_str_len(&mut b).unwrap() as usize;
                b = &b[l..];
            }
            _ => {
                let _: u64 = rmp::decode::read_int(&mut b).unwrap();
            }
        }
    }
    panic!("no `to` in batch")
}

/// Counts subscribers that reached the round's target seq.
struct Done {
    target: AtomicU64,
    remaining: AtomicUsize,
    notify: Notify,
}

impl Done {
    fn new() -> Arc<Self> {
        Arc::new(Done { target: AtomicU64::new(0), remaining: AtomicUsize::new(0), notify: Notify::new() })
    }
    fn reached(&self, seq: u64) {
        if seq == self.target.load(Ordering::Acquire) && self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify.notify_one();
        }
    }
    fn arm(&self, target: u64, subscribers: usize) {
        self.remaining.store(subscribers, Ordering::Release);
        self.target.store(target, Ordering::Release);
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    rounds: u64,
    deliveries: u64,
    cpu: Duration,
    wall: Duration,
}

impl Tally {
    fn per_cpu_sec(&self) -> f64 {
        self.deliveries as f64 / self.cpu.as_secs_f64()
    }
    fn wall_per_round(&self) -> Duration {
        self.wall / self.rounds.max(1) as u32
    }
}

static TALLIES: Mutex<Vec<(String, Tally)>> = Mutex::new(Vec::new());
static LATENCIES: Mutex<Vec<(String, Vec<Duration>)>> = Mutex::new(Vec::new());
/// Single-comment rounds (publish → every subscriber has it, flusher-driven) per design.
const LATENCY_ROUNDS: usize = 9;

fn record_latency(name: &str, mut l: Vec<Duration>) {
    l.sort();
    LATENCIES.lock().unwrap().push((name.to_string(), l));
}

fn median_ms(name: &str) -> f64 {
    let all = LATENCIES.lock().unwrap();
    all.iter().find(|(n, _)| n == name).map_or(f64::NAN, |(_, l)| l[l.len() / 2].as_secs_f64() * 1e3)
}

fn record(name: &str, t: Tally) {
    let mut all = TALLIES.lock().unwrap();
    match all.iter_mut().find(|(n, _)| n == name) {
        Some((_, acc)) => {
            acc.rounds += t.rounds;
            acc.deliveries += t.deliveries;
            acc.cpu += t.cpu;
            acc.wall += t.wall;
        }
        None => all.push((name.to_string(), t)),
    }
}

/// A socket that takes every byte at once: the payload of a whole frame is the second slice
/// of the shard's `writev` (the first is the websocket header).
struct NullSocket(Arc<Done>);

impl WireSocket for NullSocket {
    fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        if let [header, payload] = bufs
            && header.len() <= 10
            && !payload.is_empty()
        {
            self.0.reached(peek_to(payload));
        }
        Ok(bufs.iter().map(|b| b.len()).sum())
    }

    fn poll_write_ready(&self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

struct Sharded {
    fanout: Fanout,
    topics: Vec<ActivityId>,
    _conns: Vec<ConnHandle>,
    done: Arc<Done>,
    subscribers: usize,
    last: u64,
}

impl Sharded {
    fn setup(rt: &Runtime, topics: usize, subs_per_topic: usize, wire: bool) -> Sharded {
        rt.block_on(async {
            let fanout = Fanout::new(FanoutConfig { shards: 2, ..FanoutConfig::default() });
            let done = Done::new();
            let topics: Vec<ActivityId> =
                (0..topics).map(|i| ActivityId::new(&format!("topic-{i}")).unwrap()).collect();
            let mut conns = Vec::with_capacity(topics.len() * subs_per_topic);
            for t in &topics {
                fanout.open_topic(t.clone(), Epoch(1), Seq(0));
                for _ in 0..subs_per_topic {
                    if wire {
                        let socket = Wire::new(NullSocket(Arc::clone(&done)));
                        let (h, _rx) = fanout.connect_wire(Form::MsgPack, Arc::new(socket));
                        fanout.subscribe(&h, t, false, None).unwrap();
                        fanout.release(&h, t);
                        conns.push(h);
                        continue;
                    }
                    let (h, mut rx) = fanout.connect(Form::MsgPack);
                    fanout.subscribe(&h, t, false, None).unwrap();
                    let done = Arc::clone(&done);
                    tokio::spawn(async move {
                        while let Some(out) = rx.recv().await {
                            if let Outbound::Frame(frame) = out {
                                done.reached(peek_to(&frame));
                                drop(black_box(frame));
                            }
                        }
                    });
                    conns.push(h);
                }
            }
            let subscribers = conns.len();
            Sharded { fanout, topics, _conns: conns, done, subscribers, last: 0 }
        })
    }

    /// Publishes `k` comments per topic, `chunk` per flush, and waits for every subscriber.
    /// With `chunk == 0` it publishes all at once and leaves flushing to the flusher task.
    fn round(&mut self, rt: &Runtime, k: u64, chunk: u64) -> Tally {
        rt.block_on(async {
            let target = self.last + k;
            self.done.arm(target, self.subscribers);
            let notified = self.done.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (c0, w0) = (cpu_time(), Instant::now());
            let mut seq = self.last;
            while seq < target {
                let end = if chunk == 0 { target } else { (seq + chunk).min(target) };
                for s in seq + 1..=end {
                    for t in &self.topics {
                        self.fanout.publish(t, item(s), true).unwrap();
                    }
                }
                seq = end;
                if chunk > 0 {
                    self.fanout.flush_now().await;
                }
            }
            notified.await;
            let (wall, cpu) = (w0.elapsed(), cpu_time() - c0);
            self.last = target;
            Tally { rounds: 1, deliveries: k * self.subscribers as u64, cpu, wall }
        })
    }
}

struct Naive {
    senders: Vec<broadcast::Sender<Arc<Item>>>,
    done: Arc<Done>,
    subscribers: usize,
    last: u64,
}

impl Naive {
    fn setup(rt: &Runtime, topics: usize, subs_per_topic: usize, capacity: usize) -> Naive {
        rt.block_on(async {
            let done = Done::new();
            let mut senders = Vec::new();
            for _ in 0..topics {
                let (tx, _) = broadcast::channel::<Arc<Item>>(capacity);
                for _ in 0..subs_per_topic {
                    let mut rx = tx.subscribe();
                    let done = Arc::clone(&done);
                    tokio::spawn(async move {
                        loop {
                            match rx.recv().await {
                                Ok(item) => {
                                    let frame = rmp_serde::to_vec_named(&*item).unwrap();
                                    drop(black_box(frame));
                                    done.reached(item.seq.0);
                                }
                                Err(broadcast::error::RecvError::Lagged(n)) => panic!("naive lagged by {n}"),
                                Err(broadcast::error::RecvError::Closed) => break,
                            }
                        }
                    });
                }
                senders.push(tx);
            }
            Naive { senders, done, subscribers: topics * subs_per_topic, last: 0 }
        })
    }

    fn round(&mut self, rt: &Runtime, k: u64) -> Tally {
        rt.block_on(async {
            let target = self.last + k;
            self.done.arm(target, self.subscribers);
            let notified = self.done.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (c0, w0) = (cpu_time(), Instant::now());
            for s in self.last + 1..=target {
                for tx in &self.senders {
                    tx.send(Arc::new(item(s))).unwrap();
                }
            }
            notified.await;
            let (wall, cpu) = (w0.elapsed(), cpu_time() - c0);
            self.last = target;
            Tally { rounds: 1, deliveries: k * self.subscribers as u64, cpu, wall }
        })
    }
}

struct Scenario {
    name: &'static str,
    topics: usize,
    subs_per_topic: usize,
    /// Comments per topic per round, and per flush, for the sharded core.
    k_sharded: u64,
    chunk: u64,
    /// Comments per topic per round for the naive design (it is slow; fewer keep the run short).
    k_naive: u64,
}

fn run(c: &mut Criterion, rt: &Runtime, sc: &Scenario) {
    let mut group = c.benchmark_group(sc.name);
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));

    for (design, wire) in [("sharded", false), ("sharded_wire", true)] {
        let name = format!("{}/{design}", sc.name);
        let mut s = Sharded::setup(rt, sc.topics, sc.subs_per_topic, wire);
        group.bench_function(design, |b| {
            b.iter_custom(|iters| {
                let mut wall = Duration::ZERO;
                for _ in 0..iters {
                    let t = s.round(rt, sc.k_sharded, sc.chunk);
                    wall += t.wall;
                    record(&name, t);
                }
                wall
            })
        });
        let latency: Vec<Duration> = (0..LATENCY_ROUNDS).map(|_| s.round(rt, 1, 0).wall).collect();
        record_latency(&name, latency);
        drop(s);
    }

    let naive_name = format!("{}/naive", sc.name);
    let mut n = Naive::setup(rt, sc.topics, sc.subs_per_topic, (sc.k_naive as usize + 16).next_power_of_two());
    group.bench_function("naive_broadcast", |b| {
        b.iter_custom(|iters| {
            let mut wall = Duration::ZERO;
            for _ in 0..iters {
                let t = n.round(rt, sc.k_naive);
                wall += t.wall;
                record(&naive_name, t);
            }
            wall
        })
    });
    let latency: Vec<Duration> = (0..LATENCY_ROUNDS).map(|_| n.round(rt, 1).wall).collect();
    record_latency(&naive_name, latency);
    drop(n);
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = Criterion::default().configure_from_args();
    let scenarios = [
        Scenario { name: "one_topic_100k_subs", topics: 1, subs_per_topic: 100_000, k_sharded: 1000, chunk: 50, k_naive: 20 },
        Scenario { name: "1k_topics_x_100_subs", topics: 1000, subs_per_topic: 100, k_sharded: 100, chunk: 10, k_naive: 20 },
    ];
    for sc in &scenarios {
        run(&mut c, &rt, sc);
    }
    c.final_summary();
    // Let the subscriber tasks of the last scenario wind down before printing.
    std::thread::sleep(Duration::from_millis(200));
    let all = TALLIES.lock().unwrap();
    println!();
    for sc in &scenarios {
        let get = |d: &str| all.iter().find(|(n, _)| *n == format!("{}/{d}", sc.name)).map(|(_, t)| *t);
        let (Some(s), Some(n)) = (get("sharded"), get("naive")) else { continue };
        if let Some(w) = get("sharded_wire") {
            println!(
                "SUMMARY {}: sharded_wire (shards write to the sockets) {:.3e} deliveries/CPU-s (wall {:.1} ms per round, {} rounds) | \
                 ratio to naive {:.0}x, to sharded with queues {:.1}x | one comment to every subscriber, median wall {:.1} ms",
                sc.name,
                w.per_cpu_sec(),
                w.wall_per_round().as_secs_f64() * 1e3,
                w.rounds,
                w.per_cpu_sec() / n.per_cpu_sec(),
                w.per_cpu_sec() / s.per_cpu_sec(),
                median_ms(&format!("{}/sharded_wire", sc.name)),
            );
        }
        println!(
            "SUMMARY {}: sharded {:.3e} deliveries/CPU-s (wall {:.1} ms per round of {} comments/topic, {} rounds) | \
             naive {:.3e} deliveries/CPU-s (wall {:.1} ms per round of {} comments/topic, {} rounds) | ratio {:.0}x | \
             one comment to every subscriber, median wall: sharded {:.1} ms (flusher-driven, adaptive 20-200 ms interval), naive {:.1} ms",
            sc.name,
            s.per_cpu_sec(),
            s.wall_per_round().as_secs_f64() * 1e3,
            sc.k_sharded,
            s.rounds,
            n.per_cpu_sec(),
            n.wall_per_round().as_secs_f64() * 1e3,
            sc.k_naive,
            n.rounds,
            s.per_cpu_sec() / n.per_cpu_sec(),
            median_ms(&format!("{}/sharded", sc.name)),
            median_ms(&format!("{}/naive", sc.name)),
        );
    }
}
