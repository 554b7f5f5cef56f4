//! The per-identity comment rate limit as a pure state machine: GCRA (the generic cell rate
//! algorithm, the same semantics as a token bucket and as `governor`'s quotas) with the time
//! as an argument.
//!
//! A [`Rate`] allows `burst` comments at once and then one every `interval_ms`. Per identity
//! the limiter keeps one number, the *theoretical arrival time* (TAT) of the next comment; a
//! comment at `now` conforms if `max(TAT, now) - now <= interval * (burst - 1)`, and then moves
//! the TAT on by one interval. An identity whose TAT has passed is the same as one never seen,
//! so those are swept away once a minute and the memory follows the identities posting now,
//! not everyone who ever posted.
//!
//! Written here rather than taken from `governor` because the comment policy is a sans-I/O
//! state machine that gets its time as an argument (tests drive it without a clock), and
//! because its state belongs to the activity's driver, not to a process-wide limiter.

use std::collections::HashMap;
use std::hash::Hash;

use super::ids::ParticipantId;

/// How often an identity may post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// One comment per this many milliseconds, sustained.
    pub interval_ms: u64,
    /// Comments allowed at once (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `n` comments per minute, with bursts of `min(n, max(n / 60, 5))` — the hub's rule since
    /// its first version (a few at once, never more than the minute's allowance).
    pub fn per_minute(n: u32) -> Rate {
        let n = n.max(1);
        Rate {
            interval_ms: (60_000 / u64::from(n)).max(1),
            burst: n.min((n / 60).max(5)),
        }
    }

    fn tolerance_ms(self) -> u64 {
        self.interval_ms * u64::from(self.burst.max(1) - 1)
    }
}

/// How long apart sweeps of finished identities are.
const SWEEP_MS: u64 = 60_000;

/// A rate limit per key: per identity for the comments of one activity, per address block for
/// anonymous votes (`super::votes`). Default: no limit.
#[derive(Clone, Debug)]
pub struct RateLimiter<K = ParticipantId> {
    rate: Option<Rate>,
    tat: HashMap<K, u64>,
    last_sweep_ms: u64,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        RateLimiter { rate: None, tat: HashMap::new(), last_sweep_ms: 0 }
    }
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// Sets (or, with `None`, lifts) the limit; what identities already used is kept.
    pub fn set_rate(&mut self, rate: Option<Rate>) {
        self.rate = rate;
    }

    /// The limit in force.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// A comment of `who` at `now_ms`: `Ok` (and counted) if it conforms, else `Err(ms)` to
    /// wait before the next one would.
    pub fn handle_post(&mut self, who: &K, now_ms: u64) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        if now_ms.saturating_sub(self.last_sweep_ms) >= SWEEP_MS {
            self.tat.retain(|_, t| *t > now_ms);
            self.last_sweep_ms = now_ms;
        }
        let tat = self.tat.get(who).copied().unwrap_or(0).max(now_ms);
        let ahead = tat - now_ms;
        if ahead > rate.tolerance_ms() {
            return Err(ahead - rate.tolerance_ms());
        }
        self.tat.insert(who.clone(), tat + rate.interval_ms);
        Ok(())
    }

    /// Identities the limiter remembers now (those whose allowance is not back to full).
    pub fn tracked(&self) -> usize {
        self.tat.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn who(s: &str) -> ParticipantId {
        ParticipantId::new(s)
    }

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let mut r = RateLimiter::default();
        r.set_rate(Some(Rate::per_minute(3)));
        assert_eq!(Rate::per_minute(3), Rate { interval_ms: 20_000, burst: 3 });
        let v = who("v");
        for _ in 0..3 {
            assert_eq!(r.handle_post(&v, 0), Ok(()));
        }
        assert_eq!(r.handle_post(&v, 0), Err(20_000));
        assert_eq!(r.handle_post(&v, 19_999), Err(1));
        assert_eq!(r.handle_post(&v, 20_000), Ok(()));
        assert_eq!(r.handle_post(&v, 20_000), Err(20_000));
        // Another identity has its own allowance.
        assert_eq!(r.handle_post(&who("w"), 20_000), Ok(()));
    }

    #[test]
    fn without_a_rate_everything_passes() {
        let mut r = RateLimiter::default();
        for t in 0..1000 {
            assert_eq!(r.handle_post(&who("v"), t), Ok(()));
        }
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn identities_whose_allowance_is_back_are_forgotten() {
        let mut r = RateLimiter::default();
        r.set_rate(Some(Rate::per_minute(60)));
        for i in 0..1000 {
            r.handle_post(&who(&format!("v{i}")), 0).unwrap();
        }
        assert_eq!(r.tracked(), 1000);
        r.handle_post(&who("late"), 120_000).unwrap();
        assert_eq!(r.tracked(), 1, "only the identity that just posted is remembered");
    }

    proptest! {
        /// In any run of posts, what passes never exceeds the burst plus one per interval
        /// elapsed, and a post that is refused would indeed have exceeded it.
        #[test]
        fn passes_stay_within_burst_plus_elapsed_intervals(
            per_minute in 1u32..600,
            gaps in proptest::collection::vec(0u64..5_000, 1..200),
        ) {
            let rate = Rate::per_minute(per_minute);
            let mut r = RateLimiter::default();
            r.set_rate(Some(rate));
            let v = who("v");
            let (mut now, mut passed) = (0u64, 0u64);
            for gap in gaps {
                now += gap;
                let allowance = u64::from(rate.burst) + now / rate.interval_ms;
                match r.handle_post(&v, now) {
                    Ok(()) => {
                        passed += 1;
                        prop_assert!(passed <= allowance, "{passed} passed by {now} ms, allowance {allowance}");
                    }
                    Err(wait) => {
                        prop_assert!(wait > 0 && wait <= rate.interval_ms);
                        prop_assert!(passed + 1 > u64::from(rate.burst), "refused within the first burst");
                    }
                }
            }
        }
    }
}
