//! The consensus core at the issue's scale: 100,000 identities × 200 statements with 5 % of the
//! matrix voted (1 M votes), planted opinion groups (4 groups of 40/30/20/10 %, noisy votes).
//!
//! - `recompute/cold` and `recompute/warm`: one `RecomputeJob::run` — who counts, principal
//!   components, groups by silhouette, repness, consensus, divisive — from a snapshot, without
//!   and with the previous report (the steady state: warm-started components, kept group ids).
//!   Single-threaded by construction; pin the process to one core to measure "on one core".
//! - `snapshot`: what the driver pays to hand a recompute its matrix.
//! - `ingest/core` against `ingest/naive`: votes per second into `Consensus::handle_statement_vote`
//!   (authorisation, interning, packed row, per-tier counts, dirty flags) against the obvious
//!   design, a `BTreeMap<(subject, statement), vote>` with per-statement counts.
//!
//! Before criterion runs, the bench builds the core once, runs one recompute and prints the
//! process's peak resident memory (VmHWM) for the build and, separately, during the recompute
//! (the peak is reset through `/proc/self/clear_refs` in between).
//!
//! ```sh
//! cargo bench --bench consensus                                # full size
//! CONSENSUS_BENCH_MODE=memory cargo bench --bench consensus    # only the memory figures
//! CONSENSUS_PARTICIPANTS=2000 cargo bench --bench consensus -- --quick   # smoke
//! ```
//! Sizes: `CONSENSUS_PARTICIPANTS` (100000), `CONSENSUS_STATEMENTS` (200), `CONSENSUS_DENSITY`
//! (0.05).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use shangliang::consensus::{
    CommandReply, Consensus, ConsensusConfig, ModeratorCommand, RecomputeJob, StatementId, Vote,
};
use shangliang::consult::{Grants, ParticipantId};
use shangliang_signaling::{ActivityId, Role};

struct Size {
    participants: usize,
    statements: usize,
    density: f64,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn size() -> Size {
    Size {
        participants: env("CONSENSUS_PARTICIPANTS", 100_000),
        statements: env("CONSENSUS_STATEMENTS", 200),
        density: env("CONSENSUS_DENSITY", 0.05),
    }
}

fn activity() -> ActivityId {
    ActivityId::new("bench").unwrap()
}

fn grants(i: usize, role: Role) -> Grants {
    Grants {
        subject: ParticipantId::new(format!("viewer-{i:06}")),
        name: String::new(),
        role,
        org: None,
        verified: i.is_multiple_of(5),
        activity: activity(),
    }
}

fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The votes of a planted population, in a shuffled (live-like) order: (identity, statement, vote).
fn votes(s: &Size) -> Vec<(u32, u16, Vote)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(17);
    let groups = 4;
    // Each group's stance on each statement: agree with probability ½; the first tenth are
    // agreed by all (planted consensus).
    let stances: Vec<Vec<bool>> = (0..groups)
        .map(|_| (0..s.statements).map(|_| unit(&mut rng) < 0.5).collect())
        .collect();
    let mut out = Vec::with_capacity((s.participants as f64 * s.statements as f64 * s.density * 1.05) as usize);
    for p in 0..s.participants {
        let g = match p % 10 {
            0..4 => 0,
            4..7 => 1,
            7..9 => 2,
            _ => 3,
        };
        for (st, stance) in stances[g].iter().enumerate() {
            if unit(&mut rng) >= s.density {
                continue;
            }
            let agrees = st < s.statements / 10 || *stance;
            let u = unit(&mut rng);
            let v = match (u < 0.75, u < 0.9) {
                (true, _) => if agrees { Vote::Agree } else { Vote::Disagree },
                (false, true) => if agrees { Vote::Disagree } else { Vote::Agree },
                _ => Vote::Pass,
            };
            out.push((p as u32, st as u16, v));
        }
    }
    for i in (1..out.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

fn empty_core(s: &Size) -> (Consensus, Vec<StatementId>) {
    let mut c = Consensus::new(activity(), ConsensusConfig { seed: 1, ..Default::default() });
    let m = grants(usize::MAX, Role::Moderator);
    let ids = (0..s.statements)
        .map(|i| match c.handle_command(&m, ModeratorCommand::WriteStatement { text: format!("陈述 {i}") }, 0).unwrap() {
            CommandReply::StatementCreated { statement } => statement,
            r => panic!("{r:?}"),
        })
        .collect();
    while c.poll_event(0).is_some() {}
    (c, ids)
}

fn ingest(c: &mut Consensus, ids: &[StatementId], people: &[Grants], votes: &[(u32, u16, Vote)]) {
    for (p, s, v) in votes {
        c.handle_statement_vote(&people[*p as usize], ids[*s as usize], *v, 1).unwrap();
    }
}

/// The obvious design: a map keyed by owned subject and statement, and per-statement counts.
fn ingest_naive(people: &[Grants], votes: &[(u32, u16, Vote)], n_statements: usize) -> usize {
    let mut m: BTreeMap<(String, u16), Vote> = BTreeMap::new();
    let mut counts = vec![[0u32; 3]; n_statements];
    let slot = |v: Vote| match v {
        Vote::Agree => 0,
        Vote::Disagree => 1,
        Vote::Pass => 2,
    };
    for (p, s, v) in votes {
        let key = (people[*p as usize].subject.to_string(), *s);
        if let Some(old) = m.insert(key, *v) {
            counts[*s as usize][slot(old)] -= 1;
        }
        counts[*s as usize][slot(*v)] += 1;
    }
    m.len() + counts.len()
}

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak RSS (Linux: "5" to clear_refs).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Builds the core, runs one recompute, prints memory and timing of that one run. Returns the
/// core and a job for criterion.
fn measure_once(s: &Size) -> (Consensus, RecomputeJob) {
    let rss0 = status_kib("VmRSS:").unwrap_or(0);
    let t = Instant::now();
    let vs = votes(s);
    let people: Vec<Grants> = (0..s.participants).map(|i| grants(i, Role::Viewer)).collect();
    let generated = t.elapsed();
    let (mut c, ids) = empty_core(s);
    let t = Instant::now();
    ingest(&mut c, &ids, &people, &vs);
    let ingest_time = t.elapsed();
    let n_votes = vs.len();
    drop(vs);
    drop(people);
    let build_peak = status_kib("VmHWM:").unwrap_or(0);
    let rss_core = status_kib("VmRSS:").unwrap_or(0);
    let reset = reset_peak();
    let t = Instant::now();
    let job = c.poll_recompute(10_000).expect("votes came in");
    let snap = t.elapsed();
    let t = Instant::now();
    let report = job.clone().run();
    let run = t.elapsed();
    let recompute_peak = status_kib("VmHWM:").unwrap_or(0);
    let sm = &report.summary;
    println!(
        "ONCE {} identities x {} statements, {} votes ({:.2} % of the matrix): generated in {:.2} s; \
         ingested in {:.3} s ({:.0} votes/s, one thread); snapshot {:.1} µs; one cold recompute {:.1} ms \
         (counted {}, groups {:?}, k silhouettes {:?}, consensus {}, divisive {})",
        s.participants,
        s.statements,
        n_votes,
        100.0 * n_votes as f64 / (s.participants * s.statements) as f64,
        generated.as_secs_f64(),
        ingest_time.as_secs_f64(),
        n_votes as f64 / ingest_time.as_secs_f64(),
        snap.as_secs_f64() * 1e6,
        run.as_secs_f64() * 1e3,
        sm.counted,
        sm.groups.iter().map(|g| g.size).collect::<Vec<_>>(),
        sm.silhouettes.iter().map(|k| (k.k, (k.silhouette * 1000.0).round() / 1000.0)).collect::<Vec<_>>(),
        sm.consensus.len(),
        sm.divisive.len(),
    );
    println!(
        "MEMORY RSS before build {:.1} MB; peak (VmHWM) while generating + ingesting {:.1} MB (includes the bench's vote list and grants); \
         RSS of the built core {:.1} MB (matrix rows {:.1} MB by their own accounting); peak during snapshot + one recompute {} MB",
        rss0 as f64 / 1024.0,
        build_peak as f64 / 1024.0,
        rss_core as f64 / 1024.0,
        c.matrix().heap_bytes() as f64 / 1e6,
        if reset { format!("{:.1}", recompute_peak as f64 / 1024.0) } else { "n/a (clear_refs refused)".into() },
    );
    c.handle_groups(report, 11_000);
    (c, job)
}

fn main() {
    let s = size();
    let (mut core, job) = measure_once(&s);
    if std::env::var("CONSENSUS_BENCH_MODE").as_deref() == Ok("memory") {
        return;
    }
    let mut c = Criterion::default().configure_from_args();

    let mut g = c.benchmark_group("recompute");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("cold", |b| b.iter(|| black_box(job.clone().run())));
    core.handle_command(&grants(usize::MAX, Role::Moderator), ModeratorCommand::Recompute, 12_000).unwrap();
    let warm = core.poll_recompute(12_000).expect("forced");
    assert!(warm.previous.is_some());
    g.bench_function("warm", |b| b.iter(|| black_box(warm.clone().run())));
    g.finish();

    c.bench_function("snapshot", |b| b.iter(|| black_box(core.matrix().snapshot())));

    let vs = votes(&s);
    let people: Vec<Grants> = (0..s.participants).map(|i| grants(i, Role::Viewer)).collect();
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(vs.len() as u64));
    g.bench_function("core", |b| {
        b.iter_batched(|| empty_core(&s), |(mut c, ids)| {
            ingest(&mut c, &ids, &people, &vs);
            c
        }, BatchSize::PerIteration)
    });
    g.bench_function("naive", |b| b.iter(|| black_box(ingest_naive(&people, &vs, s.statements))));
    g.finish();
    c.final_summary();
}
