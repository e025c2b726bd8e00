//! L1: an in-process moka cache bounded in bytes, with TinyLFU admission (a
//! one-off text does not push out a popular one) and a TTL.

use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::stats::{Tier, TierHealth, TierSnapshot, TierStats};
use crate::{CacheKey, Entry, MemoryConfig};

pub struct MemoryTier {
    cache: Cache<CacheKey, Entry>,
    capacity: u64,
    stats: TierStats,
}

impl MemoryTier {
    pub fn new(config: &MemoryConfig) -> Self {
        let mut builder = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_k: &CacheKey, v: &Entry| v.weight());
        if config.ttl_secs > 0 {
            builder = builder.time_to_live(Duration::from_secs(config.ttl_secs));
        }
        Self {
            cache: builder.build(),
            capacity: config.max_bytes,
            stats: TierStats::new(Tier::Memory),
        }
    }

    /// Looks up every key; `None` where absent.
    pub fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        let t = Instant::now();
        let found: Vec<Option<Entry>> = keys.iter().map(|k| self.cache.get(k)).collect();
        let hits = found.iter().filter(|f| f.is_some()).count() as u64;
        self.stats
            .lookups(hits, keys.len() as u64 - hits, t.elapsed());
        found
    }

    pub fn put(&self, key: CacheKey, entry: Entry) {
        self.cache.insert(key, entry);
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    pub fn snapshot(&self) -> TierSnapshot {
        self.cache.run_pending_tasks();
        let entries = self.cache.entry_count();
        let bytes = self.cache.weighted_size();
        self.stats.size(entries, bytes);
        let mut s = self.stats.snapshot(TierHealth::ok());
        s.entries = Some(entries);
        s.bytes = Some(bytes);
        s.capacity_bytes = Some(self.capacity);
        s
    }
}
