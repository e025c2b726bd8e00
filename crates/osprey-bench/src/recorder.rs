//! Collects what the workers see: latency histograms (HdrHistogram, microsecond
//! resolution), a per-interval timeline, error counts and bytes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::Failure;
use crate::report::{HistogramBucket, Percentiles, TimelinePoint};

/// Latencies are recorded in microseconds, up to an hour.
const MAX_US: u64 = 3_600_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; fall back to an
    // auto-resizing one rather than fail.
    Histogram::new_with_bounds(1, MAX_US, sigfig).unwrap_or_else(|_| {
        let mut h = Histogram::new(sigfig.min(5)).unwrap_or_else(|_| unreachable_histogram());
        h.auto(true);
        h
    })
}

#[allow(clippy::expect_used)]
fn unreachable_histogram() -> Histogram<u64> {
    Histogram::new(2).expect("two significant figures are always valid")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

/// The running totals a progress line shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub completed: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub struct Recorder {
    /// Start of the measured window; anything meant to start before it is warm-up.
    pub measure_from: Instant,
    latency: Histogram<u64>,
    service: Option<Histogram<u64>>,
    interval: Duration,
    interval_index: u64,
    interval_hist: Histogram<u64>,
    interval_requests: u64,
    interval_errors: u64,
    timeline: Vec<TimelinePoint>,
    pub requests: u64,
    pub successes: u64,
    pub items: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub last_done: Option<Instant>,
}

/// The outcome of one request, as the recorder needs it.
pub struct Sample<'a> {
    /// Where latency is measured from: the actual send time in closed loop, the
    /// intended send time in open loop.
    pub start: Instant,
    /// The actual send time.
    pub sent: Instant,
    pub done: Instant,
    pub result: &'a Result<(), Failure>,
    pub items: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Recorder {
    pub fn new(measure_from: Instant, interval: Duration, open_loop: bool) -> Self {
        Self {
            measure_from,
            latency: histogram(3),
            service: open_loop.then(|| histogram(3)),
            interval: interval.max(Duration::from_millis(10)),
            interval_index: 0,
            interval_hist: histogram(2),
            interval_requests: 0,
            interval_errors: 0,
            timeline: Vec::new(),
            requests: 0,
            successes: 0,
            items: 0,
            errors: BTreeMap::new(),
            error_count: 0,
            bytes_sent: 0,
            bytes_received: 0,
            last_done: None,
        }
    }

    /// Whether a request meant to start at `start` is measured (not warm-up).
    pub fn measures(&self, start: Instant) -> bool {
        start >= self.measure_from
    }

    pub fn record(&mut self, s: Sample<'_>) {
        if !self.measures(s.start) {
            return;
        }
        self.roll_to(s.done);
        self.requests += 1;
        self.interval_requests += 1;
        self.bytes_sent += s.bytes_sent;
        self.bytes_received += s.bytes_received;
        self.last_done = Some(self.last_done.map_or(s.done, |d| d.max(s.done)));
        match s.result {
            Ok(()) => {
                let us = micros(s.done.saturating_duration_since(s.start));
                self.successes += 1;
                self.items += u64::from(s.items);
                let _ = self.latency.record(us);
                let _ = self.interval_hist.record(us);
                if let Some(h) = self.service.as_mut() {
                    let _ = h.record(micros(s.done.saturating_duration_since(s.sent)));
                }
            }
            Err(f) => self.record_error(f, s.done),
        }
    }

    fn record_error(&mut self, failure: &Failure, at: Instant) {
        self.roll_to(at);
        *self.errors.entry(failure.key()).or_default() += 1;
        self.error_count += 1;
        self.interval_errors += 1;
    }

    /// A request that was never sent: open loop drops one whose intended send
    /// time is already a whole timeout in the past.
    pub fn record_dropped(&mut self, intended: Instant, at: Instant) {
        if !self.measures(intended) {
            return;
        }
        self.requests += 1;
        self.interval_requests += 1;
        self.last_done = Some(self.last_done.map_or(at, |d| d.max(at)));
        self.record_error(&Failure::Timeout, at);
    }

    /// Closes every interval that ended before `now`.
    pub fn roll_to(&mut self, now: Instant) {
        let idx = (now.saturating_duration_since(self.measure_from).as_nanos()
            / self.interval.as_nanos().max(1)) as u64;
        while self.interval_index < idx {
            self.close_interval();
        }
    }

    fn close_interval(&mut self) {
        let h = &self.interval_hist;
        let ms = |v: u64| v as f64 / 1000.0;
        let (p50, p99, max) = if h.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            )
        };
        self.interval_index += 1;
        self.timeline.push(TimelinePoint {
            t_s: self.interval_index as f64 * self.interval.as_secs_f64(),
            requests: self.interval_requests,
            errors: self.interval_errors,
            p50_ms: p50,
            p99_ms: p99,
            max_ms: max,
        });
        self.interval_hist.reset();
        self.interval_requests = 0;
        self.interval_errors = 0;
    }

    pub fn snapshot(&self) -> Snapshot {
        let ms = |v: u64| v as f64 / 1000.0;
        Snapshot {
            completed: self.requests,
            errors: self.error_count,
            p50_ms: if self.latency.is_empty() {
                0.0
            } else {
                ms(self.latency.value_at_quantile(0.5))
            },
            p99_ms: if self.latency.is_empty() {
                0.0
            } else {
                ms(self.latency.value_at_quantile(0.99))
            },
        }
    }

    /// The measured window: from its start to the last completion (at least `min`).
    pub fn elapsed(&self, min: Duration) -> Duration {
        self.last_done
            .map(|d| d.saturating_duration_since(self.measure_from))
            .unwrap_or_default()
            .max(min)
    }

    /// Closes the last partial interval and hands out the timeline.
    pub fn finish_timeline(&mut self, end: Instant) -> Vec<TimelinePoint> {
        self.roll_to(end);
        if self.interval_requests > 0 || self.interval_errors > 0 {
            let idx = self.interval_index;
            self.close_interval();
            // The last interval is partial: stamp it with the real end.
            if let Some(p) = self.timeline.last_mut() {
                let real = end
                    .saturating_duration_since(self.measure_from)
                    .as_secs_f64();
                p.t_s = real.max(idx as f64 * self.interval.as_secs_f64());
            }
        }
        std::mem::take(&mut self.timeline)
    }

    pub fn latency(&self) -> Percentiles {
        percentiles(&self.latency)
    }

    pub fn service(&self) -> Option<Percentiles> {
        self.service.as_ref().map(percentiles)
    }

    /// Counts on log-spaced buckets, ten per decade, from the fastest to the
    /// slowest request.
    pub fn buckets(&self) -> Vec<HistogramBucket> {
        let h = &self.latency;
        if h.is_empty() {
            return Vec::new();
        }
        let step = 10f64.powf(0.1);
        let mut edges: Vec<u64> = Vec::new();
        let mut edge = 10f64.powf((h.min().max(1) as f64).log10().floor());
        loop {
            let hi = edge.ceil() as u64;
            if edges.last().is_none_or(|&last| hi > last) {
                edges.push(hi);
            }
            if hi >= h.max() || edges.len() > 200 {
                break;
            }
            edge *= step;
        }
        let mut counts = vec![0u64; edges.len()];
        let last = edges.len() - 1;
        for v in h.iter_recorded() {
            let i = edges
                .partition_point(|&e| e < v.value_iterated_to())
                .min(last);
            counts[i] += v.count_at_value();
        }
        edges
            .into_iter()
            .zip(counts)
            .map(|(hi, count)| HistogramBucket {
                le_ms: hi as f64 / 1000.0,
                count,
            })
            .collect()
    }
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |v: u64| v as f64 / 1000.0;
    let q = |x: f64| ms(h.value_at_quantile(x));
    Percentiles {
        min: ms(h.min()),
        mean: h.mean() / 1000.0,
        stdev: h.stdev() / 1000.0,
        p50: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec_ok(r: &mut Recorder, start: Instant, ms: u64) {
        let done = start + Duration::from_millis(ms);
        r.record(Sample {
            start,
            sent: start,
            done,
            result: &Ok(()),
            items: 2,
            bytes_sent: 10,
            bytes_received: 20,
        });
    }

    #[test]
    fn percentiles_of_known_latencies() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0, Duration::from_secs(1), false);
        for ms in 1..=1000 {
            rec_ok(&mut r, t0, ms);
        }
        let p = r.latency();
        let near = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.001;
        assert!(near(p.p50, 500.0), "{p:?}");
        assert!(near(p.p90, 900.0), "{p:?}");
        assert!(near(p.p99, 990.0), "{p:?}");
        assert!(near(p.max, 1000.0), "{p:?}");
        assert!(near(p.min, 1.0), "{p:?}");
        assert_eq!(
            (r.items, r.bytes_sent, r.bytes_received),
            (2000, 10_000, 20_000)
        );
        let b = r.buckets();
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 1000);
        assert!(b.windows(2).all(|w| w[0].le_ms < w[1].le_ms));
    }

    #[test]
    fn warmup_is_not_recorded_and_errors_are_counted_by_kind() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0 + Duration::from_secs(1), Duration::from_secs(1), false);
        rec_ok(&mut r, t0, 5);
        assert_eq!(r.requests, 0);
        let start = t0 + Duration::from_secs(2);
        r.record(Sample {
            start,
            sent: start,
            done: start,
            result: &Err(Failure::Status(429)),
            items: 1,
            bytes_sent: 1,
            bytes_received: 1,
        });
        r.record(Sample {
            start,
            sent: start,
            done: start,
            result: &Err(Failure::Timeout),
            items: 1,
            bytes_sent: 1,
            bytes_received: 0,
        });
        assert_eq!(r.requests, 2);
        assert_eq!(r.error_count, 2);
        assert_eq!(r.errors.get("http 429"), Some(&1));
        assert_eq!(r.errors.get("timeout"), Some(&1));
        assert_eq!(r.successes, 0);
    }

    #[test]
    fn timeline_has_a_point_per_interval_even_when_idle() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0, Duration::from_millis(100), false);
        rec_ok(&mut r, t0, 10);
        rec_ok(&mut r, t0 + Duration::from_millis(450), 10);
        let tl = r.finish_timeline(t0 + Duration::from_millis(470));
        assert_eq!(tl.len(), 5, "{tl:?}");
        assert_eq!(
            tl.iter().map(|p| p.requests).collect::<Vec<_>>(),
            vec![1, 0, 0, 0, 1]
        );
        assert!(tl[1].p99_ms == 0.0);
    }
}
