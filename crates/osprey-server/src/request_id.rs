//! Request ids for requests that arrive without one: random (version 4) UUIDs made
//! without a system call. Each thread keys SipHash with random keys of its own and
//! hashes a counter; the usual generator asks the kernel for fresh random bytes
//! for every request. `uuid` sets the version bits and formats.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use uuid::Uuid;

/// Longest client request id kept; a longer one is replaced by a new id.
const MAX_CLIENT_ID: usize = 128;

/// Drops a client's `x-request-id` that is longer than 128 bytes or holds anything
/// but visible ASCII, so a new one is made: the id is echoed in every answer and
/// written in every log line, and must not carry arbitrary bytes or sizes there.
pub fn keep_if_usable<B>(mut req: Request<B>) -> Request<B> {
    let usable = req.headers().get(X_REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= MAX_CLIENT_ID && b.iter().all(|c| c.is_ascii_graphic())
    });
    if !usable {
        req.headers_mut().remove(X_REQUEST_ID);
    }
    req
}

const X_REQUEST_ID: &str = "x-request-id";

#[derive(Debug, Clone, Copy, Default)]
pub struct MakeUuid;

impl MakeRequestId for MakeUuid {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = uuid_v4(random_u128()).hyphenated().encode_lower(&mut buf);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

fn random_u128() -> u128 {
    thread_local! {
        // std seeds each thread's keys from the operating system once.
        static KEYS: RandomState = RandomState::new();
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let n = COUNTER.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    KEYS.with(|k| {
        let hi = k.hash_one((n, 0u8));
        let lo = k.hash_one((n, 1u8));
        (u128::from(hi) << 64) | u128::from(lo)
    })
}

/// A version 4 UUID from random bits: the version and variant bits overwrite six.
fn uuid_v4(random: u128) -> Uuid {
    uuid::Builder::from_random_bytes(random.to_be_bytes()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(id: &[u8]) -> bool {
        let req = Request::builder()
            .header(
                X_REQUEST_ID,
                HeaderValue::from_bytes(id).expect("a header value"),
            )
            .body(())
            .expect("request");
        keep_if_usable(req).headers().contains_key(X_REQUEST_ID)
    }

    #[test]
    fn client_ids_are_kept_only_when_short_and_visible() {
        assert!(kept(b"abc-123_XYZ.req:1"));
        assert!(kept("x".repeat(128).as_bytes()));
        assert!(!kept("x".repeat(129).as_bytes()), "too long");
        assert!(!kept(b"has space"), "not visible ASCII");
        assert!(!kept(b"a\tb"), "control character");
        assert!(!kept(b""), "empty");
        assert!(!kept("caf\u{e9}".as_bytes()), "not ASCII");
    }

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        let a = uuid_v4(u128::MAX);
        assert_eq!(a.to_string(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let z = uuid_v4(0);
        assert_eq!(z.to_string(), "00000000-0000-4000-8000-000000000000");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(uuid_v4(random_u128())));
        }
    }
}
