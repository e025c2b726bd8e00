//! L1: an in-process moka cache bounded in bytes, with TinyLFU admission (a
//! one-off text does not push out a popular one) and a TTL.
//!
//! moka keeps time by its own internal clock, which cannot be replaced from
//! outside the crate (and `expire_after` durations are measured on that clock too).
//! So each entry also carries its expiry in unix ms from the tier's [`Clock`],
//! checked on read: that stamp decides what a lookup sees, while moka's own TTL,
//! set to the same length, frees the memory of entries nobody reads again.
//!
//! [`Clock`]: crate::Clock

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use moka::sync::Cache;

use crate::clock::{self, SharedClock};
use crate::stats::{Tier, TierHealth, TierSnapshot, TierStats};
use crate::{CacheKey, Entry, MemoryConfig};

/// An entry and when it expires (unix ms, 0 = never).
#[derive(Clone)]
struct Stamped {
    entry: Entry,
    expires: u64,
}

pub struct MemoryTier {
    /// Replaced by a smaller or larger one when the size changes live (moka's
    /// capacity is fixed when it is built).
    cache: ArcSwap<Cache<CacheKey, Stamped>>,
    capacity: AtomicU64,
    /// The size asked for in the configuration; `capacity` is below it while
    /// memory defence keeps the tier smaller.
    configured: AtomicU64,
    ttl_ms: AtomicU64,
    /// Set while memory runs short: lookups still answer, nothing new is stored.
    paused: AtomicBool,
    clock: SharedClock,
    stats: Arc<TierStats>,
}

fn build(max_bytes: u64, ttl_secs: u64, stats: &Arc<TierStats>) -> Cache<CacheKey, Stamped> {
    let counted = stats.clone();
    let mut builder = Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|_k: &CacheKey, v: &Stamped| v.entry.weight())
        .eviction_listener(move |_k, _v, cause| {
            if cause.was_evicted() {
                counted.evicted(1);
            }
        });
    if ttl_secs > 0 {
        builder = builder.time_to_live(Duration::from_secs(ttl_secs));
    }
    builder.build()
}

impl MemoryTier {
    pub fn new(config: &MemoryConfig) -> Self {
        Self::with_clock(config, clock::system())
    }

    /// [`MemoryTier::new`] with the clock that stamps and checks expiry.
    pub fn with_clock(config: &MemoryConfig, clock: SharedClock) -> Self {
        let stats = Arc::new(TierStats::new(Tier::Memory));
        Self {
            cache: ArcSwap::from_pointee(build(config.max_bytes, config.ttl_secs, &stats)),
            capacity: AtomicU64::new(config.max_bytes),
            configured: AtomicU64::new(config.max_bytes),
            ttl_ms: AtomicU64::new(config.ttl_secs.saturating_mul(1000)),
            paused: AtomicBool::new(false),
            clock,
            stats,
        }
    }

    /// Bytes the tier may hold now.
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// The size the configuration asks for.
    pub fn configured(&self) -> u64 {
        self.configured.load(Ordering::Relaxed)
    }

    /// Sets the configured size and lifetime, and rebuilds the tier at them.
    pub fn reconfigure(&self, max_bytes: u64, ttl_secs: u64) {
        self.configured.store(max_bytes, Ordering::Relaxed);
        self.resize(max_bytes, ttl_secs);
    }

    /// Seconds an entry lives now (0: until evicted).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_ms.load(Ordering::Relaxed) / 1000
    }

    /// Rebuilds the tier at `max_bytes` and `ttl_secs`, keeping what fits: the
    /// entries are offered to the new cache, whose admission policy picks among
    /// them once it is full. Writes made meanwhile may be lost (it is a cache).
    /// Blocking: it walks every entry.
    pub fn resize(&self, max_bytes: u64, ttl_secs: u64) {
        let fresh = build(max_bytes, ttl_secs, &self.stats);
        let old = self.cache.load_full();
        for (key, stamped) in old.iter() {
            fresh.insert(*key, stamped);
        }
        fresh.run_pending_tasks();
        self.capacity.store(max_bytes, Ordering::Relaxed);
        self.ttl_ms
            .store(ttl_secs.saturating_mul(1000), Ordering::Relaxed);
        self.cache.store(Arc::new(fresh));
        // What the old cache held beyond the new size goes with it.
        old.invalidate_all();
    }

    /// Stops storing new entries (`true`), or resumes.
    pub fn pause_fills(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn fills_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        let cache = self.cache.load();
        cache.run_pending_tasks();
        cache.weighted_size()
    }

    /// Looks up every key; `None` where absent or expired.
    pub fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        let t = Instant::now();
        let now = self.clock.now_ms();
        let found: Vec<Option<Entry>> = keys.iter().map(|k| self.get(k, now)).collect();
        self.stats.answered(&found, t);
        found
    }

    fn get(&self, key: &CacheKey, now: u64) -> Option<Entry> {
        let cache = self.cache.load();
        let stamped = cache.get(key)?;
        if clock::expired(stamped.expires, now) {
            // Counted as moka counts its own expiries: an eviction.
            cache.invalidate(key);
            self.stats.evicted(1);
            return None;
        }
        Some(stamped.entry)
    }

    pub fn put(&self, key: CacheKey, entry: Entry) {
        self.put_until(key, entry, 0);
    }

    /// Stores an entry that must be gone by `deadline` (unix ms, 0 = no bound)
    /// even when this tier's TTL would keep it longer: a copy of an entry expiring
    /// sooner elsewhere.
    pub fn put_until(&self, key: CacheKey, entry: Entry, deadline: u64) {
        if self.fills_paused() {
            return;
        }
        let expires = clock::expiry(self.clock.now_ms(), self.ttl_ms.load(Ordering::Relaxed));
        let expires = clock::earliest(expires, deadline);
        self.cache.load().insert(key, Stamped { entry, expires });
    }

    pub fn clear(&self) {
        let cache = self.cache.load();
        cache.invalidate_all();
        cache.run_pending_tasks();
    }

    pub fn snapshot(&self) -> TierSnapshot {
        let cache = self.cache.load();
        cache.run_pending_tasks();
        let entries = cache.entry_count();
        let bytes = cache.weighted_size();
        self.stats.size(entries, bytes);
        let mut s = self.stats.snapshot(TierHealth::ok());
        s.entries = Some(entries);
        s.bytes = Some(bytes);
        s.capacity_bytes = Some(self.capacity());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySpace;
    use crate::testkit::ManualClock;

    fn key(i: usize) -> CacheKey {
        KeySpace::new("m", "r").key(&i.to_string())
    }

    #[test]
    fn stays_within_its_bytes_and_counts_evictions() {
        let entry = Entry::new(vec![0.0f32; 384], 3);
        let tier = MemoryTier::new(&MemoryConfig {
            max_bytes: u64::from(entry.weight()) * 10,
            ttl_secs: 0,
        });
        for i in 0..100 {
            tier.put(key(i), entry.clone());
            // Frequency matters to TinyLFU: read what is there so admission sees use.
            let _ = tier.get_many(&[key(i)]);
        }
        let s = tier.snapshot();
        assert!(
            s.bytes.expect("bytes") <= u64::from(entry.weight()) * 10,
            "{s:?}"
        );
        assert!(s.entries.expect("entries") <= 10);
        assert!(s.evictions > 0 || s.entries.expect("entries") < 100);
    }

    /// A 1 MiB tier on a clock moved by hand.
    fn timed_tier(ttl_secs: u64) -> (MemoryTier, ManualClock) {
        let clock = ManualClock::new();
        let config = MemoryConfig {
            max_bytes: 1 << 20,
            ttl_secs,
        };
        (MemoryTier::with_clock(&config, clock.shared()), clock)
    }

    #[test]
    fn entries_expire() {
        let (tier, clock) = timed_tier(1);
        tier.put(key(1), Entry::new(vec![1.0], 1));
        assert!(tier.get_many(&[key(1)])[0].is_some());
        clock.advance(Duration::from_millis(999));
        assert!(tier.get_many(&[key(1)])[0].is_some(), "alive until its TTL");
        clock.advance(Duration::from_millis(1));
        assert!(tier.get_many(&[key(1)])[0].is_none(), "expired at its TTL");
        let s = tier.snapshot();
        assert_eq!((s.entries, s.evictions), (Some(0), 1), "{s:?}");
    }

    #[test]
    fn no_ttl_keeps_entries() {
        let (tier, clock) = timed_tier(0);
        tier.put(key(1), Entry::new(vec![1.0], 1));
        clock.advance(Duration::from_secs(365 * 24 * 3600));
        assert!(tier.get_many(&[key(1)])[0].is_some());
    }
}
