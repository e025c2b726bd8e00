//! Request ids for requests that arrive without one: random (version 4) UUIDs made
//! without a system call. Each thread keys SipHash with random keys of its own and
//! hashes a counter; the usual generator asks the kernel for fresh random bytes
//! and allocates twice for every request.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

#[derive(Debug, Clone, Copy, Default)]
pub struct MakeUuid;

impl MakeRequestId for MakeUuid {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_bytes(&uuid_v4(random_u128()))
            .ok()
            .map(RequestId::new)
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

/// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx` with the version and variant bits set.
fn uuid_v4(random: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = (random & 0xffff_ffff_ffff_0fff_3fff_ffff_ffff_ffff) | 0x4000_8000_0000_0000_0000;
    let mut out = [b'-'; 36];
    let mut nibble: u32 = 32;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        nibble -= 1;
        *slot = HEX[((bits >> (nibble * 4)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        let a = uuid_v4(u128::MAX);
        assert_eq!(&a, b"ffffffff-ffff-4fff-bfff-ffffffffffff");
        let z = uuid_v4(0);
        assert_eq!(&z, b"00000000-0000-4000-8000-000000000000");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(uuid_v4(random_u128())));
        }
    }
}
