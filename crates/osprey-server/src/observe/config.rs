//! The `[slo]` and `[alerts]` sections, and the telemetry switches the server reads.

use serde::{Deserialize, Serialize};

/// Service-level objectives, judged on the inference routes over a rolling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloConfig {
    /// Latency objective: `latency_target` of requests finish within this many ms.
    pub latency_ms: f64,
    /// Share of requests that must meet the latency objective (0.99 = "p99 ≤ latency_ms").
    pub latency_target: f64,
    /// Share of requests allowed to fail (5xx, or refused with 429).
    pub error_rate: f64,
    /// Compliance window in seconds (at most the hour of history kept).
    pub window_secs: u64,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            latency_ms: 50.0,
            latency_target: 0.99,
            error_rate: 0.01,
            window_secs: 3600,
        }
    }
}

impl SloConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.latency_ms.is_nan() || self.latency_ms <= 0.0 {
            return Err("slo.latency_ms must be above 0".into());
        }
        if !(self.latency_target > 0.0 && self.latency_target < 1.0) {
            return Err("slo.latency_target must be between 0 and 1 (exclusive)".into());
        }
        if !(self.error_rate > 0.0 && self.error_rate < 1.0) {
            return Err("slo.error_rate must be between 0 and 1 (exclusive)".into());
        }
        if self.window_secs == 0 || self.window_secs > 3600 {
            return Err("slo.window_secs must be between 1 and 3600".into());
        }
        Ok(())
    }
}

/// Alert rules (thresholds and anomaly detection) and where alerts are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub enabled: bool,
    /// Each alert and its resolution are POSTed here as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// How often the rules are evaluated (ms).
    pub eval_interval_ms: u64,
    /// The recent window the rules judge (seconds).
    pub window_secs: u64,
    /// Fewer inference requests than this in the window judge no latency or error rule.
    pub min_requests: u64,
    /// Consecutive clear evaluations before an alert is resolved (no flapping).
    pub resolve_after: u32,
    /// An anomaly is a window value this many standard deviations off its baseline;
    /// 0 turns anomaly detection off.
    pub anomaly_sigma: f64,
    /// The baseline: this many seconds before the judged window.
    pub baseline_secs: u64,
    /// Seconds with traffic the baseline needs before anomalies are judged.
    pub min_baseline_secs: u64,
    /// p99 latency of the window above this fires `latency` (0 = off).
    pub latency_ms: f64,
    /// Error rate of the window above this fires `error_rate` (0 = off).
    pub error_rate: f64,
    /// Process CPU above this percentage of all cores fires `cpu` (0 = off).
    pub cpu_percent: f64,
    /// Resident memory above this fires `memory` (MiB, 0 = off).
    pub memory_mb: f64,
    /// Cache hit rate below this fires `cache_hit_rate` (0 = off).
    pub cache_hit_rate: f64,
    /// A threshold exceeded by this factor makes the alert critical instead of a warning.
    pub critical_factor: f64,
    pub webhook_timeout_ms: u64,
    /// Retries after a failed delivery, with doubling backoff from `webhook_backoff_ms`.
    pub webhook_retries: u32,
    pub webhook_backoff_ms: u64,
    /// Resolved alerts kept for `GET /admin/alerts`.
    pub keep_resolved: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            webhook_url: None,
            eval_interval_ms: 1000,
            window_secs: 60,
            min_requests: 20,
            resolve_after: 3,
            anomaly_sigma: 2.0,
            baseline_secs: 600,
            min_baseline_secs: 60,
            latency_ms: 50.0,
            error_rate: 0.05,
            cpu_percent: 90.0,
            memory_mb: 2048.0,
            cache_hit_rate: 0.0,
            critical_factor: 2.0,
            webhook_timeout_ms: 2000,
            webhook_retries: 5,
            webhook_backoff_ms: 250,
            keep_resolved: 100,
        }
    }
}

impl AlertsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.eval_interval_ms == 0 {
            return Err("alerts.eval_interval_ms must be at least 1".into());
        }
        if self.window_secs == 0 || self.window_secs > 3600 {
            return Err("alerts.window_secs must be between 1 and 3600".into());
        }
        if self.baseline_secs > 3600 {
            return Err("alerts.baseline_secs must be at most 3600".into());
        }
        for (name, v) in [
            ("alerts.anomaly_sigma", self.anomaly_sigma),
            ("alerts.latency_ms", self.latency_ms),
            ("alerts.error_rate", self.error_rate),
            ("alerts.cpu_percent", self.cpu_percent),
            ("alerts.memory_mb", self.memory_mb),
            ("alerts.cache_hit_rate", self.cache_hit_rate),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{name} must be 0 or more"));
            }
        }
        if self.critical_factor.is_nan() || self.critical_factor < 1.0 {
            return Err("alerts.critical_factor must be at least 1".into());
        }
        if let Some(url) = &self.webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "alerts.webhook_url must be an http(s) URL, not `{url}`"
            ));
        }
        Ok(())
    }
}

/// Everything the server needs to observe itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ObserveConfig {
    /// Request metrics, stage timing (Server-Timing) and rolling statistics; off
    /// only to measure what they cost.
    pub metrics: bool,
    /// One log line per request.
    pub access_log: bool,
    /// Debug only: log the request texts.
    pub log_request_text: bool,
    pub slo: SloConfig,
    pub alerts: AlertsConfig,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            access_log: true,
            log_request_text: false,
            slo: SloConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}
