//! Which address a request is from, for per-address limits: the TCP peer, or,
//! when the peer is a trusted proxy, the address its `X-Forwarded-For` names.
//!
//! As nginx's `real_ip_recursive`: the header is read from the right, skipping
//! trusted proxies; the first address that is not one is the client. Everything
//! left of it was written by the client and is ignored. A header that cannot be
//! read falls back to the peer.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Hops read from the right at most: more proxies than this in a row is not a
/// deployment, and the walk stays short whatever the header holds.
const MAX_HOPS: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        self.forwarded(headers).unwrap_or(peer)
    }

    /// The right-most address in `X-Forwarded-For` that is not a trusted proxy (the
    /// left-most one when all are); `None` when the header is absent or malformed.
    fn forwarded(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = None;
        let mut hops = 0;
        // Several header lines read as one list, in order.
        for line in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
            for entry in line.to_str().ok()?.rsplit(',') {
                let ip = parse_entry(entry)?;
                client = Some(ip);
                hops += 1;
                if !self.trusts(ip) || hops == MAX_HOPS {
                    return client;
                }
            }
        }
        client
    }
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:5678`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    e.parse::<IpAddr>()
        .or_else(|_| e.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests;
