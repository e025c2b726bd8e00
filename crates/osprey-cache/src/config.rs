//! Cache configuration: `[cache.memory]`, `[cache.disk]`, `[cache.redis]`. Each tier
//! is optional: memory is on with a size above zero, disk with a path, Redis with a URL.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether callers with different credentials share cached results. Off, each
    /// credential's results are keyed apart, so no one can learn from a hit (or
    /// its speed) that someone else embedded a text.
    pub share_across_keys: bool,
    pub memory: MemoryConfig,
    pub disk: DiskConfig,
    pub redis: RedisConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            share_across_keys: true,
            memory: MemoryConfig::default(),
            disk: DiskConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Bytes of vectors kept in process; 0 turns the tier off.
    pub max_bytes: u64,
    /// Seconds an entry lives; 0 keeps it until evicted.
    pub ttl_secs: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            max_bytes: 128 * 1024 * 1024,
            ttl_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Database file of the tier; unset turns the tier off.
    pub path: Option<PathBuf>,
    /// Bytes of entries kept on disk; the oldest go first beyond it.
    pub max_bytes: u64,
    /// Seconds an entry lives; 0 keeps it until evicted.
    pub ttl_secs: u64,
    /// Writes waiting for the disk; beyond it new writes are dropped and counted.
    pub write_queue: usize,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: 1024 * 1024 * 1024,
            ttl_secs: 7 * 24 * 3600,
            write_queue: 4096,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`; unset turns the tier off.
    pub url: Option<String>,
    /// Prefix of every key Osprey writes (and clears).
    pub key_prefix: String,
    pub ttl_secs: u64,
    /// Connections kept open; commands are pipelined on each.
    pub pool_size: usize,
    /// A call slower than this counts as a failure and the request goes on without Redis.
    pub timeout_ms: u64,
    /// Consecutive failures that open the circuit (Redis skipped until a probe succeeds).
    pub failure_threshold: u32,
    /// Milliseconds between probes while the circuit is open.
    pub retry_interval_ms: u64,
    /// Writes waiting for Redis; beyond it new writes are dropped and counted.
    pub write_queue: usize,
    /// Secret that seals every value written to Redis (a keyed BLAKE3 MAC over the
    /// key and the value); values without a valid seal read as misses. Set it to
    /// the same secret on every instance, so one that can write the shared prefix
    /// without the secret cannot poison the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<MacKey>,
}

/// The Redis MAC secret: never printed, logged or written back out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct MacKey(String);

impl MacKey {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for MacKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "osprey:".into(),
            ttl_secs: 24 * 3600,
            pool_size: 4,
            timeout_ms: 50,
            failure_threshold: 3,
            retry_interval_ms: 1000,
            write_queue: 4096,
            hmac_key: None,
        }
    }
}

/// A shorter secret is guessable.
const MIN_MAC_KEY: usize = 16;

impl CacheConfig {
    /// A configuration with every tier off.
    pub fn disabled() -> Self {
        Self {
            memory: MemoryConfig {
                max_bytes: 0,
                ..MemoryConfig::default()
            },
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.disk.path.is_some() && self.disk.max_bytes < 1024 * 1024 {
            return Err("cache.disk.max_bytes must be at least 1 MiB".into());
        }
        if self.redis.url.is_some() {
            if self.redis.pool_size == 0 {
                return Err("cache.redis.pool_size must be at least 1".into());
            }
            if self.redis.timeout_ms == 0 {
                return Err("cache.redis.timeout_ms must be at least 1".into());
            }
            if self.redis.ttl_secs == 0 {
                return Err("cache.redis.ttl_secs must be at least 1".into());
            }
            if self
                .redis
                .hmac_key
                .as_ref()
                .is_some_and(|k| k.expose().len() < MIN_MAC_KEY)
            {
                return Err(format!(
                    "cache.redis.hmac_key must be at least {MIN_MAC_KEY} bytes"
                ));
            }
        }
        Ok(())
    }
}
