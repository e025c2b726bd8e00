//! The three tiers behind one interface: lookups walk down memory → disk → Redis and
//! fill the tiers above a hit; writes go to memory at once and to disk and Redis
//! through their write-behind queues.

use serde::Serialize;

use crate::clock::{self, SharedClock};
use crate::redis_tier::Fetched;
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
    /// Turns Redis's remaining TTLs into the expiry of the copies made above it.
    clock: SharedClock,
    share_across_keys: bool,
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
                let (disk, path, clock) = (config.disk.clone(), path.clone(), clock.clone());
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
            clock,
            share_across_keys: config.share_across_keys,
        })
    }

    /// Builds a cache from tiers made by hand, shared across keys, on the system clock.
    pub fn from_tiers(
        memory: Option<MemoryTier>,
        disk: Option<DiskTier>,
        redis: Option<RedisTier>,
    ) -> Self {
        Self {
            memory,
            disk,
            redis,
            clock: clock::system(),
            share_across_keys: true,
        }
    }

    /// Whether callers with different credentials may read each other's entries
    /// (`cache.share_across_keys`); when not, the caller's identity must be part
    /// of every key.
    pub fn shares_across_keys(&self) -> bool {
        self.share_across_keys
    }

    pub fn is_enabled(&self) -> bool {
        self.memory.is_some() || self.disk.is_some() || self.redis.is_some()
    }

    pub fn memory(&self) -> Option<&MemoryTier> {
        self.memory.as_ref()
    }

    /// Applies new sizes and lifetimes to the tiers that are on. Blocking (the
    /// memory tier is rebuilt when its size or lifetime changes). Turning a tier
    /// on or off, or moving it, takes a restart.
    pub fn retune(
        &self,
        memory: &crate::MemoryConfig,
        disk: &crate::DiskConfig,
        redis_ttl_secs: u64,
    ) {
        if let Some(m) = &self.memory
            && (m.configured(), m.ttl_secs()) != (memory.max_bytes, memory.ttl_secs)
        {
            m.reconfigure(memory.max_bytes, memory.ttl_secs);
        }
        if let Some(d) = &self.disk {
            d.set_bounds(disk.max_bytes, disk.ttl_secs);
        }
        if let Some(r) = &self.redis {
            r.set_ttl(redis_ttl_secs);
        }
    }

    pub fn disk(&self) -> Option<&DiskTier> {
        self.disk.as_ref()
    }

    pub fn redis(&self) -> Option<&RedisTier> {
        self.redis.as_ref()
    }

    /// Looks every key up, tier by tier, only asking a lower tier for what the
    /// upper ones missed. Entries with a NaN or infinity are not served.
    pub async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Found>> {
        self.lookup(keys, None).await
    }

    /// [`TieredCache::get_many`] for a model whose outputs have `dims` values: an
    /// entry of another length, or with a NaN or infinity, is not served nor copied
    /// into an upper tier (a disk one is deleted).
    pub async fn get_many_of(&self, keys: &[CacheKey], dims: usize) -> Vec<Option<Found>> {
        self.lookup(keys, Some(dims)).await
    }

    async fn lookup(&self, keys: &[CacheKey], dims: Option<usize>) -> Vec<Option<Found>> {
        let mut out: Vec<Option<Found>> = vec![None; keys.len()];
        let mut missing: Vec<usize> = (0..keys.len()).collect();
        // Memory holds only what the model computed or a lower tier passed.
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
            let found = found
                .into_iter()
                .zip(&wanted)
                .map(|(f, key)| {
                    let entry = f?;
                    match admit(&entry, dims) {
                        Ok(()) => Some(Fetched { entry, ttl: None }),
                        Err(e) => {
                            tracing::warn!(error = %e, "dropping a disk cache entry");
                            disk.reject(*key);
                            None
                        }
                    }
                })
                .collect();
            missing = self.fill(keys, &missing, found, Tier::Disk, &mut out);
        }
        if missing.is_empty() {
            return out;
        }
        if let Some(redis) = &self.redis {
            let wanted: Vec<CacheKey> = missing.iter().map(|&i| keys[i]).collect();
            let found = redis
                .fetch_many(&wanted)
                .await
                .into_iter()
                .map(|f| {
                    let f = f?;
                    match admit(&f.entry, dims) {
                        Ok(()) => Some(f),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring a redis cache entry");
                            redis.rejected();
                            None
                        }
                    }
                })
                .collect();
            self.fill(keys, &missing, found, Tier::Redis, &mut out);
        }
        out
    }

    /// Records a lower tier's answers and promotes its hits, never beyond the
    /// lifetime they have below; returns what is still missing.
    fn fill(
        &self,
        keys: &[CacheKey],
        asked: &[usize],
        found: Vec<Option<Fetched>>,
        tier: Tier,
        out: &mut [Option<Found>],
    ) -> Vec<usize> {
        let mut still = Vec::new();
        let now = self.clock.now_ms();
        for (&i, f) in asked.iter().zip(found) {
            match f {
                Some(Fetched { entry, ttl }) => {
                    let deadline = ttl.map_or(0, |t| {
                        now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
                            .max(1)
                    });
                    if let Some(m) = &self.memory {
                        m.put_until(keys[i], entry.clone(), deadline);
                    }
                    if tier == Tier::Redis
                        && let Some(d) = &self.disk
                    {
                        d.put_until(keys[i], entry.clone(), deadline);
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

    /// Empties one tier; `None` if it is not enabled.
    pub async fn clear_tier(&self, tier: Tier) -> Result<Option<Cleared>> {
        let mut cleared = Cleared::default();
        match tier {
            Tier::Memory => {
                let Some(m) = &self.memory else {
                    return Ok(None);
                };
                m.clear();
                cleared.memory = true;
            }
            Tier::Disk => {
                let Some(d) = &self.disk else { return Ok(None) };
                d.clear().await?;
                cleared.disk = true;
            }
            Tier::Redis => {
                let Some(r) = &self.redis else {
                    return Ok(None);
                };
                cleared.redis_keys = Some(r.clear().await?);
            }
        }
        Ok(Some(cleared))
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

/// Whether a lower tier's entry may be served: the expected length when known,
/// finite values always.
fn admit(entry: &Entry, dims: Option<usize>) -> Result<()> {
    entry.check(dims.unwrap_or(entry.vector.len()))
}
