//! L1: an in-process moka cache bounded in bytes, with TinyLFU admission (a
//! one-off text does not push out a popular one) and a TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::stats::{Tier, TierHealth, TierSnapshot, TierStats};
use crate::{CacheKey, Entry, MemoryConfig};

pub struct MemoryTier {
    cache: Cache<CacheKey, Entry>,
    capacity: u64,
    stats: Arc<TierStats>,
}

impl MemoryTier {
    pub fn new(config: &MemoryConfig) -> Self {
        let stats = Arc::new(TierStats::new(Tier::Memory));
        let counted = stats.clone();
        let mut builder = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_k: &CacheKey, v: &Entry| v.weight())
            .eviction_listener(move |_k, _v, cause| {
                if cause.was_evicted() {
                    counted.evicted(1);
                }
            });
        if config.ttl_secs > 0 {
            builder = builder.time_to_live(Duration::from_secs(config.ttl_secs));
        }
        Self {
            cache: builder.build(),
            capacity: config.max_bytes,
            stats,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySpace;

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

    #[test]
    fn entries_expire() {
        let tier = MemoryTier::new(&MemoryConfig {
            max_bytes: 1 << 20,
            ttl_secs: 1,
        });
        tier.put(key(1), Entry::new(vec![1.0], 1));
        assert!(tier.get_many(&[key(1)])[0].is_some());
        std::thread::sleep(Duration::from_millis(1100));
        assert!(tier.get_many(&[key(1)])[0].is_none());
    }
}
