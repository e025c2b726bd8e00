//! The report: what a run measured, in a shape that is written as JSON, read
//! back for `--compare`, printed as a table and drawn as HTML.

pub mod html;
pub mod json;
pub mod table;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::{fmt_ms, fmt_rate};

/// Marks a JSON file as ours, and its version.
pub const FORMAT: &str = "osprey-bench/1";

/// Everything one `osprey bench` invocation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub format: String,
    /// What was measured, e.g. "osprey onnx" or "python baseline".
    pub label: String,
    /// Seconds since the Unix epoch when the benchmark started.
    pub started_unix_s: u64,
    pub runs: Vec<RunReport>,
    #[serde(default)]
    pub sweeps: Vec<SweepSummary>,
}

/// One load level against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub name: String,
    pub url: String,
    pub api: String,
    /// `closed` (fixed concurrency) or `open` (fixed arrival rate).
    pub mode: String,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    pub arrival: Option<String>,
    pub connections: usize,
    pub workload: String,
    /// The measured window (warm-up excluded), in seconds.
    pub duration_s: f64,
    pub requests: u64,
    pub successes: u64,
    /// Texts in successful requests.
    pub items: u64,
    pub requests_per_s: f64,
    pub items_per_s: f64,
    /// Open loop: the rate requests were actually sent at.
    pub sent_per_s: Option<f64>,
    pub error_count: u64,
    pub error_rate: f64,
    /// Errors by kind: `http 429`, `timeout`, `connect`, `io`.
    pub errors: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Latency of successful requests. Open loop: from the intended send time,
    /// so a stall counts against every request it delayed.
    pub latency_ms: Percentiles,
    /// Open loop: from the actual send time (what a closed-loop tool reports).
    pub service_ms: Option<Percentiles>,
    /// Latency histogram on log-spaced buckets.
    pub histogram: Vec<HistogramBucket>,
    /// Latency and throughput per interval of the run.
    pub interval_s: f64,
    pub timeline: Vec<TimelinePoint>,
    /// The server process's CPU and memory, when `--pid` was given.
    pub server: Option<ServerStats>,
    /// `--assert` results; a failure sets the exit code.
    pub assertions: Vec<AssertionResult>,
    /// A sweep step's objective results; they decide the step, not the exit code.
    #[serde(default)]
    pub objective: Vec<AssertionResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub min: f64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistogramBucket {
    /// Upper bound of the bucket, inclusive, in milliseconds.
    pub le_ms: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// End of the interval, seconds from the start of the measured window.
    pub t_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    pub cpu_percent: f64,
    pub rss_mb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionResult {
    pub expr: String,
    pub actual: String,
    pub passed: bool,
}

/// A sweep: the load levels tried and the highest that met the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub name: String,
    /// `concurrency` or `rate`.
    pub axis: String,
    pub objective: Vec<String>,
    pub steps: Vec<SweepStep>,
    /// The highest load level that met every objective, if any did.
    pub best: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    pub load: f64,
    /// The name of the step's run in `runs`.
    pub run: String,
    pub passed: bool,
    pub requests_per_s: f64,
    pub p99_ms: f64,
}

impl SweepStep {
    /// Load level, requests/s and p99 ms, as every report prints them.
    pub fn figures(&self) -> [String; 3] {
        [
            fmt_rate(self.load),
            fmt_rate(self.requests_per_s),
            fmt_ms(self.p99_ms),
        ]
    }

    /// `meets` or `misses` the objective.
    pub fn verdict(&self) -> &'static str {
        if self.passed { "meets" } else { "misses" }
    }
}

impl BenchReport {
    /// Failed `--assert`s, plus one per sweep with assertions but no level
    /// meeting its objective.
    pub fn assertions_failed(&self) -> usize {
        self.runs
            .iter()
            .flat_map(|r| &r.assertions)
            .filter(|a| !a.passed)
            .count()
    }
}

impl RunReport {
    /// A short description of the load: `concurrency 64` or `rate 200/s poisson`.
    pub fn load_label(&self) -> String {
        match (self.mode.as_str(), self.concurrency, self.rate) {
            ("open", _, Some(rate)) => format!(
                "rate {}/s {} ({} conns)",
                crate::units::fmt_rate(rate),
                self.arrival.as_deref().unwrap_or("constant"),
                self.connections
            ),
            (_, Some(c), _) => format!("concurrency {c}"),
            _ => self.mode.clone(),
        }
    }
}
