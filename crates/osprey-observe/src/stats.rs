//! Rolling statistics of the inference routes: the request path adds to atomic
//! counters of the current second (striped across threads); once a second they are
//! summed and swapped into an hour of per-second history, together with the gauges
//! sampled then (CPU, memory, queue, batches, cache). Every window, percentile, CSV
//! row, dashboard series, SLO and alert is computed from that history.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use osprey_metrics::Striped;
use serde::Serialize;

use crate::latency::{BUCKETS, bucket, quantile_ms};

/// The stages every embedding request is timed in, in order.
pub const STAGES: [&str; 7] = [
    "validate",
    "cache",
    "tokenize",
    "queue",
    "inference",
    "postprocess",
    "serialize",
];

/// The stages of [`STAGES`], by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Validate,
    Cache,
    Tokenize,
    Queue,
    Inference,
    Postprocess,
    Serialize,
}

/// Seconds of history kept.
pub const HISTORY_SECS: usize = 3600;

/// A failed request for the error rate and the SLO: a server error, or a refusal
/// under overload (the client did nothing wrong).
pub fn is_error(status: u16) -> bool {
    status >= 500 || status == 429
}

/// The counters of the second in progress (one thread's stripe of them).
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
    slow: AtomicU64,
    items: AtomicU64,
    latency_us: AtomicU64,
    hist: [AtomicU64; BUCKETS],
    stage_us: [AtomicU64; STAGES.len()],
    timed: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            requests: zero(),
            errors: zero(),
            slow: zero(),
            items: zero(),
            latency_us: zero(),
            hist: std::array::from_fn(|_| zero()),
            stage_us: std::array::from_fn(|_| zero()),
            timed: zero(),
        }
    }
}

/// Cache lookups of one tier during one second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierSecond {
    pub tier: &'static str,
    pub hits: u64,
    pub misses: u64,
}

/// Gauges read once a second, beside the request counters.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Process CPU, percent of all cores.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub queue_tokens: u64,
    pub in_flight: u64,
    pub batches: u64,
    pub batch_items: u64,
    pub cache: Vec<TierSecond>,
}

/// One second of history.
#[derive(Debug, Clone)]
pub struct Second {
    /// Unix time (seconds) at the end of this second; for a minute of the day's
    /// history, the minute's start.
    pub t: u64,
    /// Seconds of statistics summed in: 1, or up to 60 for a minute.
    pub span: u64,
    pub requests: u64,
    pub errors: u64,
    /// Requests slower than the SLO's latency objective.
    pub slow: u64,
    pub items: u64,
    pub latency_us: u64,
    pub hist: [u64; BUCKETS],
    pub stage_us: [u64; STAGES.len()],
    /// Requests that reported stage timings.
    pub timed: u64,
    pub sample: Sample,
}

impl Second {
    /// Nothing counted yet, at unix time `t`.
    pub fn empty(t: u64) -> Self {
        Self {
            t,
            span: 0,
            requests: 0,
            errors: 0,
            slow: 0,
            items: 0,
            latency_us: 0,
            hist: [0; BUCKETS],
            stage_us: [0; STAGES.len()],
            timed: 0,
            sample: Sample::default(),
        }
    }

    pub fn p99_ms(&self) -> Option<f64> {
        quantile_ms(&self.hist, 0.99)
    }
}

pub struct RollingStats {
    live: Striped<Live>,
    history: Mutex<VecDeque<Second>>,
    /// The SLO's latency objective; changed live.
    slow_us: AtomicU64,
}

/// Percentiles of a window, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierRate {
    pub tier: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: Option<f64>,
}

/// A window of history summed up.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Seconds of history the window covers (less than asked right after start).
    pub seconds: u64,
    pub requests: u64,
    pub errors: u64,
    pub slow: u64,
    pub items: u64,
    pub requests_per_second: f64,
    pub items_per_second: f64,
    pub error_rate: Option<f64>,
    pub latency_ms: Latency,
    /// Mean milliseconds per request in each stage.
    pub stages_ms: Vec<(&'static str, f64)>,
    pub cache: Vec<TierRate>,
    /// Share of inputs served from any cache tier.
    pub cache_hit_rate: Option<f64>,
    pub mean_batch_size: Option<f64>,
    pub cpu_percent_mean: f64,
    pub cpu_percent_max: f64,
    pub rss_bytes_max: u64,
    pub queue_tokens_max: u64,
}

impl RollingStats {
    pub fn new(slow: Duration) -> Self {
        Self {
            live: Striped::default(),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SECS)),
            slow_us: AtomicU64::new(slow.as_micros() as u64),
        }
    }

    /// Counts requests slower than `slow` as slow from now on.
    pub fn set_slow(&self, slow: Duration) {
        self.slow_us
            .store(slow.as_micros() as u64, Ordering::Relaxed);
    }

    /// One finished request (the hot path: relaxed atomic adds on this thread's
    /// stripe only); `stage_ns` in [`STAGES`] order.
    pub fn record(
        &self,
        latency: Duration,
        status: u16,
        items: usize,
        stage_ns: Option<&[u64; STAGES.len()]>,
    ) {
        let l = self.live.local();
        let us = latency.as_micros() as u64;
        l.requests.fetch_add(1, Ordering::Relaxed);
        if is_error(status) {
            l.errors.fetch_add(1, Ordering::Relaxed);
        }
        if us > self.slow_us.load(Ordering::Relaxed) {
            l.slow.fetch_add(1, Ordering::Relaxed);
        }
        l.items.fetch_add(items as u64, Ordering::Relaxed);
        l.latency_us.fetch_add(us, Ordering::Relaxed);
        l.hist[bucket(us as f64)].fetch_add(1, Ordering::Relaxed);
        if let Some(stage_ns) = stage_ns {
            l.timed.fetch_add(1, Ordering::Relaxed);
            for (sum, ns) in l.stage_us.iter().zip(stage_ns) {
                sum.fetch_add(ns / 1000, Ordering::Relaxed);
            }
        }
    }

    /// Closes the second ending at unix time `t` into the history.
    pub fn roll(&self, t: u64, sample: Sample) {
        // One counter summed over the stripes, each reset for the next second.
        let take = |cell: &dyn Fn(&Live) -> &AtomicU64| -> u64 {
            self.live
                .iter()
                .map(|l| cell(l).swap(0, Ordering::Relaxed))
                .sum()
        };
        let second = Second {
            t,
            span: 1,
            requests: take(&|l| &l.requests),
            errors: take(&|l| &l.errors),
            slow: take(&|l| &l.slow),
            items: take(&|l| &l.items),
            latency_us: take(&|l| &l.latency_us),
            hist: std::array::from_fn(|i| take(&|l| &l.hist[i])),
            stage_us: std::array::from_fn(|i| take(&|l| &l.stage_us[i])),
            timed: take(&|l| &l.timed),
            sample,
        };
        let mut h = self.lock();
        if h.len() == HISTORY_SECS {
            h.pop_front();
        }
        h.push_back(second);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Second>> {
        // The history stays consistent even if a holder panicked: recover it.
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` over the last `seconds` of history (oldest first).
    pub fn with_last<R>(&self, seconds: u64, f: impl FnOnce(&[&Second]) -> R) -> R {
        let h = self.lock();
        let n = (seconds as usize).min(h.len());
        let slice: Vec<&Second> = h.iter().skip(h.len() - n).collect();
        f(&slice)
    }

    /// `seconds` of history, skipping the most recent `skip` seconds.
    pub fn with_range<R>(&self, skip: u64, seconds: u64, f: impl FnOnce(&[&Second]) -> R) -> R {
        let h = self.lock();
        let end = h.len().saturating_sub(skip as usize);
        let start = end.saturating_sub(seconds as usize);
        let slice: Vec<&Second> = h.range(start..end).collect();
        f(&slice)
    }

    pub fn summary(&self, seconds: u64) -> Summary {
        self.with_last(seconds, summarize)
    }

    /// Unix time of the newest second in the history.
    pub fn newest(&self) -> Option<u64> {
        self.lock().back().map(|s| s.t)
    }

    /// The last `seconds` of history as CSV, one row per second.
    pub fn csv(&self, seconds: u64) -> String {
        self.with_last(seconds, |rows| csv(rows.iter().copied()))
    }
}

/// Rows of history as CSV: seconds, or the day history's minutes (`seconds` says
/// how many seconds each row sums; counts are totals over them, CPU a mean, memory
/// and queue peaks). Every field is a number or a fixed stage name, so nothing ever
/// needs quoting or escaping: written directly rather than through a CSV writer,
/// which would be a new dependency for no difference in output.
pub fn csv<'a>(rows: impl ExactSizeIterator<Item = &'a Second>) -> String {
    let mut out = String::with_capacity(64 + rows.len() * 160);
    out.push_str("unix_time,seconds,requests,errors,slow,items,mean_ms,p50_ms,p95_ms,p99_ms");
    for s in STAGES {
        let _ = write!(out, ",{s}_ms");
    }
    out.push_str(
        ",cache_hits,cache_lookups,mean_batch_size,queue_tokens,in_flight,cpu_percent,rss_bytes\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    for s in rows {
        let mean = (s.requests > 0).then(|| s.latency_us as f64 / s.requests as f64 / 1000.0);
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            s.t,
            s.span,
            s.requests,
            s.errors,
            s.slow,
            s.items,
            opt(mean),
            opt(quantile_ms(&s.hist, 0.5)),
            opt(quantile_ms(&s.hist, 0.95)),
            opt(quantile_ms(&s.hist, 0.99)),
        );
        for us in s.stage_us {
            let v = (s.timed > 0).then(|| us as f64 / s.timed as f64 / 1000.0);
            let _ = write!(out, ",{}", opt(v));
        }
        let (hits, lookups) = cache_totals(&s.sample.cache);
        let batch =
            (s.sample.batches > 0).then(|| s.sample.batch_items as f64 / s.sample.batches as f64);
        let _ = writeln!(
            out,
            ",{hits},{lookups},{},{},{},{:.1},{}",
            opt(batch),
            s.sample.queue_tokens,
            s.sample.in_flight,
            s.sample.cpu_percent,
            s.sample.rss_bytes
        );
    }
    out
}

/// Hits in any tier, and lookups (every lookup reaches the first tier).
fn cache_totals(tiers: &[TierSecond]) -> (u64, u64) {
    let hits = tiers.iter().map(|t| t.hits).sum();
    let lookups = tiers.first().map_or(0, |t| t.hits + t.misses);
    (hits, lookups)
}

pub fn summarize(seconds: &[&Second]) -> Summary {
    let mut hist = [0u64; BUCKETS];
    let mut stage_us = [0u64; STAGES.len()];
    let mut s = Summary {
        seconds: seconds.iter().map(|sec| sec.span).sum(),
        ..Summary::default()
    };
    let (mut latency_us, mut timed, mut batches, mut batch_items) = (0u64, 0u64, 0u64, 0u64);
    let mut cpu_sum = 0.0;
    let mut cache: Vec<TierRate> = Vec::new();
    for sec in seconds {
        s.requests += sec.requests;
        s.errors += sec.errors;
        s.slow += sec.slow;
        s.items += sec.items;
        latency_us += sec.latency_us;
        timed += sec.timed;
        for (a, b) in hist.iter_mut().zip(sec.hist) {
            *a += b;
        }
        for (a, b) in stage_us.iter_mut().zip(sec.stage_us) {
            *a += b;
        }
        let smp = &sec.sample;
        batches += smp.batches;
        batch_items += smp.batch_items;
        cpu_sum += smp.cpu_percent * sec.span as f64;
        s.cpu_percent_max = s.cpu_percent_max.max(smp.cpu_percent);
        s.rss_bytes_max = s.rss_bytes_max.max(smp.rss_bytes);
        s.queue_tokens_max = s.queue_tokens_max.max(smp.queue_tokens);
        for t in &smp.cache {
            match cache.iter_mut().find(|c| c.tier == t.tier) {
                Some(c) => {
                    c.hits += t.hits;
                    c.misses += t.misses;
                }
                None => cache.push(TierRate {
                    tier: t.tier,
                    hits: t.hits,
                    misses: t.misses,
                    hit_rate: None,
                }),
            }
        }
    }
    let n = s.seconds.max(1) as f64;
    s.requests_per_second = s.requests as f64 / n;
    s.items_per_second = s.items as f64 / n;
    s.cpu_percent_mean = cpu_sum / n;
    if s.requests > 0 {
        s.error_rate = Some(s.errors as f64 / s.requests as f64);
        s.latency_ms = Latency {
            mean: Some(latency_us as f64 / s.requests as f64 / 1000.0),
            p50: quantile_ms(&hist, 0.5),
            p90: quantile_ms(&hist, 0.9),
            p95: quantile_ms(&hist, 0.95),
            p99: quantile_ms(&hist, 0.99),
            p999: quantile_ms(&hist, 0.999),
        };
    }
    if timed > 0 {
        s.stages_ms = STAGES
            .iter()
            .zip(stage_us)
            .map(|(name, us)| (*name, us as f64 / timed as f64 / 1000.0))
            .collect();
    }
    for c in &mut cache {
        let lookups = c.hits + c.misses;
        c.hit_rate = (lookups > 0).then(|| c.hits as f64 / lookups as f64);
    }
    let hits: u64 = cache.iter().map(|c| c.hits).sum();
    let lookups = cache.first().map_or(0, |c| c.hits + c.misses);
    s.cache_hit_rate = (lookups > 0).then(|| hits as f64 / lookups as f64);
    s.cache = cache;
    s.mean_batch_size = (batches > 0).then(|| batch_items as f64 / batches as f64);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_sum_seconds_and_keep_an_hour() {
        let stats = RollingStats::new(Duration::from_millis(50));
        let cache_1ms = [0, 1_000_000, 0, 0, 0, 0, 0];
        stats.record(Duration::from_millis(10), 200, 2, Some(&cache_1ms));
        stats.record(Duration::from_millis(100), 200, 1, None);
        stats.record(Duration::from_millis(1), 503, 1, None);
        stats.roll(1000, Sample::default());
        stats.roll(1001, Sample::default());
        let s = stats.summary(60);
        assert_eq!(
            (s.seconds, s.requests, s.errors, s.slow, s.items),
            (2, 3, 1, 1, 4)
        );
        assert_eq!(s.requests_per_second, 1.5);
        assert!((s.error_rate.unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-9);
        let p99 = s.latency_ms.p99.unwrap_or(0.0);
        assert!((80.0..=130.0).contains(&p99), "p99 {p99}");
        let cache = s.stages_ms.iter().find(|(n, _)| *n == "cache").map(|x| x.1);
        assert_eq!(cache, Some(1.0));
        assert_eq!(stats.summary(1).requests, 0, "the newest second is empty");
        for t in 0..HISTORY_SECS as u64 + 10 {
            stats.roll(2000 + t, Sample::default());
        }
        assert_eq!(stats.summary(u64::MAX).seconds, HISTORY_SECS as u64);
        let csv = stats.csv(u64::MAX);
        assert_eq!(csv.lines().count(), HISTORY_SECS + 1);
        let cols = csv.lines().next().map_or(0, |l| l.split(',').count());
        assert!(csv.lines().all(|l| l.split(',').count() == cols));
    }

    #[test]
    fn cache_hit_rate_counts_hits_in_any_tier_per_lookup() {
        let stats = RollingStats::new(Duration::from_millis(50));
        let sample = Sample {
            cache: vec![
                TierSecond {
                    tier: "memory",
                    hits: 6,
                    misses: 4,
                },
                TierSecond {
                    tier: "redis",
                    hits: 2,
                    misses: 2,
                },
            ],
            ..Sample::default()
        };
        stats.roll(1, sample);
        let s = stats.summary(10);
        assert_eq!(s.cache_hit_rate, Some(0.8));
        assert_eq!(s.cache[1].hit_rate, Some(0.5));
    }
}
