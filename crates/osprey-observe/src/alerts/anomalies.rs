//! Anomaly rules: latency, error rate and throughput against their per-second
//! baselines (how many standard deviations off they are).

use super::{Condition, Severity};
use crate::anomaly::{Baseline, baseline};
use crate::config::AlertsConfig;
use crate::stats::{Second, Summary};

/// A value judged against the busy seconds of the baseline (those with traffic),
/// firing when it is `anomaly_sigma` deviations above.
struct Rule {
    key: &'static str,
    /// One baseline second's value.
    per_second: fn(&Second) -> Option<f64>,
    /// The judged window's value.
    window: fn(&Summary) -> Option<f64>,
    /// The least deviation assumed: a flat baseline would call any wiggle anomalous.
    floor: fn(&Baseline) -> f64,
    /// The alert's text from the value, its z-score and the baseline.
    summary: fn(f64, f64, &Baseline) -> String,
}

const RULES: [Rule; 2] = [
    Rule {
        key: "latency_anomaly",
        per_second: Second::p99_ms,
        window: |w| w.latency_ms.p99,
        floor: |b| (b.mean * 0.1).max(0.1),
        summary: |v, z, b| {
            format!(
                "p99 latency {v:.1} ms is {z:.1}σ above its baseline of {:.1} ms",
                b.mean
            )
        },
    },
    Rule {
        key: "error_rate_anomaly",
        per_second: |s| Some(s.errors as f64 / s.requests as f64),
        window: |w| w.error_rate,
        floor: |_| 0.01,
        summary: |v, z, b| {
            format!(
                "error rate {:.1}% is {z:.1}σ above its baseline of {:.1}%",
                v * 100.0,
                b.mean * 100.0
            )
        },
    },
];

/// The anomaly rules that hold for `window`, given the `base` seconds before it.
pub(super) fn holding(cfg: &AlertsConfig, window: &Summary, base: &[&Second]) -> Vec<Condition> {
    let sigma = cfg.anomaly_sigma;
    let min = cfg.min_baseline_secs.max(2) as usize;
    let busy: Vec<&Second> = base.iter().copied().filter(|s| s.requests > 0).collect();
    let mut out = Vec::new();
    if busy.len() >= min && window.requests >= cfg.min_requests.max(1) {
        for rule in &RULES {
            let (Some(b), Some(value)) = (
                baseline(busy.iter().filter_map(|s| (rule.per_second)(s))),
                (rule.window)(window),
            ) else {
                continue;
            };
            let z = b.z(value, (rule.floor)(&b));
            if z >= sigma {
                out.push(Condition {
                    key: rule.key,
                    severity: Severity::Warning,
                    value,
                    threshold: b.mean + sigma * b.std,
                    summary: (rule.summary)(value, z, &b),
                });
            }
        }
    }
    if base.len() >= min {
        out.extend(throughput(sigma, window, base));
    }
    out
}

/// Throughput judged against every baseline second, idle ones too, in both
/// directions: a drop is as telling as a jump.
fn throughput(sigma: f64, window: &Summary, base: &[&Second]) -> Option<Condition> {
    let b = baseline(base.iter().map(|s| s.requests as f64)).filter(|b| b.mean >= 1.0)?;
    let rps = window.requests_per_second;
    let z = b.z(rps, (b.mean * 0.1).max(1.0));
    if z.abs() < sigma {
        return None;
    }
    let dir = if z < 0.0 { "dropped" } else { "jumped" };
    Some(Condition {
        key: "throughput_anomaly",
        severity: Severity::Warning,
        value: rps,
        threshold: b.mean,
        summary: format!(
            "throughput {dir} to {rps:.1} req/s, {:.1}σ from its baseline of {:.1} req/s",
            z.abs(),
            b.mean
        ),
    })
}
