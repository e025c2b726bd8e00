//! Alert rules (thresholds and anomalies) and the book of active and recent
//! alerts. The book emits an event only when an alert starts, escalates or
//! resolves, so a condition that holds for an hour is one message, not thousands.

mod anomalies;
mod thresholds;

use std::collections::VecDeque;

use serde::Serialize;

use crate::config::AlertsConfig;
use crate::stats::{Second, Summary};

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

/// Every rule that holds for the judged `window`, given the `base` seconds before
/// it: the thresholds, then (with `anomaly_sigma` set) the anomalies.
pub fn evaluate(cfg: &AlertsConfig, window: &Summary, base: &[&Second]) -> Vec<Condition> {
    let mut out = thresholds::holding(cfg, window);
    if cfg.anomaly_sigma > 0.0 {
        out.extend(anomalies::holding(cfg, window, base));
    }
    out
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

    /// Follows changed settings; active alerts stay as they are.
    pub fn retune(&mut self, cfg: &AlertsConfig) {
        self.keep = cfg.keep_resolved;
        self.resolve_after = cfg.resolve_after.max(1);
        while self.recent.len() > self.keep {
            self.recent.pop_back();
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
    use super::*;
    use crate::latency::{BUCKETS, bucket};
    use crate::stats::{Latency, Sample};

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
            span: 1,
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
