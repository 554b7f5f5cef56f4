//! The history ring of one topic: the latest items, each encoded once per form.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;
use shangliang_signaling::{ActivityId, Epoch, Form, Item, Seq, encode_batch, encode_item};

/// Which view a subscriber has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// Everything public and not thinned.
    Public,
    /// Everything (moderators): held items included, never thinned.
    Full,
}

/// A (view, form) pair as an index 0..4, the unit one shared frame is built for.
pub(crate) type Vf = usize;
pub(crate) const VFS: usize = 4;

pub(crate) fn vf(view: View, form: Form) -> Vf {
    (match view {
        View::Public => 0,
        View::Full => 2,
    }) + match form {
        Form::MsgPack => 0,
        Form::Json => 1,
    }
}

pub(crate) fn vf_parts(vf: Vf) -> (View, Form) {
    let view = if vf < 2 { View::Public } else { View::Full };
    let form = if vf.is_multiple_of(2) { Form::MsgPack } else { Form::Json };
    (view, form)
}

/// One item in the ring.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) item: Item,
    /// `false`: held for review, full view only.
    pub(crate) public: bool,
    /// Thinned out of the public view (decided once, at publish).
    pub(crate) thinned: bool,
    /// When it was published (for the publish → send metric).
    pub(crate) at: Instant,
    msgpack: Bytes,
    json: OnceLock<Bytes>,
    /// Set when a later hide in the ring targets this comment: what the public view gets in
    /// its place (`record::tombstone`: a hide of its own seq, no text). Moderators keep the
    /// original.
    tombstone: Option<Box<Entry>>,
}

impl Entry {
    /// Encodes the MessagePack form now; the JSON form is encoded on first use.
    pub(crate) fn new(item: Item, public: bool, thinned: bool, at: Instant) -> Self {
        let msgpack = encode_item(Form::MsgPack, &item);
        Entry { item, public, thinned, at, msgpack, json: OnceLock::new(), tombstone: None }
    }

    /// What `view` gets for this item: the item, or its tombstone in the public view if hidden.
    pub(crate) fn for_view(&self, view: View) -> &Entry {
        match (&self.tombstone, view) {
            (Some(t), View::Public) => t,
            _ => self,
        }
    }

    pub(crate) fn encoded(&self, form: Form) -> &[u8] {
        match form {
            Form::MsgPack => &self.msgpack,
            Form::Json => self.json.get_or_init(|| encode_item(Form::Json, &self.item)),
        }
    }

    pub(crate) fn visible(&self, view: View) -> bool {
        match view {
            View::Full => true,
            View::Public => self.public && !self.thinned,
        }
    }
}

/// The latest items of a topic, contiguous by seq. Never evicts an item that has not been
/// flushed yet (it may grow past its capacity until the next flush).
#[derive(Debug)]
pub(crate) struct Ring {
    entries: VecDeque<Entry>,
    /// Seq of `entries[0]`, or the next seq to be pushed if empty.
    first: Seq,
    capacity: usize,
}

impl Ring {
    /// An empty ring whose next item is `last_seq + 1`.
    pub(crate) fn new(last_seq: Seq, capacity: usize) -> Self {
        Ring { entries: VecDeque::new(), first: last_seq.next(), capacity: capacity.max(1) }
    }

    /// Oldest seq still held, or the next seq if empty.
    pub(crate) fn first(&self) -> Seq {
        self.first
    }

    /// Appends the next item; the caller has checked its seq.
    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.item.seq.0, self.first.0 + self.entries.len() as u64);
        if let shangliang_signaling::ItemBody::Hide { target } = entry.item.body
            && target >= self.first
            && let Some(hidden) = self.entries.get_mut((target.0 - self.first.0) as usize)
            && matches!(hidden.item.body, shangliang_signaling::ItemBody::Comment { .. })
        {
            let t = crate::record::tombstone(&hidden.item);
            hidden.tombstone = Some(Box::new(Entry::new(t, hidden.public, hidden.thinned, hidden.at)));
        }
        self.entries.push_back(entry);
    }

    /// Evicts the oldest items beyond the capacity, but none after `flushed`.
    pub(crate) fn evict(&mut self, flushed: Seq) {
        while self.entries.len() > self.capacity && self.first <= flushed {
            self.entries.pop_front();
            self.first = self.first.next();
        }
    }

    /// The entries `from..=to`; both must be held.
    pub(crate) fn range(&self, from: Seq, to: Seq) -> impl DoubleEndedIterator<Item = &Entry> {
        debug_assert!(from >= self.first);
        let start = (from.0 - self.first.0) as usize;
        let end = (to.0 + 1 - self.first.0) as usize;
        self.entries.range(start..end.max(start))
    }

    /// One `batch` frame covering `from..=to` for a view and form.
    pub(crate) fn batch(
        &self,
        topic: &ActivityId,
        epoch: Epoch,
        from: Seq,
        to: Seq,
        view: View,
        form: Form,
    ) -> Bytes {
        let mut thinned = 0u32;
        let mut items: Vec<&[u8]> = Vec::new();
        for e in self.range(from, to) {
            if e.visible(view) {
                items.push(e.for_view(view).encoded(form));
            } else if view == View::Public && e.public && e.thinned {
                thinned += 1;
            }
        }
        encode_batch(form, topic, epoch, from, to, thinned, items)
    }

    /// Batch frames covering `from..=to`, at most `chunk` seqs each. Empty if `from > to`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batches(
        &self,
        topic: &ActivityId,
        epoch: Epoch,
        from: Seq,
        to: Seq,
        view: View,
        form: Form,
        chunk: u64,
    ) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let mut start = from.0;
        while start <= to.0 {
            let end = (start + chunk - 1).min(to.0);
            frames.push(self.batch(topic, epoch, Seq(start), Seq(end), view, form));
            start = end + 1;
        }
        frames
    }

    /// The latest (at most `n`) items visible in a view with seq `<= upto`, oldest first.
    pub(crate) fn snapshot(&self, upto: Seq, view: View, n: usize) -> Vec<Item> {
        if upto < self.first {
            return Vec::new();
        }
        let mut items: Vec<Item> = self
            .range(self.first, upto)
            .rev()
            .filter(|e| e.visible(view))
            .take(n)
            .map(|e| e.for_view(view).item.clone())
            .collect();
        items.reverse();
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shangliang_signaling::{ItemBody, ServerMsg, decode_server};

    fn hide(seq: u64) -> Item {
        Item { seq: Seq(seq), ts: 0, body: ItemBody::Hide { target: Seq(1) } }
    }

    #[test]
    fn ring_keeps_unflushed_items_past_its_capacity() {
        let mut r = Ring::new(Seq(10), 2);
        let now = Instant::now();
        for s in 11..=15 {
            r.push(Entry::new(hide(s), true, false, now));
            r.evict(Seq(10));
        }
        assert_eq!(r.first(), Seq(11), "nothing flushed, nothing evicted");
        r.evict(Seq(12));
        assert_eq!(r.first(), Seq(13));
        r.evict(Seq(15));
        assert_eq!(r.first(), Seq(14));
        assert_eq!(r.range(Seq(14), Seq(15)).count(), 2);
    }

    #[test]
    fn catch_up_batches_are_chunked_and_contiguous() {
        let mut r = Ring::new(Seq(0), 100);
        let now = Instant::now();
        for s in 1..=25 {
            r.push(Entry::new(hide(s), s % 2 == 0, false, now));
        }
        let topic = ActivityId::new("t").unwrap();
        let frames = r.batches(&topic, Epoch(1), Seq(3), Seq(25), View::Public, Form::Json, 10);
        let ranges: Vec<(u64, u64, usize)> = frames
            .iter()
            .map(|f| match decode_server(Form::Json, f).unwrap() {
                ServerMsg::Batch { from, to, items, .. } => (from.0, to.0, items.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ranges, [(3, 12, 5), (13, 22, 5), (23, 25, 1)]);
    }
}
