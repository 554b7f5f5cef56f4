//! **Pure** admission of unauthenticated offers: a per-address rate limit and a refusal log
//! that writes one line per kind per interval. No I/O, no clock: the driver passes `now`.
//!
//! ```text
//! WHEP offer (from: the HTTP client's address)
//!   AddressLimiter::check(from, now)   GCRA per address (an IPv6 /64 is one address); a bounded
//!                                      table: when full, addresses whose allowance is back to
//!                                      full are forgotten first, else the offer is refused
//!   RateLimiter::check(room, now)      GCRA per activity (room), whatever the addresses: a
//!                                      flood spread over many addresses (a botnet, IPv6
//!                                      prefixes) cannot take one livestream's capacity
//!   connected < max_viewers            (the driver)      else NodeFull
//!   pending   < max_pending            (the driver)      else TooManyPending
//!   ICE + DTLS within pending_timeout  (the driver's deadline heap), else released quietly
//! every refusal: RefusalLog::note(kind, now) → Some(suppressed) at most once per interval
//! ```
//!
//! The limiter is written here rather than taken from `governor` (which the hub uses at its
//! HTTP edge) because its state belongs to the driver thread and its time is the driver's `now`
//! (the same reasoning as the hub's comment rate in `src/consult/rate.rs`): the tests below
//! step time by hand instead of sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The key of an address: itself for IPv4, its /64 for IPv6 (one customer's prefix).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A rate limit per key (GCRA: the same semantics as a token bucket of `burst` tokens refilled
/// at `per_minute`), keeping at most `max_keys` keys: the per-activity limit keys it by room.
#[derive(Debug)]
pub struct RateLimiter<K> {
    /// Time between two admissions at the sustained rate.
    interval: Duration,
    /// How far ahead of `now` the theoretical arrival time may run (burst − 1 intervals).
    tolerance: Duration,
    max_keys: usize,
    /// Theoretical arrival time of the next admission, per key.
    tat: HashMap<K, Instant>,
}

impl<K: std::hash::Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` admissions per key sustained, `burst` at once; `per_minute == 0` disables
    /// the limit.
    pub fn new(per_minute: u32, burst: u32, max_keys: usize) -> Self {
        let interval = if per_minute == 0 { Duration::ZERO } else { Duration::from_secs(60) / per_minute };
        Self { interval, tolerance: interval * burst.max(1).saturating_sub(1), max_keys: max_keys.max(1), tat: HashMap::new() }
    }

    /// Whether `key` may be admitted at `now` (and counts it if so).
    pub fn check(&mut self, key: &K, now: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        if !self.tat.contains_key(key) && self.tat.len() >= self.max_keys {
            self.prune(now);
            if self.tat.len() >= self.max_keys {
                // Every remembered key is still limited: a new one waits for room rather
                // than evicting one that is being limited.
                return false;
            }
        }
        let tat = self.tat.get(key).copied().unwrap_or(now).max(now);
        if tat > now + self.tolerance {
            return false;
        }
        self.tat.insert(key.clone(), tat + self.interval);
        true
    }

    /// Forget the keys whose allowance is back to full.
    pub fn prune(&mut self, now: Instant) {
        self.tat.retain(|_, t| *t > now);
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.tat.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.tat.is_empty()
    }
}

/// A per-address rate limit ([`RateLimiter`] keyed by [`address_key`]: an IPv6 /64 is one
/// address).
#[derive(Debug)]
pub struct AddressLimiter(RateLimiter<IpAddr>);

impl AddressLimiter {
    /// `per_minute` offers per address sustained, `burst` at once; `per_minute == 0` disables
    /// the limit.
    pub fn new(per_minute: u32, burst: u32, max_addresses: usize) -> Self {
        Self(RateLimiter::new(per_minute, burst, max_addresses))
    }

    /// Whether an offer from `ip` is admitted at `now` (and counts it if so).
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.0.check(&address_key(ip), now)
    }

    /// Forget the addresses whose allowance is back to full.
    pub fn prune(&mut self, now: Instant) {
        self.0.prune(now);
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One log line per refusal kind per interval: a flood of refused or abandoned offers writes a
/// line every `interval`, saying how many went unlogged since the last (they are all counted
/// in the node's stats and the hub's metrics).
#[derive(Debug)]
pub struct RefusalLog {
    interval: Duration,
    kinds: HashMap<&'static str, (Instant, u64)>,
}

impl RefusalLog {
    /// A log of at most one line per kind per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, kinds: HashMap::new() }
    }

    /// A refusal of `kind` at `now`: `Some(n)` if a line should be written now (`n` refusals of
    /// this kind went unlogged before it), `None` to stay quiet.
    pub fn note(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.kinds.get_mut(kind) {
            Some((last, suppressed)) if now.saturating_duration_since(*last) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                self.kinds.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn a_burst_is_admitted_then_the_sustained_rate() {
        let mut l = AddressLimiter::new(60, 3, 100);
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.check(ip(1), t0)), "the burst");
        assert!(!l.check(ip(1), t0), "past the burst");
        assert!(l.check(ip(2), t0), "another address is not affected");
        assert!(!l.check(ip(1), t0 + Duration::from_millis(900)));
        assert!(l.check(ip(1), t0 + Duration::from_secs(1)), "one a second at 60 a minute");
        assert!(!l.check(ip(1), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let mut l = AddressLimiter::new(60, 1, 100);
        let t0 = Instant::now();
        assert!(l.check("2001:db8::1".parse().unwrap(), t0));
        assert!(!l.check("2001:db8::ffff:2".parse().unwrap(), t0), "same /64");
        assert!(l.check("2001:db8:0:1::1".parse().unwrap(), t0), "another /64");
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), ip(1), "a mapped IPv4 is the IPv4");
    }

    #[test]
    fn the_table_is_bounded_and_idle_addresses_make_room() {
        let mut l = AddressLimiter::new(60, 1, 2);
        let t0 = Instant::now();
        assert!(l.check(ip(1), t0) && l.check(ip(2), t0));
        assert!(!l.check(ip(3), t0), "full of limited addresses: a new one waits");
        assert!(l.check(ip(3), t0 + Duration::from_secs(1)), "the others' allowance is back: forgotten");
        assert!(l.len() <= 2);
    }

    #[test]
    fn zero_disables_the_limit() {
        let mut l = AddressLimiter::new(0, 0, 1);
        let t0 = Instant::now();
        assert!((0..1000).all(|i| l.check(ip((i % 250) as u8), t0)));
        assert!(l.is_empty());
    }

    #[test]
    fn refusals_are_logged_once_per_kind_per_interval_with_the_count_in_between() {
        let mut log = RefusalLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.note("rate_limited", t0), Some(0));
        for i in 1..=99 {
            assert_eq!(log.note("rate_limited", t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(log.note("pending_full", t0), Some(0), "another kind has its own line");
        assert_eq!(log.note("rate_limited", t0 + Duration::from_secs(10)), Some(99));
        assert_eq!(log.note("rate_limited", t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn an_activity_limit_holds_whatever_the_addresses() {
        let mut l: RateLimiter<String> = RateLimiter::new(60, 2, 10);
        let t0 = Instant::now();
        let stage = "stage".to_owned();
        assert!(l.check(&stage, t0) && l.check(&stage, t0), "the burst");
        assert!(!l.check(&stage, t0), "past the burst, from any address");
        assert!(l.check(&"other".to_owned(), t0), "another activity is not affected");
        assert!(l.check(&stage, t0 + Duration::from_secs(1)), "then one a second");
    }

    proptest! {
        /// Over any window, one address is admitted at most `burst + window / interval` times,
        /// and the table never exceeds its bound.
        #[test]
        fn no_address_exceeds_its_allowance(steps in proptest::collection::vec((0u8..6, 0u64..400), 1..300), burst in 1u32..5) {
            let mut l = AddressLimiter::new(120, burst, 4); // one per 500 ms
            let t0 = Instant::now();
            let mut now = t0;
            let mut admitted: HashMap<u8, u64> = HashMap::new();
            for (who, dt) in steps {
                now += Duration::from_millis(dt);
                if l.check(ip(who), now) {
                    *admitted.entry(who).or_default() += 1;
                }
                prop_assert!(l.len() <= 4);
            }
            let window = now.duration_since(t0).as_millis() as u64;
            for (_, n) in admitted {
                prop_assert!(n <= u64::from(burst) + window / 500 + 1, "{n} admitted in {window} ms");
            }
        }
    }
}
