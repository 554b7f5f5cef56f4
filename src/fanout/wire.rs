//! A connection's write side as its shard owns it: a delivery is a non-blocking write of the
//! shared frame straight into the socket (a websocket header built on the stack, the payload
//! shared, one `writev`), with no channel push and no wake-up of the session task.
//!
//! What the socket does not take waits in a buffer that exists only while something is pending
//! (an empty `VecDeque` holds no allocation, and the buffer is let go once drained). The shard
//! writes it out when the socket is writable again; the session, which writes its own frames
//! (welcome, acks, replies, the catch-up) through the same [`Wire`] so that the bytes of frames
//! never interleave, drains it too when it flushes.
//!
//! Fan-out frames in the buffer are bounded by the connection's `queue_frames`: a delivery that
//! finds the buffer full is dropped for this connection ([`Written::Full`]) and the shard's lag
//! policy applies, as with the queue. A pending frame of a subscription that was replaced or
//! ended since is skipped when its turn comes (unless it is half written).
//!
//! The socket is behind [`WireSocket`], so this module has no sockets of its own and is tested
//! with a fake one.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::conn::ConnShared;

/// The non-blocking write side of a socket. The server implements it for its TCP stream.
pub trait WireSocket: Send + Sync + 'static {
    /// Writes what the socket takes now, without waiting; `WouldBlock` if it takes nothing.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Ready when the socket may take more; otherwise registers `cx` to be woken then. Only the
    /// connection's shard calls it (sockets keep one such waker per direction).
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// The websocket opcode of a data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A text frame (the JSON form).
    Text = 1,
    /// A binary frame (MessagePack).
    Binary = 2,
}

/// What became of a fan-out frame handed to [`Wire::write_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Whole in the socket.
    Sent,
    /// In the pending buffer (partly or not at all in the socket); `free` more frames fit.
    Queued { free: usize },
    /// Dropped: the buffer already holds `queue_frames` fan-out frames.
    Full,
    /// The socket failed earlier; the session will find out when it reads.
    Failed,
}

/// Most chunks handed to one `writev`.
const MAX_IOV: usize = 16;

/// One frame (or a run of the session's framed bytes) waiting for the socket.
#[derive(Debug)]
struct Chunk {
    header: [u8; 10],
    hlen: u8,
    payload: Bytes,
    /// Bytes of `header[..hlen]` and `payload` already written.
    done: usize,
    /// The subscription (slot, generation) of a fan-out frame; `None` for the session's bytes.
    tag: Option<(u8, u32)>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.hlen as usize + self.payload.len()
    }

    /// The unwritten rest, as at most two slices.
    fn slices(&self) -> [&[u8]; 2] {
        let h = self.hlen as usize;
        if self.done < h {
            [&self.header[self.done..h], &self.payload[..]]
        } else {
            [&[], &self.payload[self.done - h..]]
        }
    }
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Chunk>,
    /// Fan-out (tagged) chunks in `pending`.
    frames: usize,
    /// A write failed: the connection is gone.
    failed: bool,
    /// The session is closing (its Close frame goes next): nothing else may be written.
    sealed: bool,
}

/// A connection's write side, shared by its shard (fan-out frames) and its session (its own
/// frames). See the module docs.
pub struct Wire {
    socket: Box<dyn WireSocket>,
    state: Mutex<State>,
    /// The connection's subscription generations, set when the fan-out registers it.
    gens: OnceLock<Arc<ConnShared>>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Wire").field("pending", &st.pending.len()).field("failed", &st.failed).finish()
    }
}

/// The websocket header of an unmasked, final server frame of `len` bytes (RFC 6455 §5.2).
fn header(op: Opcode, len: usize) -> ([u8; 10], u8) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | op as u8;
    let hlen = if len < 126 {
        h[1] = len as u8;
        2
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, hlen)
}

impl Wire {
    /// The write side over `socket`.
    pub fn new(socket: impl WireSocket) -> Wire {
        Wire { socket: Box::new(socket), state: Mutex::new(State::default()), gens: OnceLock::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn attach(&self, shared: Arc<ConnShared>) {
        let _ = self.gens.set(shared);
    }

    /// Writes a fan-out frame for subscription `tag`, keeping at most `cap` such frames pending.
    pub(crate) fn write_frame(&self, op: Opcode, frame: &Bytes, tag: (u8, u32), cap: usize) -> Written {
        let mut st = self.lock();
        if st.failed || st.sealed || self.drain_locked(&mut st).is_err() {
            return Written::Failed;
        }
        let (header, hlen) = header(op, frame.len());
        let mut chunk = Chunk { header, hlen, payload: frame.clone(), done: 0, tag: Some(tag) };
        if st.pending.is_empty() {
            let [a, b] = chunk.slices();
            match self.socket.try_write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
                Ok(n) if n == chunk.len() => return Written::Sent,
                Ok(n) => chunk.done = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    st.failed = true;
                    return Written::Failed;
                }
            }
        } else if st.frames >= cap {
            return Written::Full;
        }
        st.pending.push_back(chunk);
        st.frames += 1;
        Written::Queued { free: cap.saturating_sub(st.frames) }
    }

    /// Writes bytes that are already websocket frames (the session's own, from its websocket
    /// codec), behind whatever is pending. Never waits: what the socket does not take now is
    /// kept (and written by [`Wire::poll_flush_with`] or the shard).
    pub fn write_raw(&self, buf: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        if st.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.drain_locked(&mut st)?;
        let mut done = 0;
        if st.pending.is_empty() {
            match self.socket.try_write_vectored(&[IoSlice::new(buf)]) {
                Ok(n) => done = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    st.failed = true;
                    return Err(e);
                }
            }
        }
        if done < buf.len() {
            let payload = Bytes::copy_from_slice(&buf[done..]);
            st.pending.push_back(Chunk { header: [0; 10], hlen: 0, payload, done: 0, tag: None });
        }
        Ok(())
    }

    /// Writes one whole data frame of the connection's own (an ack, a reply: not a fan-out
    /// frame, so never dropped and not counted against `queue_frames`) behind whatever is
    /// pending, from any thread, without waiting. `Ok(true)`: nothing is left pending;
    /// `Ok(false)`: bytes wait in the buffer, and whoever wrote must see them flushed (the
    /// session's flush, or the shard's next write). Refused once the wire is sealed.
    pub fn write_own(&self, op: Opcode, payload: &Bytes) -> io::Result<bool> {
        let mut st = self.lock();
        if st.failed || st.sealed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.drain_locked(&mut st)?;
        let (header, hlen) = header(op, payload.len());
        let mut chunk = Chunk { header, hlen, payload: payload.clone(), done: 0, tag: None };
        if st.pending.is_empty() {
            let [a, b] = chunk.slices();
            match self.socket.try_write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
                Ok(n) if n == chunk.len() => return Ok(true),
                Ok(n) => chunk.done = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    st.failed = true;
                    return Err(e);
                }
            }
        }
        st.pending.push_back(chunk);
        Ok(false)
    }

    /// The session is about to write its Close frame (through [`Wire::write_raw`], which stays
    /// open for it): from now on shards and other threads write nothing more.
    pub fn seal(&self) {
        self.lock().sealed = true;
    }

    /// Whether nothing is pending.
    pub fn is_drained(&self) -> bool {
        self.lock().pending.is_empty()
    }

    /// Writes what is pending as far as the socket takes it now; `Ok(true)` once nothing is.
    pub fn try_drain(&self) -> io::Result<bool> {
        let mut st = self.lock();
        self.drain_locked(&mut st)
    }

    /// The shard's flush: ready once nothing is pending (or the socket failed).
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.try_drain() {
                Ok(true) => return Poll::Ready(Ok(())),
                Ok(false) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            match self.socket.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => {
                    self.lock().failed = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Fan-out frames pending.
    #[cfg(test)]
    pub(crate) fn pending_frames(&self) -> usize {
        self.lock().frames
    }

    fn current(&self, tag: Option<(u8, u32)>) -> bool {
        match (tag, self.gens.get()) {
            (Some((slot, gen_)), Some(shared)) => shared.current(slot, gen_),
            _ => true,
        }
    }

    /// Writes pending chunks until the socket stops taking them; `Ok(true)` if none is left.
    fn drain_locked(&self, st: &mut State) -> io::Result<bool> {
        if st.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        loop {
            // Skip whole frames of replaced or ended subscriptions.
            while let Some(front) = st.pending.front() {
                if front.done == 0 && !self.current(front.tag) {
                    st.pending.pop_front();
                    st.frames -= 1;
                } else {
                    break;
                }
            }
            if st.pending.is_empty() {
                // Let the buffer's memory go: a drained connection holds none.
                st.pending = VecDeque::new();
                return Ok(true);
            }
            let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(2 * MAX_IOV);
            for c in st.pending.iter().take(MAX_IOV) {
                if c.done == 0 && !self.current(c.tag) {
                    break;
                }
                for s in c.slices() {
                    if !s.is_empty() {
                        iov.push(IoSlice::new(s));
                    }
                }
            }
            let mut n = match self.socket.try_write_vectored(&iov) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    st.failed = true;
                    return Err(e);
                }
            };
            drop(iov);
            if n == 0 {
                return Ok(false);
            }
            while n > 0 {
                let front = st.pending.front_mut().expect("written bytes belong to pending chunks");
                let rest = front.len() - front.done;
                if n >= rest {
                    n -= rest;
                    let c = st.pending.pop_front().expect("front exists");
                    if c.tag.is_some() {
                        st.frames -= 1;
                    }
                } else {
                    front.done += n;
                    n = 0;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A socket that takes at most `room` bytes until told to take more.
    #[derive(Default)]
    pub(crate) struct FakeSocket {
        pub(crate) out: Mutex<Vec<u8>>,
        pub(crate) room: AtomicUsize,
        pub(crate) waker: Mutex<Option<std::task::Waker>>,
    }

    impl FakeSocket {
        pub(crate) fn with_room(room: usize) -> Arc<FakeSocket> {
            let s = Arc::new(FakeSocket::default());
            s.room.store(room, Ordering::SeqCst);
            s
        }

        pub(crate) fn open(&self, more: usize) {
            self.room.fetch_add(more, Ordering::SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }

        /// The websocket frames written so far: (opcode, payload).
        pub(crate) fn frames(&self) -> Vec<(u8, Vec<u8>)> {
            let out = self.out.lock().unwrap();
            let mut at = 0;
            let mut frames = Vec::new();
            while at + 2 <= out.len() {
                let op = out[at] & 0x0f;
                let (len, h) = match out[at + 1] {
                    126 => (u16::from_be_bytes([out[at + 2], out[at + 3]]) as usize, 4),
                    127 => (u64::from_be_bytes(out[at + 2..at + 10].try_into().unwrap()) as usize, 10),
                    n => (n as usize, 2),
                };
                if at + h + len > out.len() {
                    break;
                }
                frames.push((op, out[at + h..at + h + len].to_vec()));
                at += h + len;
            }
            frames
        }
    }

    impl WireSocket for Arc<FakeSocket> {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let room = self.room.load(Ordering::SeqCst);
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut out = self.out.lock().unwrap();
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(room - n);
                out.extend_from_slice(&b[..take]);
                n += take;
                if n == room {
                    break;
                }
            }
            self.room.fetch_sub(n, Ordering::SeqCst);
            Ok(n)
        }

        fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.room.load(Ordering::SeqCst) > 0 {
                return Poll::Ready(Ok(()));
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_frame_the_socket_takes_is_written_whole_with_no_buffer_kept() {
        let s = FakeSocket::with_room(1 << 20);
        let w = Wire::new(s.clone());
        let big = Bytes::from(vec![7u8; 70_000]);
        assert_eq!(w.write_frame(Opcode::Binary, &Bytes::from_static(b"hi"), (0, 1), 4), Written::Sent);
        assert_eq!(w.write_frame(Opcode::Text, &Bytes::from(vec![1u8; 300]), (0, 1), 4), Written::Sent);
        assert_eq!(w.write_frame(Opcode::Binary, &big, (0, 1), 4), Written::Sent);
        let frames = s.frames();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], (2, b"hi".to_vec()));
        assert_eq!((frames[1].0, frames[1].1.len()), (1, 300));
        assert_eq!(frames[2].1.len(), 70_000);
        assert!(w.is_drained());
        assert_eq!(w.lock().pending.capacity(), 0, "no buffer is held while nothing is pending");
    }

    #[test]
    fn what_the_socket_does_not_take_waits_in_order_and_a_full_buffer_drops() {
        let s = FakeSocket::with_room(3);
        let w = Wire::new(s.clone());
        let f = |b: u8| Bytes::from(vec![b; 10]);
        assert_eq!(w.write_frame(Opcode::Binary, &f(1), (0, 1), 2), Written::Queued { free: 1 });
        w.write_raw(&[0x82, 1, 99]).unwrap(); // the session's own framed bytes, behind it
        assert_eq!(w.write_frame(Opcode::Binary, &f(2), (0, 1), 2), Written::Queued { free: 0 });
        assert_eq!(w.write_frame(Opcode::Binary, &f(3), (0, 1), 2), Written::Full);
        assert!(!w.try_drain().unwrap());
        s.open(1000);
        assert!(w.try_drain().unwrap());
        let got: Vec<Vec<u8>> = s.frames().into_iter().map(|(_, p)| p).collect();
        assert_eq!(got, [vec![1u8; 10], vec![99], vec![2u8; 10]]);
        assert_eq!(w.lock().pending.capacity(), 0, "the buffer is let go once drained");
    }

    #[test]
    fn pending_frames_of_a_replaced_subscription_are_skipped_unless_half_written() {
        let s = FakeSocket::with_room(4);
        let w = Wire::new(s.clone());
        let shared = Arc::new(ConnShared::default());
        let g1 = shared.bump(0);
        w.attach(shared.clone());
        let f = |b: u8| Bytes::from(vec![b; 10]);
        w.write_frame(Opcode::Binary, &f(1), (0, g1), 8); // half written
        w.write_frame(Opcode::Binary, &f(2), (0, g1), 8); // not started
        let g2 = shared.bump(0); // re-subscribed
        w.write_frame(Opcode::Binary, &f(3), (0, g2), 8);
        s.open(1000);
        assert!(w.try_drain().unwrap());
        let got: Vec<Vec<u8>> = s.frames().into_iter().map(|(_, p)| p).collect();
        assert_eq!(got, [vec![1u8; 10], vec![3u8; 10]]);
        assert_eq!(w.pending_frames(), 0);
    }

    #[test]
    fn an_own_frame_goes_behind_pending_fan_out_frames_and_is_never_dropped() {
        let s = FakeSocket::with_room(3);
        let w = Wire::new(s.clone());
        let f = |b: u8| Bytes::from(vec![b; 10]);
        assert_eq!(w.write_frame(Opcode::Binary, &f(1), (0, 1), 1), Written::Queued { free: 0 });
        // The fan-out's cap is reached, but the connection's own frames (acks) still go in.
        assert!(!w.write_own(Opcode::Binary, &Bytes::from_static(b"ack")).unwrap());
        assert_eq!(w.write_frame(Opcode::Binary, &f(2), (0, 1), 1), Written::Full);
        s.open(1000);
        assert!(w.try_drain().unwrap());
        let got: Vec<Vec<u8>> = s.frames().into_iter().map(|(_, p)| p).collect();
        assert_eq!(got, [vec![1u8; 10], b"ack".to_vec()]);
        // With nothing pending, an own frame the socket takes leaves nothing behind.
        assert!(w.write_own(Opcode::Text, &Bytes::from_static(b"{}")).unwrap());
        assert_eq!(s.frames().last().unwrap(), &(1, b"{}".to_vec()));
    }

    #[test]
    fn a_sealed_wire_takes_only_the_sessions_close() {
        let s = FakeSocket::with_room(1 << 16);
        let w = Wire::new(s.clone());
        w.seal();
        assert_eq!(w.write_frame(Opcode::Binary, &Bytes::from_static(b"batch"), (0, 1), 4), Written::Failed);
        assert!(w.write_own(Opcode::Binary, &Bytes::from_static(b"ack")).is_err());
        w.write_raw(&[0x88, 2, 0x03, 0xe8]).unwrap(); // Close 1000
        assert_eq!(s.frames(), [(8, vec![0x03, 0xe8])]);
    }

    #[test]
    fn a_failed_socket_takes_nothing_more() {
        struct Broken;
        impl WireSocket for Broken {
            fn try_write_vectored(&self, _: &[IoSlice<'_>]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
            fn poll_write_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let w = Wire::new(Broken);
        assert_eq!(w.write_frame(Opcode::Binary, &Bytes::from_static(b"x"), (0, 1), 4), Written::Failed);
        assert!(w.write_raw(b"y").is_err());
    }
}
