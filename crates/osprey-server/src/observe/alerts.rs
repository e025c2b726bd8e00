//! Alert rules (thresholds and anomalies) and the book of active and recent
//! alerts. The book emits an event only when an alert starts, escalates or
//! resolves, so a condition that holds for an hour is one message, not thousands.

use std::collections::VecDeque;

use serde::Serialize;

use super::anomaly::baseline;
use super::config::AlertsConfig;
use super::stats::{Second, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert as listed and as sent to the webhook.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertEvent {
    /// Stable for one occurrence (firing, escalation and resolution share it):
    /// receivers deduplicate retried deliveries on it.
    pub id: String,
    pub key: &'static str,
    pub status: AlertStatus,
    pub severity: Severity,
    pub summary: String,
    /// The value that fired (latest while firing).
    pub value: f64,
    pub threshold: f64,
    pub started_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<u64>,
}

/// A rule that holds right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: &'static str,
    pub severity: Severity,
    pub value: f64,
    pub threshold: f64,
    pub summary: String,
}

fn graded(cfg: &AlertsConfig, value: f64, threshold: f64) -> Severity {
    if value >= threshold * cfg.critical_factor {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// Every rule that holds for the judged `window`, given the `base` seconds before it.
pub fn evaluate(cfg: &AlertsConfig, window: &Summary, base: &[&Second]) -> Vec<Condition> {
    let mut out = Vec::new();
    let enough = window.requests >= cfg.min_requests.max(1);
    if let (true, Some(p99)) = (enough && cfg.latency_ms > 0.0, window.latency_ms.p99)
        && p99 > cfg.latency_ms
    {
        out.push(Condition {
            key: "latency",
            severity: graded(cfg, p99, cfg.latency_ms),
            value: p99,
            threshold: cfg.latency_ms,
            summary: format!(
                "p99 latency {p99:.1} ms over the last {} s is above {} ms",
                window.seconds, cfg.latency_ms
            ),
        });
    }
    if let (true, Some(rate)) = (enough && cfg.error_rate > 0.0, window.error_rate)
        && rate > cfg.error_rate
    {
        out.push(Condition {
            key: "error_rate",
            severity: graded(cfg, rate, cfg.error_rate),
            value: rate,
            threshold: cfg.error_rate,
            summary: format!(
                "{:.1}% of requests failed over the last {} s (threshold {:.1}%)",
                rate * 100.0,
                window.seconds,
                cfg.error_rate * 100.0
            ),
        });
    }
    if cfg.cpu_percent > 0.0 && window.cpu_percent_mean > cfg.cpu_percent {
        out.push(Condition {
            key: "cpu",
            severity: Severity::Warning,
            value: window.cpu_percent_mean,
            threshold: cfg.cpu_percent,
            summary: format!(
                "CPU at {:.0}% of all cores over the last {} s (threshold {:.0}%)",
                window.cpu_percent_mean, window.seconds, cfg.cpu_percent
            ),
        });
    }
    let rss_mb = window.rss_bytes_max as f64 / (1024.0 * 1024.0);
    if cfg.memory_mb > 0.0 && rss_mb > cfg.memory_mb {
        out.push(Condition {
            key: "memory",
            severity: graded(cfg, rss_mb, cfg.memory_mb),
            value: rss_mb,
            threshold: cfg.memory_mb,
            summary: format!(
                "resident memory {rss_mb:.0} MiB is above {} MiB",
                cfg.memory_mb
            ),
        });
    }
    let lookups = window.cache.first().map_or(0, |c| c.hits + c.misses);
    if let (true, Some(rate)) = (
        cfg.cache_hit_rate > 0.0 && lookups >= cfg.min_requests.max(1),
        window.cache_hit_rate,
    ) && rate < cfg.cache_hit_rate
    {
        out.push(Condition {
            key: "cache_hit_rate",
            severity: Severity::Warning,
            value: rate,
            threshold: cfg.cache_hit_rate,
            summary: format!(
                "cache hit rate {:.1}% over the last {} s is below {:.1}%",
                rate * 100.0,
                window.seconds,
                cfg.cache_hit_rate * 100.0
            ),
        });
    }
    if cfg.anomaly_sigma > 0.0 {
        anomalies(cfg, window, base, &mut out);
    }
    out
}

/// Latency, error rate and throughput against their per-second baselines.
fn anomalies(cfg: &AlertsConfig, window: &Summary, base: &[&Second], out: &mut Vec<Condition>) {
    let sigma = cfg.anomaly_sigma;
    let busy: Vec<&&Second> = base.iter().filter(|s| s.requests > 0).collect();
    let min = cfg.min_baseline_secs.max(2) as usize;
    let enough = window.requests >= cfg.min_requests.max(1);
    if busy.len() >= min && enough {
        if let (Some(b), Some(p99)) = (
            baseline(busy.iter().filter_map(|s| s.p99_ms())),
            window.latency_ms.p99,
        ) {
            let z = b.z(p99, (b.mean * 0.1).max(0.1));
            if z >= sigma {
                out.push(Condition {
                    key: "latency_anomaly",
                    severity: Severity::Warning,
                    value: p99,
                    threshold: b.mean + sigma * b.std,
                    summary: format!(
                        "p99 latency {p99:.1} ms is {z:.1}σ above its baseline of {:.1} ms",
                        b.mean
                    ),
                });
            }
        }
        if let (Some(b), Some(rate)) = (
            baseline(busy.iter().map(|s| s.errors as f64 / s.requests as f64)),
            window.error_rate,
        ) {
            let z = b.z(rate, 0.01);
            if z >= sigma {
                out.push(Condition {
                    key: "error_rate_anomaly",
                    severity: Severity::Warning,
                    value: rate,
                    threshold: b.mean + sigma * b.std,
                    summary: format!(
                        "error rate {:.1}% is {z:.1}σ above its baseline of {:.1}%",
                        rate * 100.0,
                        b.mean * 100.0
                    ),
                });
            }
        }
    }
    if base.len() >= min
        && let Some(b) = baseline(base.iter().map(|s| s.requests as f64))
        && b.mean >= 1.0
    {
        let rps = window.requests_per_second;
        let z = b.z(rps, (b.mean * 0.1).max(1.0));
        if z.abs() >= sigma {
            let dir = if z < 0.0 { "dropped" } else { "jumped" };
            out.push(Condition {
                key: "throughput_anomaly",
                severity: Severity::Warning,
                value: rps,
                threshold: b.mean,
                summary: format!(
                    "throughput {dir} to {rps:.1} req/s, {:.1}σ from its baseline of {:.1} req/s",
                    z.abs(),
                    b.mean
                ),
            });
        }
    }
}

struct Active {
    event: AlertEvent,
    /// Consecutive evaluations without the condition.
    clear: u32,
}

/// Active alerts and the most recent resolved ones.
pub struct AlertBook {
    active: Vec<Active>,
    recent: VecDeque<AlertEvent>,
    keep: usize,
    resolve_after: u32,
}

impl AlertBook {
    pub fn new(cfg: &AlertsConfig) -> Self {
        Self {
            active: Vec::new(),
            recent: VecDeque::new(),
            keep: cfg.keep_resolved,
            resolve_after: cfg.resolve_after.max(1),
        }
    }

    /// Applies one evaluation; returns the events to send.
    pub fn update(&mut self, now_ms: u64, holding: Vec<Condition>) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for a in &mut self.active {
            a.clear += 1;
        }
        for c in holding {
            match self.active.iter_mut().find(|a| a.event.key == c.key) {
                Some(a) => {
                    a.clear = 0;
                    a.event.value = c.value;
                    if c.severity > a.event.severity {
                        a.event.severity = c.severity;
                        a.event.summary = c.summary;
                        a.event.threshold = c.threshold;
                        events.push(a.event.clone());
                    }
                }
                None => {
                    let event = AlertEvent {
                        id: format!("{}-{now_ms}", c.key),
                        key: c.key,
                        status: AlertStatus::Firing,
                        severity: c.severity,
                        summary: c.summary,
                        value: c.value,
                        threshold: c.threshold,
                        started_at_ms: now_ms,
                        resolved_at_ms: None,
                    };
                    events.push(event.clone());
                    self.active.push(Active { event, clear: 0 });
                }
            }
        }
        let resolve_after = self.resolve_after;
        let (done, still): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|a| a.clear >= resolve_after);
        self.active = still;
        for a in done {
            let mut e = a.event;
            e.status = AlertStatus::Resolved;
            e.resolved_at_ms = Some(now_ms);
            e.summary = format!("resolved: {}", e.summary);
            events.push(e.clone());
            self.recent.push_front(e);
            self.recent.truncate(self.keep);
        }
        events
    }

    pub fn active(&self) -> Vec<AlertEvent> {
        self.active.iter().map(|a| a.event.clone()).collect()
    }

    pub fn recent(&self) -> Vec<AlertEvent> {
        self.recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::latency::{BUCKETS, bucket};
    use super::super::stats::{Latency, Sample};
    use super::*;

    fn cond(key: &'static str, severity: Severity) -> Condition {
        Condition {
            key,
            severity,
            value: 1.0,
            threshold: 0.5,
            summary: key.into(),
        }
    }

    #[test]
    fn fires_once_escalates_once_and_resolves_after_clear_evaluations() {
        let cfg = AlertsConfig {
            resolve_after: 2,
            ..AlertsConfig::default()
        };
        let mut book = AlertBook::new(&cfg);
        let e = book.update(1, vec![cond("latency", Severity::Warning)]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].status, AlertStatus::Firing);
        assert!(
            book.update(2, vec![cond("latency", Severity::Warning)])
                .is_empty()
        );
        let e = book.update(3, vec![cond("latency", Severity::Critical)]);
        assert_eq!((e.len(), e[0].severity), (1, Severity::Critical));
        assert!(
            book.update(4, vec![]).is_empty(),
            "one clear evaluation is not enough"
        );
        assert!(
            book.update(5, vec![cond("latency", Severity::Warning)])
                .is_empty()
        );
        assert!(book.update(6, vec![]).is_empty());
        let e = book.update(7, vec![]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].status, AlertStatus::Resolved);
        assert_eq!(
            e[0].id, "latency-1",
            "resolution names the occurrence it ends"
        );
        assert!(book.active().is_empty());
        assert_eq!(book.recent().len(), 1);
    }

    fn second(requests: u64, ms: f64) -> Second {
        let mut hist = [0u64; BUCKETS];
        hist[bucket(ms * 1000.0)] = requests;
        Second {
            t: 0,
            requests,
            errors: 0,
            slow: 0,
            items: requests,
            latency_us: (ms * 1000.0) as u64 * requests,
            hist,
            stage_us: [0; 7],
            timed: 0,
            sample: Sample::default(),
        }
    }

    #[test]
    fn thresholds_and_anomalies() {
        let cfg = AlertsConfig {
            min_baseline_secs: 10,
            latency_ms: 100.0,
            ..AlertsConfig::default()
        };
        let base: Vec<Second> = (0..30)
            .map(|i: u64| second(100 + i % 5, 10.0 + (i % 3) as f64))
            .collect();
        let base: Vec<&Second> = base.iter().collect();
        let calm = Summary {
            seconds: 10,
            requests: 1000,
            requests_per_second: 100.0,
            error_rate: Some(0.0),
            latency_ms: Latency {
                p99: Some(11.0),
                ..Latency::default()
            },
            ..Summary::default()
        };
        assert!(evaluate(&cfg, &calm, &base).is_empty());
        let slow = Summary {
            latency_ms: Latency {
                p99: Some(40.0),
                ..Latency::default()
            },
            ..calm.clone()
        };
        let keys: Vec<_> = evaluate(&cfg, &slow, &base).iter().map(|c| c.key).collect();
        assert_eq!(keys, ["latency_anomaly"]);
        let very_slow = Summary {
            latency_ms: Latency {
                p99: Some(250.0),
                ..Latency::default()
            },
            requests_per_second: 20.0,
            ..calm
        };
        let c = evaluate(&cfg, &very_slow, &base);
        let keys: Vec<_> = c.iter().map(|c| c.key).collect();
        assert_eq!(keys, ["latency", "latency_anomaly", "throughput_anomaly"]);
        assert_eq!(c[0].severity, Severity::Critical);
    }
}
