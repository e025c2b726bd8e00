//! Per-tier counters. Each event bumps the tier's own atomic counter (for
//! `/admin/cache` and `osprey cache stats`) and emits the matching telemetry event
//! in one call, so the two can never disagree. Lookup durations, taken on every
//! request, go to a striped histogram of the tier's own, which the server renders
//! as `osprey_cache_lookup_duration_seconds` from the tier's snapshot.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use osprey_metrics::event::{
    CacheCorrupt, CacheErrored, CacheEvicted, CacheLookup, CacheLookupCounters, CacheSize,
    CacheSkipped, CacheWriteDropped, CacheWritten, Event,
};
use osprey_metrics::{HistogramSnapshot, LatencyHistogram};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Memory,
    Disk,
    Redis,
}

impl Tier {
    pub fn label(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Disk => "disk",
            Tier::Redis => "redis",
        }
    }

    /// The `x-cache` value for a response served entirely from this tier.
    pub fn hit_header(self) -> &'static str {
        match self {
            Tier::Memory => "hit-l1",
            Tier::Disk => "hit-l2",
            Tier::Redis => "hit-l3",
        }
    }
}

#[derive(Debug)]
pub struct TierStats {
    tier: Tier,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
    writes: AtomicU64,
    dropped_writes: AtomicU64,
    evictions: AtomicU64,
    /// Resolved on first use rather than with the tier, which may open before the
    /// recorder is installed.
    lookup: OnceLock<CacheLookupCounters>,
    lookup_seconds: LatencyHistogram,
}

/// A snapshot of one tier, as served by `/admin/cache` (fields in alphabetical
/// order, the order that body has always listed them in).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierSnapshot {
    /// Bytes, capacity and entries are given when the tier can tell cheaply.
    pub bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub corrupt: u64,
    pub dropped_writes: u64,
    pub entries: Option<u64>,
    pub errors: u64,
    pub evictions: u64,
    pub health: TierHealth,
    pub hit_rate: f64,
    pub hits: u64,
    /// How long lookups took (for the Prometheus scrape, not the JSON).
    #[serde(skip)]
    pub lookup_seconds: HistogramSnapshot,
    pub misses: u64,
    pub tier: Tier,
    pub writes: u64,
}

/// Whether a tier answers; serialized as `ok` or `degraded`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierHealth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub status: HealthStatus,
}

impl TierHealth {
    pub fn ok() -> Self {
        Self {
            status: HealthStatus::Ok,
            reason: None,
        }
    }

    pub fn degraded(reason: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            reason: Some(reason.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CacheStats {
    pub tiers: Vec<TierSnapshot>,
}

impl TierStats {
    pub fn new(tier: Tier) -> Self {
        Self {
            tier,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            dropped_writes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            lookup: OnceLock::new(),
            lookup_seconds: LatencyHistogram::default(),
        }
    }

    /// Counts one lookup's answers (a hit where something was found) and its time.
    pub fn answered<T>(&self, found: &[Option<T>], started: Instant) {
        let hits = found.iter().filter(|f| f.is_some()).count() as u64;
        self.lookups(hits, found.len() as u64 - hits, started.elapsed());
    }

    pub fn lookups(&self, hits: u64, misses: u64, took: Duration) {
        let counters = self
            .lookup
            .get_or_init(|| CacheLookupCounters::new(self.tier.label()));
        if hits > 0 {
            self.hits.fetch_add(hits, Ordering::Relaxed);
        }
        if misses > 0 {
            self.misses.fetch_add(misses, Ordering::Relaxed);
        }
        CacheLookup { hits, misses }.emit(counters);
        self.lookup_seconds.record(took);
    }

    pub fn error(&self, items: u64) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        CacheErrored {
            tier: self.tier.label(),
            items,
        }
        .emit();
    }

    pub fn corrupt(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        CacheCorrupt {
            tier: self.tier.label(),
        }
        .emit();
    }

    pub fn written(&self, n: u64) {
        self.writes.fetch_add(n, Ordering::Relaxed);
        CacheWritten {
            tier: self.tier.label(),
            entries: n,
        }
        .emit();
    }

    pub fn dropped(&self, n: u64) {
        self.dropped_writes.fetch_add(n, Ordering::Relaxed);
        CacheWriteDropped {
            tier: self.tier.label(),
            entries: n,
        }
        .emit();
    }

    pub fn evicted(&self, n: u64) {
        self.evictions.fetch_add(n, Ordering::Relaxed);
        CacheEvicted {
            tier: self.tier.label(),
            entries: n,
        }
        .emit();
    }

    /// Publishes the tier's size as gauges.
    pub fn size(&self, entries: u64, bytes: u64) {
        CacheSize {
            tier: self.tier.label(),
            entries,
            bytes,
        }
        .emit();
    }

    pub fn snapshot(&self, health: TierHealth) -> TierSnapshot {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let total = hits + misses;
        TierSnapshot {
            tier: self.tier,
            hits,
            misses,
            hit_rate: if total == 0 {
                0.0
            } else {
                hits as f64 / total as f64
            },
            errors: self.errors.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            dropped_writes: self.dropped_writes.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: None,
            bytes: None,
            capacity_bytes: None,
            health,
            lookup_seconds: self.lookup_seconds.snapshot(),
        }
    }
}

impl TierStats {
    /// Lookups not attempted because the tier is unavailable (circuit open).
    pub fn skipped(&self, items: u64) {
        CacheSkipped {
            tier: self.tier.label(),
            items,
        }
        .emit();
    }
}
