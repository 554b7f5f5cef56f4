//! A small reordering buffer for one RTP stream: packets go in as they arrive, come out in
//! sequence order, and a hole that does not fill in time comes out as a [`Released::Lost`].
//!
//! ```text
//! reorder.handle_packet(seq, packet, now_us);     // any order, duplicates and late ones dropped
//! while let Some(r) = reorder.poll(now_us) { Packet(p) | Lost(n) }
//! reorder.poll_timeout()                           // when a waiting hole is given up
//! ```
//!
//! Why so small a wait: the SFU does not forward retransmissions (RTX) to its taps, so a hole is
//! either reordering on the way in (microseconds on a LAN, a few milliseconds on the internet)
//! or a loss that never heals. Waiting longer only delays the programme. Pure: time is an
//! argument.

use std::collections::BTreeMap;

/// How long a hole may wait for its packet before it is declared lost.
pub const MAX_WAIT_US: u64 = 50_000;
/// How many packets may wait behind a hole before it is declared lost.
pub const MAX_PACKETS: usize = 128;

/// What comes out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released<T> {
    /// The next packet in sequence.
    Packet(T),
    /// This many packets before the next one never came.
    Lost(u64),
}

/// The reordering buffer of one stream.
#[derive(Debug, Clone)]
pub struct Reorder<T> {
    /// Extended (64-bit, unwrapped) sequence number expected next; `None` before the first packet.
    next: Option<u64>,
    /// The highest extended sequence number seen, for unwrapping.
    highest: u64,
    /// Waiting packets by extended sequence number, with their arrival time.
    waiting: BTreeMap<u64, (T, u64)>,
    /// Late or duplicate packets dropped so far.
    dropped: u64,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Reorder<T> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self { next: None, highest: 0, waiting: BTreeMap::new(), dropped: 0 }
    }

    /// The 64-bit sequence number of `seq`, unwrapped around the highest one seen.
    fn extend(&self, seq: u16) -> u64 {
        if self.next.is_none() {
            // Start well above zero so that a packet from "before" the first one can be told apart.
            return (1 << 32) | seq as u64;
        }
        let low = self.highest as u16;
        let delta = seq.wrapping_sub(low) as i16 as i64;
        (self.highest as i64 + delta).max(0) as u64
    }

    /// One arriving packet with its RTP sequence number.
    pub fn handle_packet(&mut self, seq: u16, packet: T, now_us: u64) {
        let ext = self.extend(seq);
        if self.next.is_none() {
            self.next = Some(ext);
            self.highest = ext;
        }
        let next = self.next.unwrap_or(ext);
        if ext < next || self.waiting.contains_key(&ext) {
            self.dropped += 1;
            return;
        }
        if ext > self.highest {
            self.highest = ext;
        }
        self.waiting.insert(ext, (packet, now_us));
    }

    /// The next packet or loss to hand on, if any is due at `now_us`.
    pub fn poll(&mut self, now_us: u64) -> Option<Released<T>> {
        let next = self.next?;
        let (&first, &(_, arrived)) = self.waiting.iter().next()?;
        if first == next {
            let (p, _) = self.waiting.remove(&first).expect("present");
            self.next = Some(next + 1);
            return Some(Released::Packet(p));
        }
        // A hole before `first`: give it up once it waited long enough or too much is behind it.
        if self.waiting.len() > MAX_PACKETS || now_us.saturating_sub(arrived) >= MAX_WAIT_US {
            self.next = Some(first);
            return Some(Released::Lost(first - next));
        }
        None
    }

    /// When [`poll`](Self::poll) will give up the current hole (if one is waiting).
    pub fn poll_timeout(&self) -> Option<u64> {
        let next = self.next?;
        let (&first, &(_, arrived)) = self.waiting.iter().next()?;
        (first != next).then_some(arrived + MAX_WAIT_US)
    }

    /// Late or duplicate packets dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(r: &mut Reorder<u16>, now: u64) -> Vec<Released<u16>> {
        std::iter::from_fn(|| r.poll(now)).collect()
    }

    #[test]
    fn in_order_packets_pass_straight_through_across_the_wrap() {
        let mut r = Reorder::new();
        let mut out = Vec::new();
        for s in [65534u16, 65535, 0, 1] {
            r.handle_packet(s, s, 0);
            out.extend(drain(&mut r, 0));
        }
        assert_eq!(out, [65534, 65535, 0, 1].map(Released::Packet));
    }

    #[test]
    fn a_swapped_pair_comes_out_in_order() {
        let mut r = Reorder::new();
        r.handle_packet(10, 10, 0);
        r.handle_packet(12, 12, 1);
        r.handle_packet(11, 11, 2);
        assert_eq!(drain(&mut r, 3), [10, 11, 12].map(Released::Packet));
    }

    #[test]
    fn a_hole_that_stays_open_is_reported_lost_after_the_wait() {
        let mut r = Reorder::new();
        r.handle_packet(1, 1, 0);
        r.handle_packet(4, 4, 1_000);
        assert_eq!(drain(&mut r, 1_000), [Released::Packet(1)]);
        assert_eq!(r.poll_timeout(), Some(1_000 + MAX_WAIT_US));
        assert_eq!(drain(&mut r, 1_000 + MAX_WAIT_US), [Released::Lost(2), Released::Packet(4)]);
        // The missing ones arriving afterwards are late: dropped, not replayed.
        r.handle_packet(2, 2, 60_000);
        assert_eq!(drain(&mut r, 60_000), []);
        assert_eq!(r.dropped(), 1);
    }

    proptest! {
        /// Whatever the arrival order and losses, output is strictly increasing, each packet at
        /// most once, and packets plus reported losses account for the whole range.
        #[test]
        fn output_is_in_order_and_accounts_for_every_sequence_number(
            start in any::<u16>(),
            len in 1usize..300,
            swaps in proptest::collection::vec((0usize..300, 0usize..4), 0..60),
            lost in proptest::collection::btree_set(1usize..300, 0..40),
        ) {
            let mut order: Vec<usize> = (0..len).filter(|i| !lost.contains(i)).collect();
            for (i, d) in swaps {
                if i + d < order.len() { order.swap(i, i + d); }
            }
            let mut r = Reorder::new();
            let mut got: Vec<u64> = Vec::new();
            let mut lost_count = 0u64;
            let mut now = 0;
            for i in order {
                now += 1_000;
                r.handle_packet(start.wrapping_add(i as u16), i as u64, now);
                while let Some(x) = r.poll(now) {
                    match x { Released::Packet(p) => got.push(p), Released::Lost(n) => lost_count += n }
                }
            }
            now += MAX_WAIT_US * 2;
            while let Some(x) = r.poll(now) {
                match x { Released::Packet(p) => got.push(p), Released::Lost(n) => lost_count += n }
            }
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
            if let (Some(first), Some(last)) = (got.first(), got.last()) {
                // The first packet out is the first that arrived; from there to the last one out,
                // every sequence number is either a packet or counted in a loss.
                prop_assert_eq!(got.len() as u64 + lost_count, last - first + 1);
            }
        }
    }
}
