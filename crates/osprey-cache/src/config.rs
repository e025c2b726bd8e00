//! Cache configuration: `[cache.memory]`, `[cache.disk]`, `[cache.redis]`. Each tier
//! is optional: memory is on with a size above zero, disk with a path, Redis with a URL.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub memory: MemoryConfig,
    pub disk: DiskConfig,
    pub redis: RedisConfig,
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
        }
    }
}

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
        }
        Ok(())
    }
}
