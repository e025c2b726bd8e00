//! The `[slo]` and `[alerts]` sections, and the telemetry switches the server reads.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A value in `[slo]` or `[alerts]` the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {rule}")]
pub struct ConfigError {
    /// The setting, as written in the configuration (`slo.latency_ms`).
    pub field: &'static str,
    /// What it must be.
    pub rule: String,
}

fn invalid(field: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        rule: rule.into(),
    }
}

/// The most alerts the webhook queue may hold.
const MAX_WEBHOOK_QUEUE: usize = 100_000;

/// An hour in milliseconds: the longest latency objective, evaluation interval,
/// webhook timeout or backoff that makes sense (the history itself is an hour).
const HOUR_MS: u64 = 3_600_000;

/// Requires a duration in ms within `1..=HOUR_MS`.
fn check_ms(field: &'static str, ms: u64) -> Result<(), ConfigError> {
    if (1..=HOUR_MS).contains(&ms) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between 1 and {HOUR_MS} ms"),
        ))
    }
}

/// Requires a share strictly between 0 and 1 (false for NaN and infinities).
fn check_share(field: &'static str, v: f64) -> Result<(), ConfigError> {
    if v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(invalid(field, "must be between 0 and 1 (exclusive)"))
    }
}

fn check_secs(field: &'static str, secs: u64, min: u64) -> Result<(), ConfigError> {
    if (min..=3600).contains(&secs) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be between {min} and 3600")))
    }
}

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
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ms = self.latency_ms;
        if !(ms > 0.0 && ms <= HOUR_MS as f64) {
            return Err(invalid(
                "slo.latency_ms",
                format!("must be above 0 and at most {HOUR_MS} (an hour), not {ms}"),
            ));
        }
        check_share("slo.latency_target", self.latency_target)?;
        check_share("slo.error_rate", self.error_rate)?;
        check_secs("slo.window_secs", self.window_secs, 1)
    }

    /// The latency objective as a duration; saturates (never panics) on values
    /// [`Self::validate`] refuses: negative or NaN is zero, too large is an hour.
    pub fn latency(&self) -> Duration {
        let ms = self.latency_ms.clamp(0.0, HOUR_MS as f64);
        Duration::from_secs_f64(if ms.is_nan() { 0.0 } else { ms } / 1000.0)
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
    /// PEM file of the CAs an `https` webhook's certificate must chain to; set, it
    /// replaces the built-in (Mozilla) roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_ca_file: Option<PathBuf>,
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
    /// Alerts waiting for the webhook; beyond it the oldest is dropped and counted.
    pub webhook_queue: usize,
    /// Resolved alerts kept for `GET /admin/alerts`.
    pub keep_resolved: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            webhook_url: None,
            webhook_ca_file: None,
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
            webhook_queue: 256,
            keep_resolved: 100,
        }
    }
}

impl AlertsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_ms("alerts.eval_interval_ms", self.eval_interval_ms)?;
        check_ms("alerts.webhook_timeout_ms", self.webhook_timeout_ms)?;
        check_ms("alerts.webhook_backoff_ms", self.webhook_backoff_ms)?;
        check_secs("alerts.window_secs", self.window_secs, 1)?;
        check_secs("alerts.baseline_secs", self.baseline_secs, 0)?;
        for (field, v) in [
            ("alerts.anomaly_sigma", self.anomaly_sigma),
            ("alerts.latency_ms", self.latency_ms),
            ("alerts.cpu_percent", self.cpu_percent),
            ("alerts.memory_mb", self.memory_mb),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(
                    field,
                    format!("must be a number, 0 or more, not {v}"),
                ));
            }
        }
        // Shares: a threshold above 1 could never (or would always) hold.
        for (field, v) in [
            ("alerts.error_rate", self.error_rate),
            ("alerts.cache_hit_rate", self.cache_hit_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(field, format!("must be between 0 and 1, not {v}")));
            }
        }
        let factor = self.critical_factor;
        if !(factor >= 1.0 && factor.is_finite()) {
            return Err(invalid(
                "alerts.critical_factor",
                format!("must be a number, at least 1, not {factor}"),
            ));
        }
        if let Some(url) = &self.webhook_url {
            webhook_url(url)?;
        }
        if !(1..=MAX_WEBHOOK_QUEUE).contains(&self.webhook_queue) {
            return Err(invalid(
                "alerts.webhook_queue",
                format!("must be between 1 and {MAX_WEBHOOK_QUEUE}"),
            ));
        }
        Ok(())
    }

    /// The webhook's HTTP client, with the CAs of `webhook_ca_file` read now: call
    /// it when checking a configuration, so a bad file shows before start-up.
    pub fn webhook_client(&self) -> Result<reqwest::Client, ConfigError> {
        crate::webhook::client(self)
    }
}

/// Parses the webhook URL. The message never repeats the URL: its path or query
/// may hold a token, and configuration errors are printed and logged.
pub(crate) fn webhook_url(raw: &str) -> Result<reqwest::Url, ConfigError> {
    let field = "alerts.webhook_url";
    let url = reqwest::Url::parse(raw)
        .map_err(|e| invalid(field, format!("must be an http(s) URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            field,
            format!("must be an http(s) URL, not `{}:`", url.scheme()),
        ));
    }
    if url.host().is_none() {
        return Err(invalid(field, "must name a host"));
    }
    Ok(url)
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
    /// Where the day of per-minute statistics is saved across restarts; none:
    /// kept in memory only.
    pub history_path: Option<std::path::PathBuf>,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            access_log: true,
            log_request_text: false,
            slo: SloConfig::default(),
            alerts: AlertsConfig::default(),
            history_path: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo_error(f: impl FnOnce(&mut SloConfig)) -> Option<&'static str> {
        let mut cfg = SloConfig::default();
        f(&mut cfg);
        cfg.validate().err().map(|e| e.field)
    }

    fn alerts_error(f: impl FnOnce(&mut AlertsConfig)) -> Option<&'static str> {
        let mut cfg = AlertsConfig::default();
        f(&mut cfg);
        cfg.validate().err().map(|e| e.field)
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(SloConfig::default().validate(), Ok(()));
        assert_eq!(AlertsConfig::default().validate(), Ok(()));
    }

    #[test]
    fn slo_latency_must_be_finite_positive_and_at_most_an_hour() {
        for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.0, -1.0, 1e12] {
            assert_eq!(
                slo_error(|c| c.latency_ms = bad),
                Some("slo.latency_ms"),
                "{bad}"
            );
        }
        let e = SloConfig {
            latency_ms: f64::INFINITY,
            ..SloConfig::default()
        }
        .validate()
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("slo.latency_ms must be above 0 and at most 3600000 (an hour), not inf")
        );
    }

    #[test]
    fn slo_shares_and_window_are_bounded() {
        for bad in [f64::INFINITY, f64::NAN, 0.0, 1.0, 2.0] {
            assert_eq!(
                slo_error(|c| c.latency_target = bad),
                Some("slo.latency_target")
            );
            assert_eq!(slo_error(|c| c.error_rate = bad), Some("slo.error_rate"));
        }
        for bad in [0, 3601, u64::MAX] {
            assert_eq!(slo_error(|c| c.window_secs = bad), Some("slo.window_secs"));
        }
    }

    #[test]
    fn slo_latency_saturates_instead_of_panicking() {
        let at = |ms: f64| {
            SloConfig {
                latency_ms: ms,
                ..SloConfig::default()
            }
            .latency()
        };
        assert_eq!(at(50.0), Duration::from_millis(50));
        assert_eq!(at(f64::INFINITY), Duration::from_secs(3600));
        assert_eq!(at(1e300), Duration::from_secs(3600));
        assert_eq!(at(f64::NAN), Duration::ZERO);
        assert_eq!(at(f64::NEG_INFINITY), Duration::ZERO);
    }

    #[test]
    fn alert_thresholds_must_be_finite() {
        for bad in [f64::INFINITY, f64::NAN, -1.0] {
            assert_eq!(
                alerts_error(|c| c.anomaly_sigma = bad),
                Some("alerts.anomaly_sigma")
            );
            assert_eq!(
                alerts_error(|c| c.latency_ms = bad),
                Some("alerts.latency_ms")
            );
            assert_eq!(
                alerts_error(|c| c.cpu_percent = bad),
                Some("alerts.cpu_percent")
            );
            assert_eq!(
                alerts_error(|c| c.memory_mb = bad),
                Some("alerts.memory_mb")
            );
        }
        for bad in [f64::INFINITY, f64::NAN, -0.5, 1.5] {
            assert_eq!(
                alerts_error(|c| c.error_rate = bad),
                Some("alerts.error_rate")
            );
            assert_eq!(
                alerts_error(|c| c.cache_hit_rate = bad),
                Some("alerts.cache_hit_rate")
            );
        }
        for bad in [f64::INFINITY, f64::NAN, 0.5] {
            assert_eq!(
                alerts_error(|c| c.critical_factor = bad),
                Some("alerts.critical_factor")
            );
        }
    }

    #[test]
    fn alert_durations_are_bounded() {
        for bad in [0, HOUR_MS + 1, u64::MAX] {
            assert_eq!(
                alerts_error(|c| c.eval_interval_ms = bad),
                Some("alerts.eval_interval_ms")
            );
            assert_eq!(
                alerts_error(|c| c.webhook_timeout_ms = bad),
                Some("alerts.webhook_timeout_ms")
            );
            assert_eq!(
                alerts_error(|c| c.webhook_backoff_ms = bad),
                Some("alerts.webhook_backoff_ms")
            );
        }
        assert_eq!(
            alerts_error(|c| c.window_secs = 0),
            Some("alerts.window_secs")
        );
        assert_eq!(
            alerts_error(|c| c.baseline_secs = u64::MAX),
            Some("alerts.baseline_secs")
        );
        for bad in [0, MAX_WEBHOOK_QUEUE + 1] {
            assert_eq!(
                alerts_error(|c| c.webhook_queue = bad),
                Some("alerts.webhook_queue")
            );
        }
    }

    #[test]
    fn webhook_url_errors_never_repeat_the_url() {
        for bad in [
            "ftp://hooks.example/T0KEN",
            "https://",
            "hooks.example/T0KEN?token=T0KEN",
            "https://[::1/T0KEN",
            "https://u:T0KEN@/x",
        ] {
            let err = AlertsConfig {
                webhook_url: Some(bad.into()),
                ..AlertsConfig::default()
            }
            .validate()
            .expect_err(bad);
            assert_eq!(err.field, "alerts.webhook_url", "{bad}");
            assert!(!err.to_string().contains("T0KEN"), "{bad}: {err}");
        }
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://[2001:db8::1]:8443/a/b?token=x",
        ] {
            assert_eq!(
                alerts_error(|c| c.webhook_url = Some(good.into())),
                None,
                "{good}"
            );
        }
    }

    #[test]
    fn webhook_ca_file_is_read_when_the_client_is_built() {
        let missing = AlertsConfig {
            webhook_ca_file: Some(PathBuf::from("no-such-ca.pem")),
            ..AlertsConfig::default()
        };
        let err = missing.webhook_client().expect_err("missing file");
        assert_eq!(err.field, "alerts.webhook_ca_file");
        assert!(err.to_string().contains("no-such-ca.pem"), "{err}");

        let dir = std::env::temp_dir().join(format!("osprey-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let not_pem = dir.join("not-a-ca.pem");
        std::fs::write(&not_pem, "just text, no certificate\n").expect("write");
        let err = AlertsConfig {
            webhook_ca_file: Some(not_pem),
            ..AlertsConfig::default()
        }
        .webhook_client()
        .expect_err("no certificate in the file");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);

        assert!(AlertsConfig::default().webhook_client().is_ok());
    }
}
