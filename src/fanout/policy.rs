//! The pure policies of the fan-out core: public-view thinning, slow-consumer lag tracking and
//! the adaptive flush interval. Plain structs; time comes in as an argument.

use std::time::{Duration, Instant};

use shangliang_signaling::{ItemBody, Role};

/// Whether an item may be thinned out of the public view: a comment written by a viewer.
/// Comments by members, guests and moderators, and every non-comment item (e.g. `hide`), are
/// never thinned.
pub(crate) fn is_thinnable(body: &ItemBody) -> bool {
    matches!(body, ItemBody::Comment { author, .. } if author.role == Role::Viewer)
}

/// Public-view thinning of one topic: per one-second window of the items' `ts` (accept time,
/// ms since the Unix epoch), at most `max_per_sec` thinnable public items reach the public view.
///
/// The decision is made once, at publish, and stored with the item, so live batches, catch-up
/// frames and snapshots agree. Using `ts` rather than a local clock makes the decision the same
/// on every node that receives the same ordered items.
#[derive(Debug)]
pub(crate) struct Thinning {
    max_per_sec: u32,
    window: u64,
    kept: u32,
}

impl Thinning {
    /// `max_per_sec == 0` turns thinning off.
    pub(crate) fn new(max_per_sec: u32) -> Self {
        Thinning { max_per_sec, window: u64::MAX, kept: 0 }
    }

    /// Handles one public item; returns `true` if it is thinned out of the public view.
    pub(crate) fn handle_item(&mut self, ts_ms: u64, thinnable: bool) -> bool {
        if self.max_per_sec == 0 || !thinnable {
            return false;
        }
        let window = ts_ms / 1000;
        if window != self.window {
            self.window = window;
            self.kept = 0;
        }
        if self.kept < self.max_per_sec {
            self.kept += 1;
            false
        } else {
            true
        }
    }
}

/// Slow-consumer tracking of one connection. A connection is *lagging* from the first frame it
/// loses (its queue was full) until a frame is queued while at least half of its queue is free
/// again. A connection that is still lagging `close_after` after the drop that started the lag,
/// and loses another frame, is to be closed.
#[derive(Debug, Default)]
pub(crate) struct LagTracker {
    since: Option<Instant>,
}

impl LagTracker {
    /// A frame was dropped because the queue was full. Returns `true` if the connection must
    /// now be closed.
    pub(crate) fn handle_drop(&mut self, now: Instant, close_after: Duration) -> bool {
        match self.since {
            None => {
                self.since = Some(now);
                close_after.is_zero()
            }
            Some(since) => now.saturating_duration_since(since) >= close_after,
        }
    }

    /// A frame was queued; `free` slots of `capacity` remain.
    pub(crate) fn handle_sent(&mut self, free: usize, capacity: usize) {
        if self.since.is_some() && free * 2 >= capacity {
            self.since = None;
        }
    }

    /// Whether the connection is lagging now.
    #[cfg(test)]
    pub(crate) fn is_lagging(&self) -> bool {
        self.since.is_some()
    }
}

/// The adaptive flush interval. After each flush, with `took` the time from the start of the
/// flush until every shard had handed the frames to the queues:
/// - if `took` is more than half the interval, or more than 20% of the flush's deliveries found
///   the connection's queue still holding an earlier frame (consumers are behind), the interval
///   grows to `max(1.5 × interval, 2 × took)`, capped at `max`;
/// - if `took` is less than an eighth of the interval and under 2% of deliveries were
///   backlogged, it shrinks to `0.75 × interval`, down to `min`;
/// - otherwise it stays.
///
/// Longer intervals mean fewer, larger frames: delivery cost grows with subscribers × flushes,
/// not with items, so a hot hub trades a little latency for throughput.
/// Above this share of backlogged deliveries the interval grows: consumers (session tasks,
/// sockets, clients) are not keeping up with the flush rate, and fewer, larger frames cost them
/// less per comment.
const BACKLOG_GROW: f64 = 0.2;
/// Below this share (and with a quick flush) the interval shrinks back toward the minimum.
const BACKLOG_SHRINK: f64 = 0.02;

#[derive(Debug)]
pub(crate) struct AdaptiveInterval {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl AdaptiveInterval {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        AdaptiveInterval { min, max, current: min }
    }

    pub(crate) fn current(&self) -> Duration {
        self.current
    }

    /// Handles the duration of one flush and the share of its deliveries that found the
    /// connection's queue still holding an earlier frame; returns the interval until the next.
    pub(crate) fn handle_flush(&mut self, took: Duration, backlog_share: f64) -> Duration {
        if took * 2 > self.current || backlog_share > BACKLOG_GROW {
            self.current = (self.current * 3 / 2).max(took * 2).min(self.max);
        } else if took * 8 < self.current && backlog_share < BACKLOG_SHRINK {
            self.current = (self.current * 3 / 4).max(self.min);
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_at_most_the_limit_per_second_window() {
        let mut t = Thinning::new(2);
        let thinned: Vec<bool> = [1000, 1100, 1200, 1999, 2000, 2001, 2002]
            .iter()
            .map(|&ts| t.handle_item(ts, true))
            .collect();
        assert_eq!(thinned, [false, false, true, true, false, false, true]);
    }

    #[test]
    fn thinning_never_touches_unthinnable_items_nor_counts_them() {
        let mut t = Thinning::new(1);
        assert!(!t.handle_item(0, false));
        assert!(!t.handle_item(0, true));
        assert!(!t.handle_item(0, false), "member comment or hide is never thinned");
        assert!(t.handle_item(0, true));
    }

    #[test]
    fn thinning_off_when_limit_is_zero() {
        let mut t = Thinning::new(0);
        assert!((0..10_000).all(|_| !t.handle_item(5, true)));
    }

    #[test]
    fn lagging_consumer_is_closed_after_sustained_drops() {
        let t0 = Instant::now();
        let after = Duration::from_secs(5);
        let mut lag = LagTracker::default();
        assert!(!lag.handle_drop(t0, after));
        assert!(!lag.handle_drop(t0 + Duration::from_secs(4), after));
        // A frame queued into a still mostly full queue does not end the lag.
        lag.handle_sent(1, 64);
        assert!(lag.handle_drop(t0 + Duration::from_secs(5), after));
    }

    #[test]
    fn consumer_that_catches_up_is_forgiven() {
        let t0 = Instant::now();
        let after = Duration::from_secs(5);
        let mut lag = LagTracker::default();
        assert!(!lag.handle_drop(t0, after));
        lag.handle_sent(40, 64);
        assert!(!lag.is_lagging());
        assert!(!lag.handle_drop(t0 + Duration::from_secs(6), after), "a new lag starts");
        assert!(lag.is_lagging());
    }

    #[test]
    fn flush_interval_grows_under_load_and_shrinks_back_when_light() {
        let ms = Duration::from_millis;
        let mut a = AdaptiveInterval::new(ms(20), ms(200));
        assert_eq!(a.handle_flush(ms(5), 0.0), ms(20), "moderate load keeps the interval");
        assert_eq!(a.handle_flush(ms(15), 0.0), ms(30));
        assert_eq!(a.handle_flush(ms(40), 0.0), ms(80));
        assert_eq!(a.handle_flush(ms(150), 0.0), ms(200), "capped at the maximum");
        let mut last = a.current();
        for _ in 0..20 {
            let next = a.handle_flush(ms(1), 0.0);
            assert!(next <= last);
            last = next;
        }
        assert_eq!(last, ms(20), "back at the minimum when light");
    }

    #[test]
    fn flush_interval_grows_when_consumers_fall_behind_even_if_flushes_are_quick() {
        let ms = Duration::from_millis;
        let mut a = AdaptiveInterval::new(ms(20), ms(200));
        assert_eq!(a.handle_flush(ms(1), 0.5), ms(30), "half the queues still held a frame");
        assert_eq!(a.handle_flush(ms(1), 0.5), ms(45));
        assert_eq!(a.handle_flush(ms(1), 0.1), ms(45), "some backlog: hold");
        assert_eq!(a.handle_flush(ms(1), 0.0), ms(33) + Duration::from_micros(750), "caught up: shrink");
    }
}
