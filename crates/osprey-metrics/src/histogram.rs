//! A Prometheus latency histogram recorded with two relaxed atomic adds: fixed
//! buckets, striped across threads, summed only when scraped. The `metrics`
//! recorder's histograms keep every sample (with a timestamp) in a shared list
//! until the next scrape or upkeep, which costs far more on a path taken several
//! times per request.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::striped::Striped;

/// Bucket upper bounds in seconds (Osprey gives the recorder's `_seconds`
/// histograms the same). Cache hits take tens of microseconds: resolve them too.
pub const LATENCY_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

const BOUNDS: usize = LATENCY_SECONDS.len();

/// The bounds in nanoseconds, for integer comparisons on the request path.
const LATENCY_NS: [u64; BOUNDS] = {
    let mut ns = [0u64; BOUNDS];
    let mut i = 0;
    while i < BOUNDS {
        ns[i] = (LATENCY_SECONDS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    ns
};

/// One thread's share: a count per bucket (not cumulative; the last bucket is
/// above every bound) and the sum of the samples.
#[derive(Debug, Default)]
struct Cells {
    buckets: [AtomicU64; BOUNDS + 1],
    sum_ns: AtomicU64,
}

#[derive(Debug, Default)]
pub struct LatencyHistogram(Striped<Cells>);

/// The bucket of a sample: how many bounds lie below it (a bound counts samples
/// up to and including itself). Compares against every bound, without branches.
fn bucket(ns: u64) -> usize {
    LATENCY_NS.iter().map(|&b| usize::from(b < ns)).sum()
}

/// A histogram summed over its stripes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts at each bound, then the total.
    pub cumulative: [u64; BOUNDS + 1],
    pub sum_seconds: f64,
}

impl LatencyHistogram {
    pub fn record(&self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&self, ns: u64) {
        let cells = self.0.local();
        cells.buckets[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        cells.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0u64; BOUNDS + 1];
        let mut sum_ns = 0u64;
        for cells in self.0.iter() {
            for (c, b) in counts.iter_mut().zip(&cells.buckets) {
                *c += b.load(Ordering::Relaxed);
            }
            sum_ns = sum_ns.wrapping_add(cells.sum_ns.load(Ordering::Relaxed));
        }
        let mut running = 0;
        for c in &mut counts {
            running += *c;
            *c = running;
        }
        HistogramSnapshot {
            cumulative: counts,
            sum_seconds: sum_ns as f64 / 1e9,
        }
    }

    /// The `_bucket`, `_sum` and `_count` lines of one series, as
    /// [`HistogramSnapshot::render`] writes them.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        self.snapshot().render(out, name, labels);
    }
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.cumulative[BOUNDS]
    }

    /// The `_bucket`, `_sum` and `_count` lines of one series in Prometheus text
    /// format; `labels` is `name="value",...` without braces (may be empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (le, n) in LATENCY_SECONDS.iter().zip(self.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braced = |out: &mut String| {
            if !labels.is_empty() {
                let _ = write!(out, "{{{labels}}}");
            }
        };
        let _ = write!(out, "{name}_sum");
        braced(out);
        let _ = writeln!(out, " {}", self.sum_seconds);
        let _ = write!(out, "{name}_count");
        braced(out);
        let _ = writeln!(out, " {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_match_the_seconds() {
        for (ns, s) in LATENCY_NS.iter().zip(LATENCY_SECONDS) {
            assert_eq!(*ns as f64 / 1e9, s);
        }
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(100_000), 0, "0.1 ms is within le=0.0001");
        assert_eq!(bucket(100_001), 1);
        assert_eq!(bucket(10_000_000_000), BOUNDS - 1);
        assert_eq!(bucket(10_000_000_001), BOUNDS);
    }

    #[test]
    fn renders_cumulative_buckets_sum_and_count() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(20));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "stage=\"cache\"");
        assert!(out.contains("x_seconds_bucket{stage=\"cache\",le=\"0.0001\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{stage=\"cache\",le=\"0.005\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{stage=\"cache\",le=\"10\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{stage=\"cache\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_seconds_sum{stage=\"cache\"} 20.00305\n"));
        assert!(out.contains("x_seconds_count{stage=\"cache\"} 3\n"));
        let mut bare = String::new();
        h.render(&mut bare, "y_seconds", "");
        assert!(bare.contains("y_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(bare.contains("y_seconds_count 3\n"));
    }
}
