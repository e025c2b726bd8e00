//! SLA assertions such as `p99<50ms`, `errors<0.1%` or `rps>=1000`, checked
//! against a run's report; any failure makes the exit code non-zero.

use crate::error::{BenchError, Result};
use crate::report::{AssertionResult, RunReport};
use crate::units::fmt_ms;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// A latency statistic, in milliseconds.
    Latency(Stat),
    /// Failed requests as a fraction of all requests.
    ErrorRate,
    /// Failed requests.
    ErrorCount,
    RequestsPerS,
    ItemsPerS,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stat {
    Min,
    Mean,
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One parsed assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    pub expr: String,
    metric: Metric,
    op: Op,
    /// Milliseconds for latencies, a fraction for error rates, else a count.
    threshold: f64,
}

const HELP: &str = "expected METRIC OP VALUE, e.g. 'p99<50ms', 'errors<0.1%', 'errors=0' \
    or 'rps>=1000'; metrics: p50 p90 p95 p99 p99.9 max min mean errors rps items_per_s";

impl Assertion {
    pub fn parse(expr: &str) -> Result<Self> {
        let err = |m: &str| BenchError::invalid(format!("--assert {expr:?}"), m.to_string());
        let compact: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
        let (pos, op, len) = ["<=", ">=", "==", "<", ">", "="]
            .iter()
            .filter_map(|tok| compact.find(tok).map(|p| (p, *tok)))
            .min_by_key(|(p, tok)| (*p, std::cmp::Reverse(tok.len())))
            .map(|(p, tok)| {
                let op = match tok {
                    "<" => Op::Lt,
                    "<=" | "==" | "=" => Op::Le,
                    ">" => Op::Gt,
                    _ => Op::Ge,
                };
                (p, op, tok.len())
            })
            .ok_or_else(|| err(HELP))?;
        let name = compact[..pos].to_ascii_lowercase();
        let value = &compact[pos + len..];
        // `=` and `==` are only meaningful for counts (`errors=0`).
        let equality = matches!(&compact[pos..pos + len], "=" | "==");
        let metric = match name.as_str() {
            "p50" | "median" => Metric::Latency(Stat::P50),
            "p90" => Metric::Latency(Stat::P90),
            "p95" => Metric::Latency(Stat::P95),
            "p99" => Metric::Latency(Stat::P99),
            "p99.9" | "p999" => Metric::Latency(Stat::P999),
            "max" => Metric::Latency(Stat::Max),
            "min" => Metric::Latency(Stat::Min),
            "mean" | "avg" => Metric::Latency(Stat::Mean),
            "errors" | "error_rate" | "error" => Metric::ErrorCount,
            "rps" | "req/s" | "requests_per_s" | "throughput" => Metric::RequestsPerS,
            "items_per_s" | "items/s" | "ips" => Metric::ItemsPerS,
            _ => return Err(err(HELP)),
        };
        let (metric, threshold) = match metric {
            Metric::Latency(stat) => (
                Metric::Latency(stat),
                parse_latency_ms(value).ok_or_else(|| err(HELP))?,
            ),
            Metric::ErrorCount => match value.strip_suffix('%') {
                Some(pct) => (
                    Metric::ErrorRate,
                    parse_num(pct).ok_or_else(|| err(HELP))? / 100.0,
                ),
                None if name == "error_rate" => (
                    Metric::ErrorRate,
                    parse_num(value).ok_or_else(|| err(HELP))?,
                ),
                None => (
                    Metric::ErrorCount,
                    parse_num(value).ok_or_else(|| err(HELP))?,
                ),
            },
            m => (
                m,
                parse_num(value.trim_end_matches("/s")).ok_or_else(|| err(HELP))?,
            ),
        };
        if equality && threshold != 0.0 {
            return Err(err("'=' is only for zero, as in errors=0; use < or <="));
        }
        Ok(Self {
            expr: expr.trim().to_string(),
            metric,
            op,
            threshold,
        })
    }

    fn actual(&self, run: &RunReport) -> f64 {
        let l = &run.latency_ms;
        match self.metric {
            Metric::Latency(s) => match s {
                Stat::Min => l.min,
                Stat::Mean => l.mean,
                Stat::P50 => l.p50,
                Stat::P90 => l.p90,
                Stat::P95 => l.p95,
                Stat::P99 => l.p99,
                Stat::P999 => l.p999,
                Stat::Max => l.max,
            },
            Metric::ErrorRate => run.error_rate,
            Metric::ErrorCount => run.error_count as f64,
            Metric::RequestsPerS => run.requests_per_s,
            Metric::ItemsPerS => run.items_per_s,
        }
    }

    pub fn check(&self, run: &RunReport) -> AssertionResult {
        let actual = self.actual(run);
        let mut passed = match self.op {
            Op::Lt => actual < self.threshold,
            Op::Le => actual <= self.threshold,
            Op::Gt => actual > self.threshold,
            Op::Ge => actual >= self.threshold,
        };
        // A latency objective says nothing when nothing succeeded.
        if matches!(self.metric, Metric::Latency(_)) && run.successes == 0 {
            passed = false;
        }
        let shown = match self.metric {
            Metric::Latency(_) => format!("{} ms", fmt_ms(actual)),
            Metric::ErrorRate => format!("{:.3}%", actual * 100.0),
            Metric::ErrorCount => format!("{actual}"),
            Metric::RequestsPerS | Metric::ItemsPerS => format!("{actual:.1}/s"),
        };
        AssertionResult {
            expr: self.expr.clone(),
            actual: shown,
            passed,
        }
    }
}

fn parse_num(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

fn parse_latency_ms(s: &str) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v = parse_num(num)?;
    match unit {
        "" | "ms" => Some(v),
        "us" | "µs" => Some(v / 1000.0),
        "s" => Some(v * 1000.0),
        _ => None,
    }
}

/// Checks every assertion against the run.
pub fn check_all(run: &RunReport, exprs: &[String]) -> Result<Vec<AssertionResult>> {
    exprs
        .iter()
        .map(|e| Assertion::parse(e).map(|a| a.check(run)))
        .collect()
}

#[cfg(test)]
#[path = "assert_tests.rs"]
pub(crate) mod tests;
