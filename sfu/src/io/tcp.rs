//! The node's ICE-TCP listener: one passive TCP candidate (RFC 6544) on one port for every peer
//! connection, each accepted connection carrying RFC 4571 frames (a 2-byte length, then one
//! STUN/DTLS/SRTP packet).
//!
//! ```text
//! listener.accept()  (in the driver's select)   → TcpConns::accepted: a task per connection
//! task:  read → TcpFrameDecoder → TcpEvent::Frame(peer, packet) ─► driver: demux (Tcp, peer) → pc
//!        driver's writes for a TCP pair ─ TcpConns::send(peer, packet) ─ framed ─► task ─► socket
//! the driver drops a connection's sender (unrouted first frame, its pc closed, too many) → the
//! task ends and the socket closes
//! ```
//!
//! Framing is `rtc::shared::tcp_framing` (the `rtc` crate's `ice-tcp` example). Limits: at most
//! `max_connections` at once (further ones are closed at accept), a connection's first frame
//! must come within [`FIRST_FRAME_WITHIN`] and name a known ufrag (else it is closed), and a
//! connection's outgoing queue is bounded ([`WRITE_QUEUE`] packets): a reader slower than
//! its media loses packets, as on UDP, instead of holding the driver.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Packets queued towards one TCP connection at most.
const WRITE_QUEUE: usize = 512;
/// A new connection that sends no complete frame by then is closed.
pub(crate) const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(10);
/// Events from all connection tasks to the driver, queued at most (the tasks wait: TCP back-pressure).
const EVENT_QUEUE: usize = 1024;

/// What a connection task tells the driver.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// One complete frame's payload from `peer`.
    Frame(SocketAddr, BytesMut),
    /// The connection from `peer` ended (EOF, error, or its first frame never came).
    Closed(SocketAddr),
}

/// Bind the node's ICE-TCP listener (std, not yet registered with a runtime).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted node must get its port back while old connections are in TIME_WAIT; for TCP,
    // unlike UDP, SO_REUSEADDR does not let two listeners share a port.
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The accepted connections, by remote address, and the channel their tasks report on.
pub(crate) struct TcpConns {
    listener: TcpListener,
    /// The candidate address (announced IP, listener port): the connections' local address
    /// as the peer connections know it.
    pub local: SocketAddr,
    writers: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    events_tx: mpsc::Sender<TcpEvent>,
    events: mpsc::Receiver<TcpEvent>,
    max_connections: usize,
}

impl TcpConns {
    /// Register `listener` with the current runtime.
    pub fn new(listener: std::net::TcpListener, candidate: SocketAddr, max_connections: usize) -> io::Result<Self> {
        let listener = TcpListener::from_std(listener)?;
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        Ok(Self { listener, local: candidate, writers: HashMap::new(), events_tx, events, max_connections: max_connections.max(1) })
    }

    /// The listener's bound address.
    pub fn listen_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Wait for the next accepted connection or task event.
    pub async fn next(&mut self) -> Wake {
        tokio::select! {
            a = self.listener.accept() => Wake::Accepted(a),
            e = self.events.recv() => match e {
                Some(e) => Wake::Event(e),
                None => std::future::pending().await, // never: we hold a sender
            },
        }
    }

    /// A task event already queued, without waiting (the driver takes a bounded batch per
    /// wake-up, as it does with `recvmmsg`).
    pub fn try_event(&mut self) -> Option<TcpEvent> {
        self.events.try_recv().ok()
    }

    /// Take a new connection (or close it at once when there are too many): false if refused.
    pub fn accepted(&mut self, stream: TcpStream, peer: SocketAddr) -> bool {
        if self.writers.len() >= self.max_connections {
            return false; // dropped: closed
        }
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        if let Some(old) = self.writers.insert(peer, tx) {
            drop(old); // the same address again: the old task's socket is gone anyway
        }
        tokio::spawn(serve(stream, peer, rx, self.events_tx.clone()));
        true
    }

    /// Queue `packet` (unframed) for `peer`; false if there is no such connection or its queue
    /// is full (the packet is dropped).
    pub fn send(&mut self, peer: SocketAddr, packet: &[u8]) -> bool {
        if packet.len() > rtc::shared::tcp_framing::MAX_FRAMED_PACKET_SIZE {
            return false;
        }
        match self.writers.get(&peer) {
            Some(tx) => tx.try_send(Bytes::from(frame_packet(packet))).is_ok(),
            None => false,
        }
    }

    /// Close the connection from `peer` (its task ends when it sees the sender gone).
    pub fn close(&mut self, peer: SocketAddr) {
        self.writers.remove(&peer);
    }

    /// A task said its connection ended.
    pub fn closed(&mut self, peer: SocketAddr) {
        if self.writers.get(&peer).is_some_and(|tx| tx.is_closed()) {
            self.writers.remove(&peer);
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.writers.len()
    }
}

/// What woke the TCP side of the driver.
pub(crate) enum Wake {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Event(TcpEvent),
}

/// One connection: frames in to the driver, queued packets out, until either side ends.
async fn serve(stream: TcpStream, peer: SocketAddr, mut out: mpsc::Receiver<Bytes>, events: mpsc::Sender<TcpEvent>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    let first = tokio::time::sleep(FIRST_FRAME_WITHIN);
    tokio::pin!(first);
    let mut framed = false;
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    decoder.extend_from_slice(&buf[..n]);
                    while let Some(p) = decoder.next_packet() {
                        framed = true;
                        if events.send(TcpEvent::Frame(peer, BytesMut::from(&p[..]))).await.is_err() {
                            return;
                        }
                    }
                }
            },
            m = out.recv() => match m {
                Some(b) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                None => break, // the driver closed it
            },
            _ = &mut first, if !framed => break,
        }
    }
    let _ = wr.shutdown().await;
    let _ = events.send(TcpEvent::Closed(peer)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_cross_a_connection_both_ways_and_a_silent_one_is_refused_past_the_limit() {
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let mut conns = TcpConns::new(l, addr, 1).unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        let Wake::Accepted(Ok((s, peer))) = conns.next().await else { panic!("no accept") };
        assert!(conns.accepted(s, peer));
        // Two frames in one write, the second split across writes.
        let mut bytes = frame_packet(b"hello");
        bytes.extend_from_slice(&frame_packet(b"world")[..3]);
        c.write_all(&bytes).await.unwrap();
        c.write_all(&frame_packet(b"world")[3..]).await.unwrap();
        for want in [&b"hello"[..], b"world"] {
            let Wake::Event(TcpEvent::Frame(from, p)) = conns.next().await else { panic!("no frame") };
            assert_eq!((from, &p[..]), (peer, want));
        }
        assert!(conns.send(peer, b"back"));
        let mut got = [0u8; 6];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, &frame_packet(b"back")[..]);
        // A second connection is over the limit: closed at once.
        let mut c2 = TcpStream::connect(addr).await.unwrap();
        let Wake::Accepted(Ok((s2, peer2))) = conns.next().await else { panic!("no accept") };
        assert!(!conns.accepted(s2, peer2));
        assert_eq!(c2.read(&mut got).await.unwrap(), 0, "refused connection is closed");
        // The driver closes the first: the client sees EOF and the task reports it.
        conns.close(peer);
        assert_eq!(c.read(&mut got).await.unwrap(), 0);
        let Wake::Event(TcpEvent::Closed(p)) = conns.next().await else { panic!("no close") };
        assert_eq!(p, peer);
        assert_eq!(conns.len(), 0);
    }
}
