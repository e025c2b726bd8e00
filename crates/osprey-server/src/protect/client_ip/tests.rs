//! Which address a request counts as.

use axum::http::{HeaderMap, HeaderValue};

use super::*;

fn proxies(nets: &[&str]) -> TrustedProxies {
    TrustedProxies::new(nets.iter().map(|n| n.parse().expect("cidr")).collect())
}

fn xff(lines: &[&[u8]]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for l in lines {
        h.append(
            &X_FORWARDED_FOR,
            HeaderValue::from_bytes(l).expect("header value"),
        );
    }
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let p = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
    let h = xff(&[b"203.0.113.9"]);
    assert_eq!(
        p.client(ip("192.0.2.1"), &h),
        ip("192.0.2.1"),
        "untrusted peer"
    );
    assert_eq!(p.client(ip("10.1.2.3"), &h), ip("203.0.113.9"));
    assert_eq!(
        p.client(ip("2001:db8:ffff::1"), &h),
        ip("203.0.113.9"),
        "IPv6 proxy"
    );
    assert_eq!(
        p.client(ip("::ffff:10.1.2.3"), &h),
        ip("203.0.113.9"),
        "IPv4-mapped peer"
    );
    assert_eq!(
        TrustedProxies::default().client(ip("10.1.2.3"), &h),
        ip("10.1.2.3"),
        "no proxies configured"
    );
    assert_eq!(
        p.client(ip("10.1.2.3"), &HeaderMap::new()),
        ip("10.1.2.3"),
        "no header"
    );
}

#[test]
fn the_right_most_untrusted_address_is_the_client() {
    let p = proxies(&["10.0.0.0/8"]);
    let peer = ip("10.0.0.1");
    // The client wrote the left part; the proxies appended the rest.
    let h = xff(&[b"1.1.1.1, 198.51.100.7, 10.0.0.2, 10.0.0.3"]);
    assert_eq!(p.client(peer, &h), ip("198.51.100.7"));
    // Several header lines are one list, in order.
    let h = xff(&[b"1.1.1.1, 198.51.100.7", b"10.0.0.2", b" 10.0.0.3 "]);
    assert_eq!(p.client(peer, &h), ip("198.51.100.7"));
    // All trusted: the left-most.
    let h = xff(&[b"10.0.0.9, 10.0.0.2"]);
    assert_eq!(p.client(peer, &h), ip("10.0.0.9"));
    // Ports, as some proxies write them.
    let h = xff(&[b"198.51.100.7:5555"]);
    assert_eq!(p.client(peer, &h), ip("198.51.100.7"));
    let h = xff(&[b"[2001:db8::7]:5555"]);
    assert_eq!(p.client(peer, &h), ip("2001:db8::7"));
    // Malformed left of the client does not matter: it is never read.
    let h = xff(&[b"garbage, 198.51.100.7"]);
    assert_eq!(p.client(peer, &h), ip("198.51.100.7"));
}

#[test]
fn malformed_headers_fall_back_to_the_peer() {
    let p = proxies(&["10.0.0.0/8"]);
    let peer = ip("10.0.0.1");
    let bad: [&[u8]; 7] = [
        b"",
        b"unknown",
        b"198.51.100.7,",
        b"198.51.100.7, 10.0.0.2, nonsense",
        b"999.1.1.1",
        b"1.2.3.4/24",
        b"\xff\xfe",
    ];
    for b in bad {
        assert_eq!(p.client(peer, &xff(&[b])), peer, "{b:?}");
    }
    // A long chain of trusted hops stops at the cap, not at the end.
    let long = vec!["10.0.0.5"; 10_000].join(",");
    assert_eq!(p.client(peer, &xff(&[long.as_bytes()])), ip("10.0.0.5"));
}
