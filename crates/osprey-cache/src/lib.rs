//! A tiered result cache for embeddings: L1 in-process memory (moka), L2 on local
//! disk (redb), L3 in Redis shared by every instance. Lookups go down the tiers and
//! a hit fills the tiers above it; writes land in memory at once and reach disk and
//! Redis through bounded write-behind queues, so they never delay a response.
//!
//! Usable on its own: build a [`KeySpace`] for a model and its options, derive one
//! [`CacheKey`] per text, and use [`TieredCache::get_many`] / [`TieredCache::put_many`].

mod breaker;
mod clock;
mod codec;
mod config;
mod disk;
mod entry;
mod error;
mod key;
mod memory;
mod redis_tier;
mod stats;
#[cfg(any(test, feature = "test-support"))]
pub mod testkit;
mod tiered;

pub use clock::{Clock, SharedClock, SystemClock};
pub use codec::{CODEC_VERSION, decode, encode};
pub use config::{CacheConfig, DiskConfig, MacKey, MemoryConfig, RedisConfig, RedisUrl};
pub use disk::DiskTier;
pub use entry::Entry;
pub use error::CacheError;
pub use key::{CacheKey, KeySpace};
pub use memory::MemoryTier;
pub use redis_tier::{Fetched, RedisTier};
pub use stats::{CacheStats, HealthStatus, Tier, TierHealth, TierSnapshot, TierStats};
pub use tiered::{Cleared, Found, TieredCache};

/// The seal on Redis values, public so the benchmarks can time it alone; not an API.
#[doc(hidden)]
pub use redis_tier::Seal;

pub type Result<T, E = CacheError> = std::result::Result<T, E>;
