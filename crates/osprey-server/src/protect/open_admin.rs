//! With auth off, admin routes (profiles, cache clearing, model changes, the
//! dashboard's data) answer only clients on this machine, unless the operator
//! opens them on purpose (`server.allow_open_admin`).

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::client_ip::TrustedProxies;

/// Whether an admin request from `peer` may be served with auth off.
pub(super) fn allowed(
    allow_open_admin: bool,
    proxies: &TrustedProxies,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> bool {
    if allow_open_admin {
        return true;
    }
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return false;
    };
    let client = proxies.client(peer, headers);
    if client != peer {
        // A trusted proxy named the client.
        return client.is_loopback();
    }
    // A local peer that forwards for someone else (a proxy on this machine that
    // is not in `trusted_proxies`) is not a local client.
    let forwarded = headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
    peer.is_loopback() && !forwarded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn only_local_clients_unless_opened() {
        let none = TrustedProxies::default();
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let local6: IpAddr = "::1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let remote: IpAddr = "192.0.2.7".parse().expect("ip");
        let plain = headers(&[]);
        for ip in [local, local6, mapped] {
            assert!(allowed(false, &none, Some(ip), &plain), "{ip}");
        }
        assert!(!allowed(false, &none, Some(remote), &plain));
        assert!(!allowed(false, &none, None, &plain));
        let xff = headers(&[("x-forwarded-for", "198.51.100.3")]);
        assert!(!allowed(false, &none, Some(local), &xff));
        let fwd = headers(&[("forwarded", "for=198.51.100.3")]);
        assert!(!allowed(false, &none, Some(local), &fwd));
        assert!(allowed(true, &none, Some(remote), &xff));
    }
}
