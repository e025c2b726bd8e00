//! Threshold rules: a window value above (or below) its configured limit.

use super::{Condition, Severity};
use crate::config::AlertsConfig;
use crate::stats::Summary;

/// One threshold rule.
struct Rule {
    key: &'static str,
    /// The configured limit; 0 turns the rule off.
    threshold: fn(&AlertsConfig) -> f64,
    /// The window's value, `None` when there is too little to judge.
    value: fn(&AlertsConfig, &Summary) -> Option<f64>,
    /// Fires above the limit (else below it).
    above: bool,
    /// Exceeding the limit `critical_factor` times over makes the alert critical.
    graded: bool,
    /// The alert's text from the value, the limit and the window's seconds.
    summary: fn(f64, f64, u64) -> String,
}

/// Enough inference requests in the window to judge latency and errors.
fn enough_requests(cfg: &AlertsConfig, w: &Summary) -> bool {
    w.requests >= cfg.min_requests.max(1)
}

const RULES: [Rule; 5] = [
    Rule {
        key: "latency",
        threshold: |c| c.latency_ms,
        value: |c, w| w.latency_ms.p99.filter(|_| enough_requests(c, w)),
        above: true,
        graded: true,
        summary: |v, t, secs| {
            format!("p99 latency {v:.1} ms over the last {secs} s is above {t} ms")
        },
    },
    Rule {
        key: "error_rate",
        threshold: |c| c.error_rate,
        value: |c, w| w.error_rate.filter(|_| enough_requests(c, w)),
        above: true,
        graded: true,
        summary: |v, t, secs| {
            format!(
                "{:.1}% of requests failed over the last {secs} s (threshold {:.1}%)",
                v * 100.0,
                t * 100.0
            )
        },
    },
    Rule {
        key: "cpu",
        threshold: |c| c.cpu_percent,
        value: |_, w| Some(w.cpu_percent_mean),
        above: true,
        graded: false,
        summary: |v, t, secs| {
            format!("CPU at {v:.0}% of all cores over the last {secs} s (threshold {t:.0}%)")
        },
    },
    Rule {
        key: "memory",
        threshold: |c| c.memory_mb,
        value: |_, w| Some(w.rss_bytes_max as f64 / (1024.0 * 1024.0)),
        above: true,
        graded: true,
        summary: |v, t, _| format!("resident memory {v:.0} MiB is above {t} MiB"),
    },
    Rule {
        key: "cache_hit_rate",
        threshold: |c| c.cache_hit_rate,
        // Every lookup reaches the first tier.
        value: |c, w| {
            let lookups = w.cache.first().map_or(0, |t| t.hits + t.misses);
            w.cache_hit_rate
                .filter(|_| lookups >= c.min_requests.max(1))
        },
        above: false,
        graded: false,
        summary: |v, t, secs| {
            format!(
                "cache hit rate {:.1}% over the last {secs} s is below {:.1}%",
                v * 100.0,
                t * 100.0
            )
        },
    },
];

/// The threshold rules that hold for `window`, in table order.
pub(super) fn holding(cfg: &AlertsConfig, window: &Summary) -> Vec<Condition> {
    RULES
        .iter()
        .filter_map(|rule| {
            let threshold = (rule.threshold)(cfg);
            if threshold <= 0.0 {
                return None;
            }
            let value = (rule.value)(cfg, window)?;
            let crossed = if rule.above {
                value > threshold
            } else {
                value < threshold
            };
            crossed.then(|| Condition {
                key: rule.key,
                severity: if rule.graded && value >= threshold * cfg.critical_factor {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                value,
                threshold,
                summary: (rule.summary)(value, threshold, window.seconds),
            })
        })
        .collect()
}
