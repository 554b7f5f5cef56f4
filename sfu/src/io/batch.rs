//! A flush's outgoing datagrams, coalesced for UDP GSO. Pure: no socket.
//!
//! ```text
//! push(dst, datagram) …            (in the order the peer connections produced them)
//! for t in batch.transmits() { socket.send(t.dst, t.contents, t.segment_size) }   one sendmsg each
//! clear()
//! ```
//!
//! One GSO send (`UDP_SEGMENT`) carries several datagrams to one destination: every segment has
//! the same size except the last, which may be shorter (Linux `udp_send_skb`). The datagrams of
//! one subscriber leg come out of its peer connection back to back, so a video frame's packets
//! (equal-sized by the encoder's packetizer) plus a trailing audio packet usually make one send.
//! Order per destination is kept; nothing is reordered across a segment boundary.

use std::net::SocketAddr;

/// One send: `contents` to `dst`, split by the kernel into `segment_size` pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub dst: SocketAddr,
    start: usize,
    len: usize,
    /// Size of each segment but the last; equals `len` for a single datagram.
    pub segment_size: usize,
    segments: usize,
    /// The last segment was shorter: nothing more may be appended.
    closed: bool,
}

impl Transmit {
    /// Number of datagrams it carries.
    pub fn segments(&self) -> usize {
        self.segments
    }
}

/// The datagrams of one flush.
#[derive(Debug)]
pub(crate) struct SendBatch {
    buf: Vec<u8>,
    transmits: Vec<Transmit>,
    max_segments: usize,
    max_bytes: usize,
    datagrams: usize,
}

impl SendBatch {
    /// `max_segments` per send (quinn-udp's `max_gso_segments()`: 1 without GSO); at most
    /// `max_bytes` per send (a UDP payload is below 64 KiB).
    pub fn new(max_segments: usize, max_bytes: usize) -> Self {
        Self { buf: Vec::with_capacity(256 * 1024), transmits: Vec::new(), max_segments: max_segments.max(1), max_bytes, datagrams: 0 }
    }

    /// Lower the segment limit (the kernel refused GSO).
    pub fn set_max_segments(&mut self, n: usize) {
        self.max_segments = n.max(1);
    }

    /// Append one datagram for `dst`.
    pub fn push(&mut self, dst: SocketAddr, datagram: &[u8]) {
        let d = datagram.len();
        self.datagrams += 1;
        let start = self.buf.len();
        self.buf.extend_from_slice(datagram);
        if let Some(t) = self.transmits.last_mut()
            && t.dst == dst
            && !t.closed
            && d <= t.segment_size
            && t.segments < self.max_segments
            && t.len + d <= self.max_bytes
        {
            t.len += d;
            t.segments += 1;
            t.closed = d < t.segment_size;
            return;
        }
        self.transmits.push(Transmit { dst, start, len: d, segment_size: d, segments: 1, closed: false });
    }

    /// The sends, in order.
    pub fn transmits(&self) -> &[Transmit] {
        &self.transmits
    }

    /// The bytes of `t` (all its segments, back to back).
    pub fn contents(&self, t: &Transmit) -> &[u8] {
        &self.buf[t.start..t.start + t.len]
    }

    /// Datagrams pushed since the last clear.
    #[cfg(test)]
    pub fn datagrams(&self) -> usize {
        self.datagrams
    }

    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty()
    }

    /// Forget everything sent.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.transmits.clear();
        self.datagrams = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    /// What the kernel does with a GSO send: cut into `segment_size` pieces.
    fn split(b: &SendBatch) -> Vec<(SocketAddr, Vec<u8>)> {
        b.transmits().iter().flat_map(|t| b.contents(t).chunks(t.segment_size).map(move |c| (t.dst, c.to_vec()))).collect()
    }

    #[test]
    fn a_frame_and_a_trailing_audio_packet_make_one_send() {
        let mut b = SendBatch::new(64, 65_000);
        for _ in 0..5 {
            b.push(a(1), &[1; 1200]);
        }
        b.push(a(1), &[2; 100]);
        b.push(a(1), &[3; 1200]); // after a shorter one: a new send
        b.push(a(2), &[4; 1200]);
        let t = b.transmits();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].segments(), t[0].segment_size), (6, 1200));
        assert_eq!((t[1].segments(), t[2].dst), (1, a(2)));
        assert_eq!(b.datagrams(), 8);
        b.clear();
        assert!(b.is_empty());
    }

    proptest! {
        /// Whatever the sizes, destinations and limits: cutting each send at its segment size gives
        /// back exactly the datagrams pushed, in order, and every send respects the limits.
        #[test]
        fn sends_split_back_into_the_pushed_datagrams(
            max_segments in 1usize..8,
            pushes in proptest::collection::vec((0u16..3, 1usize..1500), 0..80),
        ) {
            let mut b = SendBatch::new(max_segments, 6000);
            let mut want = Vec::new();
            for (i, (dst, len)) in pushes.iter().enumerate() {
                let d = vec![(i % 251) as u8; *len];
                b.push(a(*dst), &d);
                want.push((a(*dst), d));
            }
            prop_assert_eq!(split(&b), want);
            for t in b.transmits() {
                prop_assert!(t.segments() <= max_segments);
                prop_assert!(t.segments() == 1 || b.contents(t).len() <= 6000);
                prop_assert_eq!(b.contents(t).len().div_ceil(t.segment_size), t.segments());
            }
        }
    }
}
