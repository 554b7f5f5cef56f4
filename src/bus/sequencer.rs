//! Puts one topic's items back in seq order on a node, and says when a gap must be read from
//! the record. Sans-I/O: items and the record's head come in, ready items and fetch requests
//! go out; time is an argument.
//!
//! ```text
//! handle_item(item)      -> items ready to publish, in order (duplicates and old ones dropped)
//! handle_head(head, now) -> Some(from..=to) to read from the record, once a gap has lasted
//!                           GAP_WAIT (NATS lost or reordered something, or a node died
//!                           between its commit and its NATS publish)
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shangliang_signaling::{Item, Seq};

/// How long a gap may last before it is healed from the record: long enough for items in
/// flight on NATS (publishers on different nodes race), short enough that viewers barely notice.
pub const GAP_WAIT: Duration = Duration::from_millis(300);
/// Most items read from the record in one fetch.
pub const MAX_FETCH: u64 = 1_000;

/// Reorder buffer of one topic.
#[derive(Debug)]
pub struct Sequencer {
    last: Seq,
    pending: BTreeMap<u64, (Item, bool)>,
    /// Since when the topic has been behind what is known to exist.
    behind_since: Option<Instant>,
}

impl Sequencer {
    /// A topic whose items up to `last` are published.
    pub fn new(last: Seq) -> Self {
        Sequencer {
            last,
            pending: BTreeMap::new(),
            behind_since: None,
        }
    }

    /// The last seq handed out.
    pub fn last(&self) -> Seq {
        self.last
    }

    /// Takes an item (from NATS, from this node's own commits or from the record); appends to
    /// `ready` every item that can now be published, in seq order.
    pub fn handle_item(&mut self, item: Item, public: bool, ready: &mut Vec<(Item, bool)>) {
        if item.seq <= self.last {
            return;
        }
        self.pending.insert(item.seq.0, (item, public));
        let before = self.last;
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.last.0 + 1 {
                break;
            }
            let (item, public) = entry.remove();
            self.last = item.seq;
            ready.push((item, public));
        }
        if self.last != before {
            self.behind_since = None;
        }
    }

    /// Told the record's head (or `None` when unknown), says which range to read from the
    /// record, if the topic has been behind for [`GAP_WAIT`].
    pub fn handle_head(&mut self, head: Option<Seq>, now: Instant) -> Option<(Seq, Seq)> {
        let known = self
            .pending
            .last_key_value()
            .map(|(k, _)| *k)
            .max(head.map(|h| h.0))
            .unwrap_or(0);
        if known <= self.last.0 {
            self.behind_since = None;
            return None;
        }
        let since = *self.behind_since.get_or_insert(now);
        if now.duration_since(since) < GAP_WAIT {
            return None;
        }
        // Ask again only after another wait if this fetch does not help.
        self.behind_since = Some(now);
        let from = self.last.0 + 1;
        Some((Seq(from), Seq(known.min(from + MAX_FETCH - 1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shangliang_signaling::ItemBody;

    fn item(seq: u64) -> Item {
        Item {
            seq: Seq(seq),
            ts: 0,
            body: ItemBody::Hide { target: Seq(0) },
        }
    }

    fn seqs(v: &[(Item, bool)]) -> Vec<u64> {
        v.iter().map(|(i, _)| i.seq.0).collect()
    }

    #[test]
    fn items_out_of_order_come_out_in_order_once() {
        let mut s = Sequencer::new(Seq(0));
        let mut out = Vec::new();
        s.handle_item(item(2), true, &mut out);
        s.handle_item(item(3), true, &mut out);
        assert!(out.is_empty());
        s.handle_item(item(1), true, &mut out);
        s.handle_item(item(2), true, &mut out);
        assert_eq!(seqs(&out), [1, 2, 3]);
        assert_eq!(s.last(), Seq(3));
    }

    #[test]
    fn a_gap_is_fetched_only_after_it_lasted() {
        let t0 = Instant::now();
        let mut s = Sequencer::new(Seq(5));
        let mut out = Vec::new();
        s.handle_item(item(8), true, &mut out);
        assert_eq!(s.handle_head(None, t0), None);
        assert_eq!(s.handle_head(Some(Seq(9)), t0 + GAP_WAIT / 2), None);
        assert_eq!(
            s.handle_head(Some(Seq(9)), t0 + GAP_WAIT),
            Some((Seq(6), Seq(9)))
        );
        // Not again at once.
        assert_eq!(s.handle_head(Some(Seq(9)), t0 + GAP_WAIT), None);
        s.handle_item(item(6), true, &mut out);
        s.handle_item(item(7), true, &mut out);
        s.handle_item(item(9), true, &mut out);
        assert_eq!(seqs(&out), [6, 7, 8, 9]);
        assert_eq!(s.handle_head(Some(Seq(9)), t0 + GAP_WAIT * 3), None);
    }

    #[test]
    fn a_lost_last_item_is_found_through_the_head() {
        let t0 = Instant::now();
        let mut s = Sequencer::new(Seq(1));
        assert_eq!(s.handle_head(Some(Seq(2)), t0), None);
        assert_eq!(
            s.handle_head(Some(Seq(2)), t0 + GAP_WAIT),
            Some((Seq(2), Seq(2)))
        );
    }

    #[test]
    fn fetches_are_bounded() {
        let t0 = Instant::now();
        let mut s = Sequencer::new(Seq(0));
        s.handle_head(Some(Seq(50_000)), t0);
        assert_eq!(
            s.handle_head(Some(Seq(50_000)), t0 + GAP_WAIT),
            Some((Seq(1), Seq(MAX_FETCH)))
        );
    }
}
