//! Which peer connection a datagram on the shared port belongs to. Pure: no socket, no clock.
//!
//! ```text
//! datagram from addr ─ classify ─┬─ STUN binding request, USERNAME "ours:theirs" ─ by_ufrag[ours] ─► pc
//!                                │        (and addr → pc is remembered for what follows)
//!                                └─ anything else (STUN response, DTLS, SRTP, SRTCP) ─ by_addr[addr] ─► pc
//! ```
//!
//! The SFU is an ICE-lite agent (RFC 8445 §2.5): it never sends connectivity checks, so the first
//! datagram of every new 5-tuple is a binding request from the remote agent, and its `USERNAME`
//! names our ufrag first (RFC 8445 §7.2.2). mediasoup's `WebRtcServer` and pion's `UDPMuxDefault`
//! (LiveKit) demultiplex the same way; str0m's example scans every `Rtc` with `accepts()`, which
//! this table replaces with two hash lookups. The peer connection still checks the binding
//! request's MESSAGE-INTEGRITY itself; the table only routes.
//!
//! Keys are `(protocol, address)` so an ICE-TCP connection (RFC 4571 framing, RFC 6544) routes
//! through the same table as UDP: its framed packets come in as datagrams of protocol TCP.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

/// What the demultiplexer needs to know about a datagram (RFC 7983 first-byte ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// A STUN binding request; the local (our) ufrag from its USERNAME, if it carries one.
    BindingRequest(Option<&'a str>),
    /// Any other STUN message (responses, indications).
    Stun,
    /// DTLS, SRTP, SRTCP or anything else.
    Other,
}

const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;

/// Classify one datagram without allocating. Reads at most the STUN header and attribute
/// headers; never panics on any input (property-tested below).
///
/// Written by hand rather than with `rtc::stun::Message::unmarshal_binary` because that parses
/// and allocates every attribute of every STUN packet on the receive path; the peer connection
/// parses (and authenticates) the packet fully once it has been routed.
pub(crate) fn classify(buf: &[u8]) -> Kind<'_> {
    // RFC 7983: a first byte of 0..=3 is STUN; then the fixed 20-byte header with the cookie.
    if buf.len() < 20 || buf[0] > 3 || buf[4..8] != STUN_MAGIC {
        return Kind::Other;
    }
    let typ = u16::from_be_bytes([buf[0], buf[1]]);
    if typ != BINDING_REQUEST {
        return Kind::Stun;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let body = &buf[20..buf.len().min(20 + len)];
    let mut i = 0;
    while i + 4 <= body.len() {
        let at = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let start = i + 4;
        let Some(value) = body.get(start..start + alen) else { break };
        if at == ATTR_USERNAME {
            let ours = value.split(|b| *b == b':').next().unwrap_or_default();
            return Kind::BindingRequest(std::str::from_utf8(ours).ok().filter(|s| !s.is_empty()));
        }
        i = start + alen.div_ceil(4) * 4;
    }
    Kind::BindingRequest(None)
}

/// Transport of a remote address (UDP now; TCP for ICE-TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Proto {
    /// The shared UDP socket.
    Udp,
    /// A framed ICE-TCP connection (RFC 4571 framing, RFC 6544): one accepted connection of the
    /// node's TCP listener, named by its remote address.
    Tcp,
}

/// The routing table: local ufrag → connection, remote `(proto, addr)` → connection.
#[derive(Debug)]
pub(crate) struct Demux<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<(Proto, SocketAddr), K>,
    /// Reverse index so a closed connection's entries go with it.
    owned: HashMap<K, Owned>,
}

#[derive(Debug, Default)]
struct Owned {
    ufrags: Vec<String>,
    addrs: Vec<(Proto, SocketAddr)>,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Self { by_ufrag: HashMap::new(), by_addr: HashMap::new(), owned: HashMap::new() }
    }
}

impl<K: Copy + Eq + Hash> Demux<K> {
    /// `key` answers binding requests for local ufrag `ufrag` (a new one after an ICE restart;
    /// the previous ones stay until the connection is forgotten, for checks still in flight).
    pub fn handle_ufrag(&mut self, ufrag: &str, key: K) {
        if let Some(prev) = self.by_ufrag.insert(ufrag.to_owned(), key)
            && prev != key
            && let Some(o) = self.owned.get_mut(&prev)
        {
            o.ufrags.retain(|u| u != ufrag);
        }
        let o = self.owned.entry(key).or_default();
        if !o.ufrags.iter().any(|u| u == ufrag) {
            o.ufrags.push(ufrag.to_owned());
        }
    }

    /// The connection a datagram from `from` belongs to, learning `from` from a binding request
    /// that names a known ufrag.
    pub fn route(&mut self, proto: Proto, from: SocketAddr, buf: &[u8]) -> Option<K> {
        if let Kind::BindingRequest(Some(ufrag)) = classify(buf)
            && let Some(&key) = self.by_ufrag.get(ufrag)
        {
            self.bind_addr(proto, from, key);
            return Some(key);
        }
        self.by_addr.get(&(proto, from)).copied()
    }

    fn bind_addr(&mut self, proto: Proto, from: SocketAddr, key: K) {
        let k = (proto, from);
        match self.by_addr.insert(k, key) {
            Some(prev) if prev == key => return,
            Some(prev) => {
                // The address moved to another connection (a port reused by a new client).
                if let Some(o) = self.owned.get_mut(&prev) {
                    o.addrs.retain(|a| *a != k);
                }
            }
            None => {}
        }
        self.owned.entry(key).or_default().addrs.push(k);
    }

    /// Drop every entry of `key` (the connection closed); returns the remote addresses it had.
    pub fn forget(&mut self, key: K) -> Vec<(Proto, SocketAddr)> {
        let mut gone = Vec::new();
        if let Some(o) = self.owned.remove(&key) {
            for u in o.ufrags {
                if self.by_ufrag.get(&u) == Some(&key) {
                    self.by_ufrag.remove(&u);
                }
            }
            for a in o.addrs {
                if self.by_addr.get(&a) == Some(&key) {
                    self.by_addr.remove(&a);
                    gone.push(a);
                }
            }
        }
        gone
    }

    /// Entries held (ufrags, addresses), for leak checks.
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rtc::stun::message::{BINDING_REQUEST as STUN_BINDING_REQUEST, Message};
    use rtc::stun::textattrs::Username;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut m = Message::new();
        m.build(&[Box::new(STUN_BINDING_REQUEST), Box::new(Username::new(rtc::stun::attributes::ATTR_USERNAME, username.to_owned()))])
            .unwrap();
        m.raw.clone()
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn binding_request_yields_our_ufrag() {
        assert_eq!(classify(&binding_request("sfuA:browserB")), Kind::BindingRequest(Some("sfuA")));
        assert_eq!(classify(&[0x80, 0x60, 0, 1]), Kind::Other); // RTP
        assert_eq!(classify(&[22, 0xfe, 0xfd, 0, 0]), Kind::Other); // DTLS
        let mut resp = binding_request("x:y");
        resp[0] = 0x01; // 0x0101: binding success response
        assert_eq!(classify(&resp), Kind::Stun);
    }

    #[test]
    fn first_check_binds_the_address_and_the_rest_follows_it() {
        let mut d = Demux::default();
        d.handle_ufrag("aaaa", 1u32);
        d.handle_ufrag("bbbb", 2u32);
        assert_eq!(d.route(Proto::Udp, addr(5000), &[0x80, 0x60]), None, "unknown address, not STUN");
        assert_eq!(d.route(Proto::Udp, addr(5000), &binding_request("bbbb:c")), Some(2));
        assert_eq!(d.route(Proto::Udp, addr(5000), &[0x80, 0x60]), Some(2), "SRTP follows the address");
        assert_eq!(d.route(Proto::Tcp, addr(5000), &[0x80, 0x60]), None, "TCP is another key");
        assert_eq!(d.route(Proto::Udp, addr(5001), &binding_request("zzzz:c")), None, "unknown ufrag");
        // An ICE restart: a new ufrag, same address.
        d.handle_ufrag("cccc", 2);
        assert_eq!(d.route(Proto::Udp, addr(5000), &binding_request("cccc:d")), Some(2));
        // A reused port now belongs to connection 1.
        assert_eq!(d.route(Proto::Udp, addr(5000), &binding_request("aaaa:e")), Some(1));
        assert_eq!(d.route(Proto::Udp, addr(5000), &[0x80]), Some(1));
        assert_eq!(d.forget(1), vec![(Proto::Udp, addr(5000))], "the addresses it had");
        assert_eq!(d.route(Proto::Udp, addr(5000), &[0x80]), None);
        d.forget(2);
        assert_eq!(d.len(), (0, 0), "nothing left behind");
    }

    proptest! {
        /// Any bytes at all: no panic, and anything not starting like STUN is `Other`.
        #[test]
        fn classify_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = classify(&buf);
            if buf.first().is_none_or(|b| *b > 3) {
                prop_assert_eq!(k, Kind::Other);
            }
        }

        /// The ufrag read is exactly what an encoder put before the colon.
        #[test]
        fn ufrag_round_trips_through_a_real_stun_encoder(ours in "[A-Za-z0-9+/]{4,32}", theirs in "[A-Za-z0-9+/]{4,32}") {
            let buf = binding_request(&format!("{ours}:{theirs}"));
            prop_assert_eq!(classify(&buf), Kind::BindingRequest(Some(ours.as_str())));
        }

        /// Whatever sequence of registrations, routes and forgets, forgetting every key empties
        /// the table (no entry outlives its connection).
        #[test]
        fn forgetting_every_connection_leaves_an_empty_table(
            ops in proptest::collection::vec((0u8..3, 0u32..4, 0u16..6), 0..60),
        ) {
            let mut d = Demux::default();
            for (op, key, port) in ops {
                match op {
                    0 => d.handle_ufrag(&format!("u{port}"), key),
                    1 => { d.route(Proto::Udp, addr(port), &binding_request(&format!("u{port}:x"))); }
                    _ => { d.forget(key); }
                }
            }
            for key in 0..4 {
                d.forget(key);
            }
            prop_assert_eq!(d.len(), (0, 0));
        }
    }
}
