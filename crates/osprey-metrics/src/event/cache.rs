//! Cache tiers: lookups, failures, writes, evictions and size, by tier label.

use super::{Event, name};

/// The hit and miss counters of one tier, resolved once: a registry lookup with
/// labels costs allocations and a hash each time, and lookups run on every request.
#[derive(Debug)]
pub struct CacheLookupCounters {
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl CacheLookupCounters {
    /// Resolve after the recorder is installed: handles taken before stay no-ops.
    pub fn new(tier: &'static str) -> Self {
        Self {
            hits: metrics::counter!(name::CACHE_REQUESTS, "tier" => tier, "result" => "hit"),
            misses: metrics::counter!(name::CACHE_REQUESTS, "tier" => tier, "result" => "miss"),
        }
    }
}

/// One lookup of several keys in a tier
/// (`osprey_cache_requests_total{tier,result="hit"|"miss"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLookup {
    pub hits: u64,
    pub misses: u64,
}

impl CacheLookup {
    /// Counts on the tier's resolved counters. Runs on every request: no log line.
    pub fn emit(self, counters: &CacheLookupCounters) {
        if self.hits > 0 {
            counters.hits.increment(self.hits);
        }
        if self.misses > 0 {
            counters.misses.increment(self.misses);
        }
    }
}

/// A tier failed to answer for `items` keys (`osprey_cache_requests_total{result="error"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheErrored {
    pub tier: &'static str,
    pub items: u64,
}

impl Event for CacheErrored {
    fn emit(self) {
        metrics::counter!(name::CACHE_REQUESTS, "tier" => self.tier, "result" => "error")
            .increment(self.items);
        tracing::debug!(tier = self.tier, items = self.items, "cache tier failed");
    }
}

/// Lookups not attempted because the tier is unavailable (circuit open)
/// (`osprey_cache_requests_total{result="skipped"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSkipped {
    pub tier: &'static str,
    pub items: u64,
}

impl Event for CacheSkipped {
    fn emit(self) {
        metrics::counter!(name::CACHE_REQUESTS, "tier" => self.tier, "result" => "skipped")
            .increment(self.items);
        tracing::trace!(tier = self.tier, items = self.items, "cache tier skipped");
    }
}

/// An entry that failed its checksum or would not decode (`osprey_cache_corrupt_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCorrupt {
    pub tier: &'static str,
}

impl Event for CacheCorrupt {
    fn emit(self) {
        metrics::counter!(name::CACHE_CORRUPT, "tier" => self.tier).increment(1);
        tracing::debug!(tier = self.tier, "corrupt cache entry");
    }
}

/// Entries written (`osprey_cache_writes_total{result="ok"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheWritten {
    pub tier: &'static str,
    pub entries: u64,
}

impl Event for CacheWritten {
    fn emit(self) {
        metrics::counter!(name::CACHE_WRITES, "tier" => self.tier, "result" => "ok")
            .increment(self.entries);
        tracing::trace!(tier = self.tier, entries = self.entries, "cache written");
    }
}

/// Entries not written because the tier's writer was behind
/// (`osprey_cache_writes_total{result="dropped"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheWriteDropped {
    pub tier: &'static str,
    pub entries: u64,
}

impl Event for CacheWriteDropped {
    fn emit(self) {
        metrics::counter!(name::CACHE_WRITES, "tier" => self.tier, "result" => "dropped")
            .increment(self.entries);
        tracing::debug!(
            tier = self.tier,
            entries = self.entries,
            "cache write dropped"
        );
    }
}

/// Entries evicted to stay within capacity (`osprey_cache_evictions_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheEvicted {
    pub tier: &'static str,
    pub entries: u64,
}

impl Event for CacheEvicted {
    fn emit(self) {
        metrics::counter!(name::CACHE_EVICTIONS, "tier" => self.tier).increment(self.entries);
        tracing::debug!(
            tier = self.tier,
            entries = self.entries,
            "cache entries evicted"
        );
    }
}

/// A tier's size (`osprey_cache_entries`, `osprey_cache_bytes`), read when scraped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSize {
    pub tier: &'static str,
    pub entries: u64,
    pub bytes: u64,
}

impl Event for CacheSize {
    fn emit(self) {
        metrics::gauge!(name::CACHE_ENTRIES, "tier" => self.tier).set(self.entries as f64);
        metrics::gauge!(name::CACHE_BYTES, "tier" => self.tier).set(self.bytes as f64);
    }
}
