//! Request ids for requests that arrive without one: random (version 4) UUIDs made
//! without a system call. Each thread keys SipHash with random keys of its own and
//! hashes a counter; the usual generator asks the kernel for fresh random bytes
//! for every request. `uuid` sets the version bits and formats.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use uuid::Uuid;

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
