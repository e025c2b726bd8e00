//! The `[limits]` section: per-client rate limits, admission control, deadlines and
//! the body codecs' limits.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per second per client (API key, or IP address with auth off); 0: no limit.
    pub requests_per_second: u32,
    /// Requests a client may send at once above its rate; 0: one second's worth.
    pub requests_burst: u32,
    /// Inputs (texts) per second per client; 0: no limit.
    pub items_per_second: u32,
    /// Inputs a client may send at once above its rate; 0: one second's worth.
    pub items_burst: u32,
    /// Inference requests being served at once; beyond it new ones get 503 at once. 0: no limit.
    pub max_in_flight: usize,
    /// Longest an inference request may take before it is dropped with 504, queued
    /// work included (milliseconds; 0: no deadline). The `x-osprey-deadline-ms`
    /// request header may ask for a shorter one.
    pub deadline_ms: u64,
    /// Largest request body once gzip-decompressed (bytes).
    pub max_decompressed_bytes: usize,
    /// Compress responses (gzip, br, zstd) for clients that accept it.
    pub compression: bool,
    /// Smallest response body worth compressing (bytes).
    pub compression_min_bytes: u64,
}

impl LimitsConfig {
    /// What each model's admission control is given.
    pub fn admission(&self) -> osprey_engine::AdmissionConfig {
        osprey_engine::AdmissionConfig {
            max_in_flight: self.max_in_flight,
            deadline: (self.deadline_ms > 0)
                .then(|| std::time::Duration::from_millis(self.deadline_ms)),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_second: 0,
            requests_burst: 0,
            items_per_second: 0,
            items_burst: 0,
            max_in_flight: 1024,
            deadline_ms: 30_000,
            max_decompressed_bytes: 16 * 1024 * 1024,
            compression: true,
            compression_min_bytes: 1024,
        }
    }
}
