//! Wall-clock time for the tiers' TTLs. Expiry is kept in unix milliseconds (the
//! disk tier stores it so, and it survives restarts), read through a [`Clock`] so
//! tests can move time by hand instead of sleeping.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// A clock shared by a tier and its background work.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock: what every tier uses unless given another.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

pub(crate) fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// When an entry written at `now` with a TTL of `ttl_ms` expires; 0 means never.
pub(crate) fn expiry(now: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        0
    } else {
        now.saturating_add(ttl_ms)
    }
}

/// Whether an entry stamped to expire at `expires` (0 = never) is gone at `now`.
pub(crate) fn expired(expires: u64, now: u64) -> bool {
    expires != 0 && expires <= now
}

/// The earlier of two expiries (0 = never): an entry copied from a tier that
/// expires it sooner must not outlive it there.
pub(crate) fn earliest(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}
