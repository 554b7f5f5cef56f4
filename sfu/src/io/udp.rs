//! The node's one UDP socket: batched receive (`recvmmsg`, GRO) and batched send (GSO), both
//! through `quinn-udp`.
//!
//! ```text
//! bind(addr)                       std socket, large buffers, non-blocking (any thread)
//! UdpIo::new(std) in the runtime   tokio readiness + quinn-udp state (GRO on, GSO probed)
//! loop { io.readable().await; while let Some(n) = io.try_recv()? { for d in io.datagrams(n) … } }
//! io.send(&batch).await            one sendmsg per coalesced destination run
//! ```

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;

use super::batch::SendBatch;

/// The largest datagram the SFU expects (above the 1500-byte Ethernet MTU on purpose: loopback
/// and jumbo frames carry more; rtc's receive MTU is 1460 by default).
pub(crate) const MAX_DATAGRAM: usize = 2048;

/// Socket buffers: a burst of a flush to thousands of viewers must not overflow the send queue.
const SOCKET_BUFFER: usize = 8 * 1024 * 1024;

/// Bind the node's socket (not yet registered with a runtime). No `SO_REUSEADDR`: on Linux it
/// would let a second node bind the same UDP port and silently share its datagrams.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The socket inside the driver's runtime.
pub(crate) struct UdpIo {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
    /// `quinn_udp::BATCH_SIZE` receive buffers, each large enough for a GRO train.
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    local: SocketAddr,
}

impl UdpIo {
    /// Register `socket` with the current tokio runtime.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let per_buf = MAX_DATAGRAM * state.gro_segments().max(1);
        let n = quinn_udp::BATCH_SIZE.max(1);
        Ok(Self { socket, state, bufs: vec![vec![0; per_buf]; n], meta: vec![RecvMeta::default(); n], local })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams per GSO send (1 when the kernel has no `UDP_SEGMENT`).
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Wait until something can be read.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// One `recvmmsg`: the number of filled buffers, `None` when nothing is queued.
    pub fn try_recv(&mut self) -> io::Result<Option<usize>> {
        let Self { socket, state, bufs, meta, .. } = self;
        let socket: &tokio::net::UdpSocket = socket;
        let mut iovs: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        match socket.try_io(Interest::READABLE, || state.recv(socket.into(), &mut iovs, meta)) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The datagrams of the first `n` buffers of the last receive: `(from, bytes)`, GRO trains
    /// cut back into datagrams at their stride.
    pub fn datagrams(&self, n: usize) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.meta[..n].iter().zip(&self.bufs).flat_map(|(m, b)| {
            let stride = m.stride.max(1);
            b[..m.len].chunks(stride).map(move |d| (m.addr, d))
        })
    }

    /// Send every transmit of `batch`, waiting (at most [`SEND_WAIT`] per flush in total) for
    /// buffer space if the kernel pushes back. Returns the number of datagrams not sent (dropped,
    /// as a router would, rather than stalling every other connection behind a full queue).
    pub async fn send(&self, batch: &mut SendBatch) -> usize {
        let mut refused = 0;
        let deadline = tokio::time::Instant::now() + SEND_WAIT;
        for t in batch.transmits() {
            let contents = batch.contents(t);
            let transmit = Transmit {
                destination: t.dst,
                ecn: None,
                contents,
                segment_size: (t.segments() > 1).then_some(t.segment_size),
                src_ip: None,
            };
            loop {
                match self.socket.try_io(Interest::WRITABLE, || self.state.try_send((&self.socket).into(), &transmit)) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && tokio::time::Instant::now() < deadline => {
                        let _ = tokio::time::timeout_at(deadline, self.socket.writable()).await;
                    }
                    Err(e) => {
                        tracing::debug!("udp send to {} ({} segments) failed: {e}", t.dst, t.segments());
                        refused += t.segments();
                        break;
                    }
                }
            }
        }
        if self.state.max_gso_segments() < batch_max(batch) {
            // quinn-udp turned GSO off after an EIO/EINVAL: split future flushes.
            batch.set_max_segments(self.state.max_gso_segments());
        }
        refused
    }
}

/// The longest one flush waits for socket buffer space.
const SEND_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

fn batch_max(batch: &SendBatch) -> usize {
    batch.transmits().iter().map(|t| t.segments()).max().unwrap_or(1)
}
