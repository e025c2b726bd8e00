//! The `[limits]` section: per-client rate limits, admission control, deadlines and
//! the body codecs' limits; throttling of failed credentials, and which proxies'
//! `X-Forwarded-For` is believed.

use ipnet::IpNet;
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
    /// The longest a request may be predicted to queue behind the work ahead of
    /// it, its own run time aside (503 beyond it); 0: only the deadline bounds it.
    pub max_queue_ms: u64,
    /// Largest request body once gzip-decompressed (bytes).
    pub max_decompressed_bytes: usize,
    /// Compress responses (gzip, br, zstd) for clients that accept it.
    pub compression: bool,
    /// Smallest response body worth compressing (bytes).
    pub compression_min_bytes: u64,
    /// Failed authentications per second allowed per client address (IPv6 by /64)
    /// once its burst is spent; beyond it, 429 before any key or signature is checked.
    pub auth_failures_per_second: f64,
    /// Failed authentications a client address may make at once.
    pub auth_failures_burst: u32,
    /// Proxies (CIDRs, or single addresses) whose `X-Forwarded-For` names the client.
    /// Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

/// Slowest accepted `auth_failures_per_second`.
pub const MIN_FAILURE_RATE: f64 = 1e-6;

/// A `[limits]` value that cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("limits.{0} must be at least 1")]
    Zero(&'static str),
    #[error(
        "limits.auth_failures_per_second must be a finite number of at least 0.000001 (one a week is 0.0000017), not {0}"
    )]
    FailureRate(f64),
    #[error("limits.trusted_proxies: `{entry}` is neither a CIDR nor an IP address")]
    Proxy { entry: String },
}

impl LimitsConfig {
    /// Refuses values that cannot serve; run at start-up and by `config check`.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_decompressed_bytes == 0 {
            return Err(LimitsError::Zero("max_decompressed_bytes"));
        }
        let rate = self.auth_failures_per_second;
        // The floor keeps the period (1 / rate) well inside what a Duration holds.
        if !rate.is_finite() || rate < MIN_FAILURE_RATE {
            return Err(LimitsError::FailureRate(rate));
        }
        if self.auth_failures_burst == 0 {
            return Err(LimitsError::Zero("auth_failures_burst"));
        }
        self.trusted_proxy_nets().map(|_| ())
    }

    /// `trusted_proxies` parsed; a bare address is a network of one.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<IpNet>, LimitsError> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let e = entry.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| LimitsError::Proxy {
                        entry: entry.clone(),
                    })
            })
            .collect()
    }

    /// What each model's admission control is given.
    pub fn admission(&self) -> osprey_engine::AdmissionConfig {
        osprey_engine::AdmissionConfig {
            max_in_flight: self.max_in_flight,
            deadline: (self.deadline_ms > 0)
                .then(|| std::time::Duration::from_millis(self.deadline_ms)),
            max_queue: (self.max_queue_ms > 0)
                .then(|| std::time::Duration::from_millis(self.max_queue_ms)),
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
            max_queue_ms: 1_500,
            max_decompressed_bytes: 16 * 1024 * 1024,
            compression: true,
            compression_min_bytes: 1024,
            auth_failures_per_second: 1.0,
            auth_failures_burst: 20,
            trusted_proxies: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        LimitsConfig::default().validate().expect("defaults");
        let with = |f: fn(&mut LimitsConfig)| {
            let mut l = LimitsConfig::default();
            f(&mut l);
            l.validate().map_err(|e| e.to_string())
        };
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-9] {
            let mut l = LimitsConfig {
                auth_failures_per_second: bad,
                ..LimitsConfig::default()
            };
            let e = l.validate().expect_err("refused").to_string();
            assert!(e.contains("auth_failures_per_second"), "{e}");
            l.auth_failures_per_second = 0.5;
            l.validate().expect("half a failure per second");
        }
        let e = with(|l| l.auth_failures_burst = 0).expect_err("refused");
        assert!(e.contains("auth_failures_burst"), "{e}");
        let e = with(|l| l.max_decompressed_bytes = 0).expect_err("refused");
        assert!(e.contains("max_decompressed_bytes"), "{e}");
        let e = with(|l| l.trusted_proxies = vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()])
            .expect_err("refused");
        assert!(e.contains("`10.0.0.0/33`"), "names the entry: {e}");
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_single_addresses() {
        let l: LimitsConfig = toml::from_str(
            r#"
            auth_failures_per_second = 0.2
            auth_failures_burst = 5
            trusted_proxies = ["10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32", "10.1.2.3/16"]
            "#,
        )
        .expect("parses");
        let nets: Vec<String> = l
            .trusted_proxy_nets()
            .expect("valid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            nets,
            ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "10.1.0.0/16"]
        );
        assert_eq!(l.auth_failures_burst, 5);
    }
}
