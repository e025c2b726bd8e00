//! Failed authentications per client address (GCRA), checked before any key is
//! hashed or any signature verified: a flood of bad credentials from one address
//! costs one table lookup each once its burst is spent.
//!
//! Unlike the request limits, a cell is taken only when a request fails, and the
//! check before authenticating takes nothing, so governor's check-and-take does not
//! fit. The table is bounded: an address sprayer cannot grow it past
//! [`MAX_TRACKED`]; once a shard is full, the addresses it cannot hold share one
//! bucket.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::clock::Clock;

use super::TokioClock;
use crate::ApiError;

/// Addresses tracked at most, over all shards (about 3 MB).
pub const MAX_TRACKED: usize = 64 * 1024;
/// Shards, so concurrent requests seldom wait on the same lock.
const SHARDS: usize = 64;
const PER_SHARD: usize = MAX_TRACKED / SHARDS;

/// One address's state: its theoretical arrival time, since the clock's origin.
type Tat = Duration;

struct Shard {
    tats: HashMap<IpAddr, Tat>,
    /// Whether `tats` is full: its addresses' failures go to the overflow bucket.
    full: bool,
    /// No entry's bucket is full again before then: sweeping sooner finds nothing,
    /// so a full shard under a spray is not swept on every failure.
    next_sweep: Duration,
}

pub struct FailureLimiter {
    /// Time one failure takes to be forgiven (1 / rate).
    period: Duration,
    /// How far ahead of now an address's arrival time may run: `burst` periods.
    tolerance: Duration,
    per_second: f64,
    burst: u32,
    shards: Box<[Mutex<Shard>]>,
    /// Keyed with a random seed: an attacker cannot aim its addresses at one shard.
    hasher: RandomState,
    /// The bucket shared by addresses a full shard cannot hold.
    overflow: Mutex<Tat>,
    /// Addresses tracked, so the usual case (no failures lately) takes no lock.
    tracked: AtomicUsize,
    clock: TokioClock,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is a number per address; a panic elsewhere cannot leave it torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FailureLimiter {
    /// `per_second` is checked by `LimitsConfig::validate` (finite, not tiny);
    /// `burst` 0 counts as 1.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = burst.max(1);
        let period = Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(Duration::MAX);
        Self {
            period,
            tolerance: period.saturating_mul(burst),
            per_second,
            burst,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        full: false,
                        next_sweep: Duration::ZERO,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            overflow: Mutex::new(Duration::ZERO),
            tracked: AtomicUsize::new(0),
            clock: TokioClock::default(),
        }
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<Shard> {
        let i = (self.hasher.hash_one(ip) as usize) % SHARDS;
        &self.shards[i]
    }

    /// Whether `ip` (already keyed: IPv6 by /64) may try to authenticate now.
    /// Takes nothing from its bucket.
    pub fn admit(&self, ip: &IpAddr) -> Result<(), ApiError> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        let tat = {
            let mut shard = lock(self.shard(ip));
            match shard.tats.get(ip) {
                // Its bucket is full again: forgotten, as if it had never failed.
                Some(&tat) if tat <= now => {
                    shard.tats.remove(ip);
                    self.tracked.fetch_sub(1, Ordering::Relaxed);
                    return Ok(());
                }
                Some(&tat) => tat,
                None if shard.full => *lock(&self.overflow),
                None => return Ok(()),
            }
        };
        // One more failure would push the arrival time past the tolerance.
        let next = tat.max(now).saturating_add(self.period);
        match next.checked_sub(now) {
            Some(ahead) if ahead > self.tolerance => Err(self.refusal(ahead - self.tolerance)),
            _ => Ok(()),
        }
    }

    /// Counts one failed authentication against `ip`.
    pub fn record(&self, ip: &IpAddr) {
        let now = self.clock.now();
        let mut shard = lock(self.shard(ip));
        if let Some(tat) = shard.tats.get_mut(ip) {
            *tat = self.advance(*tat, now);
            return;
        }
        if shard.tats.len() >= PER_SHARD && now >= shard.next_sweep {
            // Forget the addresses whose buckets are full again before giving up.
            let before = shard.tats.len();
            let mut earliest = Duration::MAX;
            shard.tats.retain(|_, tat| {
                let keep = *tat > now;
                if keep {
                    earliest = earliest.min(*tat);
                }
                keep
            });
            shard.next_sweep = earliest;
            self.tracked
                .fetch_sub(before - shard.tats.len(), Ordering::Relaxed);
        }
        shard.full = shard.tats.len() >= PER_SHARD;
        if shard.full {
            drop(shard);
            let mut o = lock(&self.overflow);
            *o = self.advance(*o, now);
        } else {
            shard.tats.insert(*ip, self.advance(Duration::ZERO, now));
            self.tracked.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The arrival time after one more failure; never more than the tolerance
    /// ahead, so failures that raced past `admit` do not lengthen the wait.
    fn advance(&self, tat: Tat, now: Duration) -> Tat {
        tat.max(now)
            .saturating_add(self.period)
            .min(now.saturating_add(self.tolerance))
    }

    fn refusal(&self, wait: Duration) -> ApiError {
        // Whole seconds, rounded up: a client that waits that long may try again.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::RateLimited {
            message: format!(
                "too many failed authentications from this address ({} per second, burst {}); retry in {} s",
                self.per_second,
                self.burst,
                secs.max(1)
            ),
            retry_after_secs: secs.max(1),
        }
    }

    /// Addresses tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
