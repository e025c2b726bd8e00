//! The three tiers behind one interface: lookups walk down memory → disk → Redis and
//! fill the tiers above a hit; writes go to memory at once and to disk and Redis
//! through their write-behind queues.

use serde::Serialize;

use crate::clock::{self, SharedClock};
use crate::stats::{CacheStats, Tier, TierHealth};
use crate::{CacheConfig, CacheKey, DiskTier, Entry, MemoryTier, RedisTier, Result};

/// A cached entry and the tier that answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub entry: Entry,
    pub tier: Tier,
}

pub struct TieredCache {
    memory: Option<MemoryTier>,
    disk: Option<DiskTier>,
    redis: Option<RedisTier>,
}

/// What `clear` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleared {
    pub disk: bool,
    pub memory: bool,
    pub redis_keys: Option<u64>,
}

impl TieredCache {
    /// Opens the configured tiers. Redis connects lazily, so this succeeds while
    /// Redis is down (the tier then reports degraded). Call inside a Tokio runtime.
    pub async fn open(config: &CacheConfig) -> Result<Self> {
        Self::open_with_clock(config, clock::system()).await
    }

    /// [`TieredCache::open`] with the clock the memory and disk tiers keep their
    /// TTLs by (Redis keeps its own).
    pub async fn open_with_clock(config: &CacheConfig, clock: SharedClock) -> Result<Self> {
        config.validate().map_err(crate::CacheError::Config)?;
        let memory = (config.memory.max_bytes > 0)
            .then(|| MemoryTier::with_clock(&config.memory, clock.clone()));
        let disk = match &config.disk.path {
            Some(path) => {
                let (disk, path) = (config.disk.clone(), path.clone());
                let opened = tokio::task::spawn_blocking(move || {
                    DiskTier::open_with_clock(&disk, &path, clock)
                })
                .await
                .map_err(|e| crate::CacheError::Disk(e.to_string()))??;
                Some(opened)
            }
            None => None,
        };
        let redis = match &config.redis.url {
            Some(url) => Some(RedisTier::connect(&config.redis, url)?),
            None => None,
        };
        Ok(Self {
            memory,
            disk,
            redis,
        })
    }

    /// Builds a cache from tiers made by hand.
    pub fn from_tiers(
        memory: Option<MemoryTier>,
        disk: Option<DiskTier>,
        redis: Option<RedisTier>,
    ) -> Self {
        Self {
            memory,
            disk,
            redis,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.memory.is_some() || self.disk.is_some() || self.redis.is_some()
    }

    pub fn disk(&self) -> Option<&DiskTier> {
        self.disk.as_ref()
    }

    pub fn redis(&self) -> Option<&RedisTier> {
        self.redis.as_ref()
    }

    /// Looks every key up, tier by tier, only asking a lower tier for what the
    /// upper ones missed.
    pub async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Found>> {
        let mut out: Vec<Option<Found>> = vec![None; keys.len()];
        let mut missing: Vec<usize> = (0..keys.len()).collect();
        if let Some(memory) = &self.memory {
            let found = memory.get_many(keys);
            missing.clear();
            for (i, f) in found.into_iter().enumerate() {
                match f {
                    Some(entry) => {
                        out[i] = Some(Found {
                            entry,
                            tier: Tier::Memory,
                        })
                    }
                    None => missing.push(i),
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        if let Some(disk) = &self.disk {
            let wanted: Vec<CacheKey> = missing.iter().map(|&i| keys[i]).collect();
            let found = disk.get_many(&wanted).await;
            missing = self.fill(keys, &missing, found, Tier::Disk, &mut out);
        }
        if missing.is_empty() {
            return out;
        }
        if let Some(redis) = &self.redis {
            let wanted: Vec<CacheKey> = missing.iter().map(|&i| keys[i]).collect();
            let found = redis.get_many(&wanted).await;
            self.fill(keys, &missing, found, Tier::Redis, &mut out);
        }
        out
    }

    /// Records a lower tier's answers and promotes its hits; returns what is still missing.
    fn fill(
        &self,
        keys: &[CacheKey],
        asked: &[usize],
        found: Vec<Option<Entry>>,
        tier: Tier,
        out: &mut [Option<Found>],
    ) -> Vec<usize> {
        let mut still = Vec::new();
        for (&i, f) in asked.iter().zip(found) {
            match f {
                Some(entry) => {
                    if let Some(m) = &self.memory {
                        m.put(keys[i], entry.clone());
                    }
                    if tier == Tier::Redis
                        && let Some(d) = &self.disk
                    {
                        d.put(keys[i], entry.clone());
                    }
                    out[i] = Some(Found { entry, tier });
                }
                None => still.push(i),
            }
        }
        still
    }

    /// Stores fresh results: in memory now, on disk and in Redis in the background.
    pub fn put_many(&self, items: &[(CacheKey, Entry)]) {
        for (key, entry) in items {
            if let Some(m) = &self.memory {
                m.put(*key, entry.clone());
            }
            if let Some(d) = &self.disk {
                d.put(*key, entry.clone());
            }
            if let Some(r) = &self.redis {
                r.put(*key, entry.clone());
            }
        }
    }

    /// Waits for queued disk and Redis writes (at shutdown, or in tests).
    pub async fn flush(&self) {
        if let Some(d) = &self.disk {
            d.flush().await;
        }
        if let Some(r) = &self.redis {
            r.flush().await;
        }
    }

    /// Empties every tier (Redis: only the keys under this instance's prefix).
    pub async fn clear(&self) -> Result<Cleared> {
        let mut cleared = Cleared::default();
        if let Some(m) = &self.memory {
            m.clear();
            cleared.memory = true;
        }
        if let Some(d) = &self.disk {
            d.clear().await?;
            cleared.disk = true;
        }
        if let Some(r) = &self.redis {
            cleared.redis_keys = Some(r.clear().await?);
        }
        Ok(cleared)
    }

    pub fn stats(&self) -> CacheStats {
        let mut tiers = Vec::new();
        if let Some(m) = &self.memory {
            tiers.push(m.snapshot());
        }
        if let Some(d) = &self.disk {
            tiers.push(d.snapshot());
        }
        if let Some(r) = &self.redis {
            tiers.push(r.snapshot());
        }
        CacheStats { tiers }
    }

    /// Each enabled tier's health, for readiness reports.
    pub fn health(&self) -> Vec<(Tier, TierHealth)> {
        self.stats()
            .tiers
            .into_iter()
            .map(|t| (t.tier, t.health))
            .collect()
    }

    /// Stops the disk writer after it committed what is queued.
    pub fn close(&self) {
        if let Some(d) = &self.disk {
            d.close();
        }
    }
}
