//! The dashboard: one self-contained page (its charts are drawn by its own canvas
//! code) and the per-second series it polls.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::SloConfig;
use crate::latency::quantile_ms;
use crate::monitor::Observer;
use crate::report::AlertList;
use crate::slo::SloStatus;
use crate::stats::{STAGES, Second, Summary};

/// The page served at `GET /dashboard`.
pub const DASHBOARD_PAGE: &str = include_str!("../assets/dashboard.html");

/// Seconds sent on the first poll.
const FIRST_POLL_SECS: u64 = 300;
/// Resolved alerts sent with each poll.
const RECENT_ALERTS: usize = 5;

/// `GET /dashboard/data`: the seconds after `since` (the last five minutes on the
/// first poll), the last minute summed up, the SLOs and the alerts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DashboardData {
    /// Unix time of the newest second.
    pub now: u64,
    pub metrics_enabled: bool,
    pub cores: usize,
    pub series: Series,
    pub minute: Summary,
    pub slo: SloStatus,
    pub slo_config: SloConfig,
    pub alerts: AlertList,
}

/// One column per chart line, one entry per second; `None` where a second has no
/// value (no requests, no timed stage).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Series {
    pub t: Vec<u64>,
    pub rps: Vec<u64>,
    pub errors: Vec<u64>,
    pub p50: Vec<Option<f64>>,
    pub p95: Vec<Option<f64>>,
    pub p99: Vec<Option<f64>>,
    /// Mean milliseconds per stage.
    pub stages: BTreeMap<&'static str, Vec<Option<f64>>>,
    /// By cache tier.
    pub hit_rate: BTreeMap<&'static str, Vec<Option<f64>>>,
    pub batch: Vec<Option<f64>>,
    pub queue: Vec<u64>,
    pub in_flight: Vec<u64>,
    pub cpu: Vec<f64>,
    pub rss_mb: Vec<f64>,
}

/// Three decimals are plenty on a chart and keep each poll small.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn opt(v: Option<f64>) -> Option<f64> {
    v.map(round)
}

impl Series {
    /// Every stage has a column, even before any second does.
    fn new() -> Self {
        Self {
            stages: STAGES.iter().map(|name| (*name, Vec::new())).collect(),
            ..Self::default()
        }
    }

    fn push(&mut self, s: &Second) {
        self.t.push(s.t);
        self.rps.push(s.requests);
        self.errors.push(s.errors);
        self.p50.push(opt(quantile_ms(&s.hist, 0.5)));
        self.p95.push(opt(quantile_ms(&s.hist, 0.95)));
        self.p99.push(opt(quantile_ms(&s.hist, 0.99)));
        for (i, name) in STAGES.iter().enumerate() {
            let mean = (s.timed > 0).then(|| s.stage_us[i] as f64 / s.timed as f64 / 1000.0);
            self.stages.entry(name).or_default().push(opt(mean));
        }
        let smp = &s.sample;
        let batch = (smp.batches > 0).then(|| smp.batch_items as f64 / smp.batches as f64);
        self.batch.push(opt(batch));
        self.queue.push(smp.queue_tokens);
        self.in_flight.push(smp.in_flight);
        self.cpu.push(round(smp.cpu_percent));
        self.rss_mb.push(round(smp.rss_bytes as f64 / 1048576.0));
    }

    /// Hit rates per tier: a column for every tier seen in any of the seconds.
    fn hit_rates(&mut self, secs: &[&Second]) {
        for s in secs {
            for t in &s.sample.cache {
                self.hit_rate.entry(t.tier).or_insert_with(|| {
                    secs.iter()
                        .map(|s| {
                            let t = s.sample.cache.iter().find(|x| x.tier == t.tier)?;
                            let lookups = t.hits + t.misses;
                            opt((lookups > 0).then(|| t.hits as f64 / lookups as f64))
                        })
                        .collect()
                });
            }
        }
    }
}

impl Observer {
    /// What the dashboard draws, for the seconds after `since` (unix seconds).
    pub fn dashboard(&self, since: Option<u64>) -> DashboardData {
        let newest = self.stats.newest().unwrap_or(0);
        let first = since.unwrap_or(newest.saturating_sub(FIRST_POLL_SECS));
        let series = self.stats.with_last(FIRST_POLL_SECS, |secs| {
            let secs: Vec<&Second> = secs.iter().copied().filter(|s| s.t > first).collect();
            let mut series = Series::new();
            for s in &secs {
                series.push(s);
            }
            series.hit_rates(&secs);
            series
        });
        let mut alerts = self.alert_list();
        alerts.recent.truncate(RECENT_ALERTS);
        DashboardData {
            now: newest,
            metrics_enabled: self.config.metrics,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            series,
            minute: self.stats.summary(60),
            slo: self.slo(),
            slo_config: self.rules().0,
            alerts,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::ObserveConfig;
    use crate::monitor::Observer;
    use crate::stats::{Sample, TierSecond};

    #[test]
    fn data_has_a_column_per_line_and_stage_and_tier() {
        let obs = Observer::new(ObserveConfig::default());
        let empty = serde_json::to_value(obs.dashboard(None)).expect("json");
        assert_eq!(
            empty["series"]["stages"].as_object().map(|m| m.len()),
            Some(7)
        );
        obs.stats.record(Duration::from_millis(5), 200, 2, None);
        let sample = Sample {
            cache: vec![TierSecond {
                tier: "memory",
                hits: 3,
                misses: 1,
            }],
            ..Sample::default()
        };
        obs.stats.roll(100, sample);
        obs.stats.roll(101, Sample::default());
        let d = serde_json::to_value(obs.dashboard(Some(99))).expect("json");
        assert_eq!(d["now"], 101);
        let s = &d["series"];
        assert_eq!(s["t"], serde_json::json!([100, 101]));
        assert_eq!(s["rps"], serde_json::json!([1, 0]));
        assert_eq!(s["hit_rate"]["memory"], serde_json::json!([0.75, null]));
        assert_eq!(s["stages"]["cache"], serde_json::json!([null, null]));
        assert!(s["p99"][0].as_f64().is_some() && s["p99"][1].is_null());
        for key in ["minute", "slo", "slo_config", "cores", "metrics_enabled"] {
            assert!(!d[key].is_null(), "{key}");
        }
        assert!(d["alerts"]["active"].is_array() && d["alerts"]["recent"].is_array());
        let later = serde_json::to_value(obs.dashboard(Some(100))).expect("json");
        assert_eq!(later["series"]["t"], serde_json::json!([101]));
    }

    #[test]
    fn stats_report_keeps_its_window_names() {
        let obs = Observer::new(ObserveConfig::default());
        let r = serde_json::to_value(obs.report(1.5)).expect("json");
        for w in ["1m", "5m", "1h"] {
            assert_eq!(r["windows"][w]["requests"], 0, "{w}");
        }
        assert_eq!(r["uptime_seconds"], 1.5);
        assert_eq!(r["alerts_active"], 0);
    }

    #[test]
    fn an_infinite_latency_objective_does_not_panic() {
        let mut config = ObserveConfig::default();
        config.slo.latency_ms = f64::INFINITY;
        let obs = Observer::new(config);
        obs.stats.record(Duration::from_secs(30), 200, 1, None);
        obs.stats.roll(1, Sample::default());
        assert_eq!(obs.stats.summary(10).slow, 0, "an hour's objective is met");
    }
}
