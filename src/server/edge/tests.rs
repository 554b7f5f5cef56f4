use super::*;
use axum::http::HeaderValue;
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(s: &str) -> AddrKey {
    AddrKey::of(ip(s))
}

fn limits(max_pending: usize, per_address: usize, reserve: usize) -> GateLimits {
    GateLimits { max_pending, per_address, reserve, max_open: 10_000 }
}

#[test]
fn one_address_is_capped_while_others_still_get_in() {
    let mut g = Gate::new(limits(100, 3, 10));
    for _ in 0..3 {
        g.admit(key("127.0.0.2"), false, 0).unwrap();
    }
    assert_eq!(g.admit(key("127.0.0.2"), false, 0), Err(Refusal::PerAddress));
    g.admit(key("127.0.0.3"), false, 0).unwrap();
    g.release(key("127.0.0.2"));
    g.admit(key("127.0.0.2"), false, 0).unwrap();
    assert_eq!(g.pending(), 4);
}

#[test]
fn the_reserve_admits_only_addresses_that_hold_few_pending_connections() {
    // 20 slots, the last 6 reserved: two attackers fill the 14 open ones and want more.
    let mut g = Gate::new(limits(20, 100, 6));
    for i in 0..14 {
        let who = if i % 2 == 0 { "127.0.0.2" } else { "127.0.0.3" };
        g.admit(key(who), false, 0).unwrap();
    }
    assert_eq!(g.admit(key("127.0.0.2"), false, 0), Err(Refusal::Reserve));
    assert_eq!(g.admit(key("127.0.0.3"), false, 0), Err(Refusal::Reserve));
    // The health checker gets the reserve for a few overlapping probes, not more ...
    for _ in 0..RESERVE_PER_ADDRESS {
        g.admit(key("127.0.0.1"), false, 0).unwrap();
    }
    assert_eq!(g.admit(key("127.0.0.1"), false, 0), Err(Refusal::Reserve));
    // ... and moderators from elsewhere take the rest.
    g.admit(key("10.1.1.1"), false, 0).unwrap();
    g.admit(key("10.1.1.2"), false, 0).unwrap();
    assert_eq!(g.admit(key("10.1.1.3"), false, 0), Err(Refusal::Total));
    // When a health check ends, its slot is free again for the next newcomer.
    g.release(key("127.0.0.1"));
    g.admit(key("10.1.1.3"), false, 0).unwrap();
}

#[test]
fn a_trusted_proxy_is_not_capped_per_address_but_by_the_total() {
    let mut g = Gate::new(limits(20, 2, 0));
    for _ in 0..20 {
        g.admit(key("10.0.0.1"), true, 0).unwrap();
    }
    assert_eq!(g.admit(key("10.0.0.1"), true, 0), Err(Refusal::Total));
}

#[test]
fn nothing_is_admitted_within_the_file_headroom() {
    let mut g = Gate::new(GateLimits { max_pending: 100, per_address: 100, reserve: 0, max_open: 50 });
    for _ in 0..10 {
        g.admit(key("127.0.0.2"), false, 39).unwrap();
    }
    // 10 pending + 40 other files (websockets, ports ...) = the budget.
    assert_eq!(g.admit(key("127.0.0.9"), false, 40), Err(Refusal::FdBudget));
}

#[test]
fn one_ipv6_64_is_one_address_and_mapped_ipv4_is_ipv4() {
    assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
    assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    let mut g = Gate::new(limits(100, 2, 0));
    g.admit(key("2001:db8:1:2::1"), false, 0).unwrap();
    g.admit(key("2001:db8:1:2::2"), false, 0).unwrap();
    assert_eq!(g.admit(key("2001:db8:1:2::3"), false, 0), Err(Refusal::PerAddress));
}

#[test]
fn limits_follow_the_file_limit_unless_given() {
    let cfg = EdgeConfig::default();
    let l = GateLimits::resolve(&cfg, Some(20_000));
    assert_eq!((l.max_pending, l.reserve, l.per_address, l.max_open), (4096, 512, 64, 19_936));
    let l = GateLimits::resolve(&cfg, Some(2048));
    assert_eq!((l.max_pending, l.reserve, l.max_open), (496, 62, 1984));
    let given = EdgeConfig { max_pending: Some(10), pending_reserve: Some(50), ..EdgeConfig::default() };
    let l = GateLimits::resolve(&given, None);
    assert_eq!((l.max_pending, l.reserve), (10, 9), "the reserve never takes every slot");
}

fn proxies() -> Vec<IpNet> {
    vec![parse_cidr("10.0.0.0/8").unwrap(), parse_cidr("fd00::1").unwrap()]
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(client_addr(ip("198.51.100.1"), &h, &proxies(), ClientHeader::XForwardedFor), ip("198.51.100.1"));
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("203.0.113.9"));
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &[], ClientHeader::XForwardedFor), ip("10.0.0.5"));
}

#[test]
fn the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() {
    // The client put a lie on the left; two of our proxies appended after it.
    let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7"), ("x-forwarded-for", "10.0.0.8")]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("203.0.113.9"));
    // A hop that is no address ends the walk at the last proxy we trust.
    let h = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.7")]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("10.0.0.7"));
    // Only proxies: the leftmost of them.
    let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.7")]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("10.9.9.9"));
    // Ports and brackets are tolerated; no header: the proxy itself.
    let h = headers(&[("x-forwarded-for", "[2001:db8::5]:4711")]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("2001:db8::5"));
    assert_eq!(client_addr(ip("10.0.0.5"), &HeaderMap::new(), &proxies(), ClientHeader::XForwardedFor), ip("10.0.0.5"));
}

#[test]
fn a_client_cannot_push_the_proxies_hops_out_of_reach_with_a_long_header() {
    // 40 invented hops on the left, then what our proxy appended: the real client.
    let spoof = vec!["9.9.9.9"; 40].join(", ");
    let h = headers(&[("x-forwarded-for", &format!("{spoof}, 203.0.113.9"))]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("203.0.113.9"));
    let spoof = vec!["for=9.9.9.9"; 40].join(", ");
    let h = headers(&[("forwarded", &format!("{spoof}, for=203.0.113.9"))]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::Forwarded), ip("203.0.113.9"));
    // A chain of more trusted hops than are walked ends at the last one walked.
    let chain = vec!["10.0.0.7"; MAX_HOPS + 5].join(", ");
    let h = headers(&[("x-forwarded-for", &format!("203.0.113.9, {chain}"))]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("10.0.0.7"));
}

#[test]
fn forwarded_is_parsed_per_rfc_7239_and_only_when_configured() {
    let h = headers(&[
        ("forwarded", r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#),
        ("x-forwarded-for", "198.51.100.99"),
    ]);
    assert_eq!(client_addr(ip("fd00::1"), &h, &proxies(), ClientHeader::Forwarded), ip("2001:db8:cafe::17"));
    assert_eq!(client_addr(ip("fd00::1"), &h, &proxies(), ClientHeader::XForwardedFor), ip("198.51.100.99"));
    let h = headers(&[("forwarded", r#"for=192.0.2.60, for="_hidden", for=10.0.0.3"#)]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::Forwarded), ip("10.0.0.3"));
    let h = headers(&[("forwarded", r#"for="1.2.3.4, 5.6.7.8";proto=https"#)]);
    assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies(), ClientHeader::Forwarded), ip("10.0.0.5"));
}

#[test]
fn a_mapped_peer_address_counts_as_ipv4() {
    let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(client_addr(ip("::ffff:10.0.0.5"), &h, &proxies(), ClientHeader::XForwardedFor), ip("203.0.113.9"));
    assert_eq!(client_addr(ip("::ffff:198.51.100.1"), &h, &proxies(), ClientHeader::XForwardedFor), ip("198.51.100.1"));
}

#[test]
fn trusted_proxies_parse_as_cidrs_or_addresses() {
    assert!(parse_cidr("10.0.0.0/8").unwrap().contains(&ip("10.200.1.1")));
    assert!(parse_cidr("127.0.0.1").unwrap().contains(&ip("127.0.0.1")));
    assert!(!parse_cidr("127.0.0.1").unwrap().contains(&ip("127.0.0.2")));
    assert!(parse_cidr("10.0.0.0/33").is_err());
    assert!(parse_cidr("proxy.example").is_err());
}

proptest! {
    #[test]
    fn forwarding_headers_never_panic_and_name_the_peer_or_a_hop_they_contain(
        xff in "[0-9a-f:.,\\[\\] \"=;_A-Za-z]{0,120}",
        fwd in "[0-9a-f:.,\\[\\] \"=;_A-Za-z]{0,120}",
        trusted_peer in any::<bool>(),
        raw in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&xff) { h.append("x-forwarded-for", v); }
        if let Ok(v) = HeaderValue::from_str(&fwd) { h.append("forwarded", v); }
        if let Ok(v) = HeaderValue::from_bytes(&raw) { h.append("x-forwarded-for", v); }
        let peer = if trusted_peer { ip("10.0.0.5") } else { ip("198.51.100.1") };
        for which in [ClientHeader::XForwardedFor, ClientHeader::Forwarded] {
            let c = client_addr(peer, &h, &proxies(), which);
            if !trusted_peer {
                prop_assert_eq!(c, peer);
            } else if c != peer {
                // Whatever was chosen was written in the header (in some spelling).
                let text = format!("{xff} {fwd} {}", String::from_utf8_lossy(&raw));
                let v6 = matches!(c, IpAddr::V6(_));
                prop_assert!(v6 || text.contains(&c.to_string()), "{} not in {:?}", c, text);
            }
        }
    }

    #[test]
    fn the_gate_never_exceeds_its_caps_and_releases_exactly(
        ops in prop::collection::vec((0u8..6, any::<bool>(), any::<bool>()), 0..300),
    ) {
        let l = GateLimits { max_pending: 16, per_address: 6, reserve: 5, max_open: 1000 };
        let mut g = Gate::new(l);
        let mut open: Vec<AddrKey> = Vec::new();
        for (who, close, exempt) in ops {
            let k = AddrKey::of(IpAddr::V4(Ipv4Addr::new(127, 0, 0, who + 1)));
            if close {
                if let Some(pos) = open.iter().position(|o| *o == k) {
                    g.release(open.remove(pos));
                }
                continue;
            }
            let held = g.held_by(k);
            match g.admit(k, exempt, 0) {
                Ok(()) => {
                    prop_assert!(exempt || held < l.per_address);
                    prop_assert!(held < RESERVE_PER_ADDRESS || g.pending() <= l.max_pending - l.reserve);
                    open.push(k);
                }
                Err(Refusal::Reserve) => prop_assert!(held >= RESERVE_PER_ADDRESS),
                Err(_) => {}
            }
            prop_assert!(g.pending() <= l.max_pending);
            prop_assert_eq!(g.pending(), open.len());
        }
        for k in open.drain(..) {
            g.release(k);
        }
        prop_assert_eq!(g.pending(), 0);
        prop_assert!(g.held.is_empty());
    }
}
