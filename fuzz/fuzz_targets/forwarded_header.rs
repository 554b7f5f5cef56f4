//! The client address from arbitrary `X-Forwarded-For` / `Forwarded` bytes: never panics, is the
//! peer unless the peer is a trusted proxy, and is otherwise the peer or an address the header
//! holds.
#![no_main]
use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use shangliang::server::edge::{ClientHeader, client_addr, parse_cidr};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let proxies = [parse_cidr("10.0.0.0/8").unwrap(), parse_cidr("fd00::/8").unwrap()];
    let mut headers = HeaderMap::new();
    for part in rest.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append(if flags & 2 == 0 { "x-forwarded-for" } else { "forwarded" }, v);
        }
    }
    let peer: IpAddr = if flags & 1 == 1 { "10.1.2.3".parse().unwrap() } else { "198.51.100.7".parse().unwrap() };
    for which in [ClientHeader::XForwardedFor, ClientHeader::Forwarded] {
        let client = client_addr(peer, &headers, &proxies, which);
        if flags & 1 == 0 {
            assert_eq!(client, peer);
        }
    }
});
