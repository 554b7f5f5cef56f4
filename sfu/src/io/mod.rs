//! The SFU's sockets: one UDP socket for every peer connection of the node.
//!
//! * [`demux`]: which peer connection a datagram belongs to (ICE ufrag, then remote address).
//! * [`batch`]: a flush's outgoing datagrams coalesced per destination for GSO.
//! * [`udp`]: the socket itself, `recvmmsg`/GRO in and GSO out through `quinn-udp`.
//!
//! * [`tcp`]: the ICE-TCP listener (RFC 6544 passive candidate, RFC 4571 framing) beside [`udp`]:
//!   its accepted connections' frames enter the driver as datagrams of protocol TCP, route
//!   through the same [`demux::Demux`] (keys are `(protocol, address)`), and the peer
//!   connections' output for a TCP pair goes to that connection's writer instead of the UDP
//!   [`batch::SendBatch`].

pub(crate) mod batch;
pub(crate) mod demux;
pub(crate) mod tcp;
pub(crate) mod udp;
