//! Statement routing: which statements to show a viewer next.
//!
//! A viewer sees only some of the statements, so which ones they see decides how much the
//! matrix learns. Pol.is draws the next comment at random with a priority weight (`conversation
//! .clj`, `priority-metric`); this follows it with a weight per active statement the viewer has
//! not voted on yet:
//!
//! ```text
//! w = ( coverage × (1 − pass) × (1 + extremity) × (1 + 2·spread) )² × (1 + 4·σ_g)²
//! coverage  = 1 + 8 · 2^(−seen / s₀),  s₀ = max(5, mean seen / 4)  — few votes yet: up to 9×
//! pass      = passes / (seen + 2)                                   — what people pass on says little
//! extremity = how far a lone agree moves a participant (Pol.is)     — separates people
//! spread    = divisiveness across groups (0..1)                     — what splits the room
//! σ_g       = √(p(1−p)/(seen_g + 3)), p the viewer's group's smoothed agree share
//!                                                                   — still uncertain for their group
//! ```
//!
//! Pol.is's newness term is `1 + 8·2^(−seen/5)`; with 100,000 viewers every statement passes 5
//! votes within a second, so the scale s₀ grows with the mean instead. The draw is weighted
//! sampling without replacement (Efraimidis–Spirakis keys), seeded by the activity's seed, the
//! viewer's row and how many votes the viewer has: deterministic for a seed, different for each
//! viewer (so votes spread over the statements) and after each vote. A statement the moderator
//! features (brought to the floor) comes first.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

use super::groups::GroupReport;
use super::matrix;
use super::statements::{StatementState, Statements};
use super::stats::smoothed;

/// Most statements handed out per request.
pub const MAX_ROUTED: usize = 10;

/// Weights, rebuilt at most every `route_refresh_ms` (votes change them slowly) and whenever
/// statements or groups change.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteTable {
    /// By statement index; 0 for withdrawn statements.
    base: Vec<f64>,
    /// By group index × statement index: (1 + 4σ_g)².
    group: Vec<f64>,
    n: usize,
}

impl RouteTable {
    pub fn build(statements: &Statements, report: Option<&GroupReport>) -> RouteTable {
        let all = statements.all();
        let n = all.len();
        let active: Vec<bool> = all.iter().map(|s| s.state == StatementState::Active).collect();
        let n_active = active.iter().filter(|a| **a).count().max(1);
        let mean_seen = all
            .iter()
            .zip(&active)
            .filter(|(_, a)| **a)
            .map(|(s, _)| s.counts().seen() as f64)
            .sum::<f64>()
            / n_active as f64;
        let s0 = (mean_seen / 4.0).max(5.0);
        let mut scores_by_index = vec![None; n];
        if let Some(r) = report {
            for s in &r.summary.scores {
                if s.statement.index() < n {
                    scores_by_index[s.statement.index()] = Some(s);
                }
            }
        }
        let base = all
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if !active[i] {
                    return 0.0;
                }
                let c = s.counts();
                let coverage = 1.0 + 8.0 * (-(c.seen() as f64) / s0).exp2();
                // No prior toward passing: a statement nobody saw is not presumed unclear.
                let pass = c.pass as f64 / (c.seen() as f64 + 2.0);
                let (extremity, spread) =
                    scores_by_index[i].map_or((0.0, 0.0), |sc| (sc.extremity, sc.spread.unwrap_or(0.0)));
                (coverage * (1.0 - pass) * (1.0 + extremity) * (1.0 + 2.0 * spread)).powi(2)
            })
            .collect();
        let k = report.map_or(0, |r| r.summary.groups.len());
        let mut group = vec![1.0; k * n];
        if let Some(r) = report {
            for g in 0..k {
                for i in 0..n {
                    let c = r.group_counts(g, i);
                    let p = smoothed(c.agree, c.seen());
                    let sd = (p * (1.0 - p) / (c.seen() as f64 + 3.0)).sqrt();
                    group[g * n + i] = (1.0 + 4.0 * sd).powi(2);
                }
            }
        }
        RouteTable { base, group, n }
    }

    /// Up to `n` statement indices for a viewer who voted `voted` (packed, sorted), in
    /// `group`, with `featured` first when the viewer has not voted on it.
    pub fn pick(&self, voted: &[u16], group: Option<usize>, featured: Option<usize>, n: usize, seed: u64) -> Vec<usize> {
        let n = n.min(MAX_ROUTED);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n);
        let has_voted = |i: usize| voted.binary_search_by_key(&i, |e| matrix::col(*e)).is_ok();
        if let Some(f) = featured
            && n > 0
            && f < self.n
            && self.base[f] > 0.0
            && !has_voted(f)
        {
            out.push(f);
        }
        // Keys ln(u)/w: the n largest are a weighted sample without replacement.
        let mut keys: Vec<(f64, usize)> = Vec::new();
        let mut v = voted.iter().map(|e| matrix::col(*e)).peekable();
        for i in 0..self.n {
            while v.peek().is_some_and(|c| *c < i) {
                v.next();
            }
            let voted_i = v.peek() == Some(&i);
            let mut w = self.base[i];
            if let Some(g) = group
                && g * self.n + i < self.group.len()
            {
                w *= self.group[g * self.n + i];
            }
            let u = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            if voted_i || w <= 0.0 || Some(i) == featured {
                continue;
            }
            keys.push((u.ln() / w, i));
        }
        let take = n - out.len();
        if keys.len() > take && take > 0 {
            keys.select_nth_unstable_by(take - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            keys.truncate(take);
        }
        keys.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.extend(keys.into_iter().take(take).map(|(_, i)| i));
        out
    }
}

/// SplitMix64's finaliser: mixes a seed with a row and a count into a per-request seed.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
