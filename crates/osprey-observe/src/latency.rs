//! Fixed log-scale latency buckets: cheap to fill from the request path (one
//! atomic add), cheap to merge over any window, and within 12% of the true
//! percentile at any scale from 50 µs to a minute.
//!
//! Not [`osprey_metrics::LatencyHistogram`]: its 16 Prometheus bounds are far too
//! coarse for the percentiles, SLOs and alerts computed here (a p99 could be off by
//! 2.5x between two bounds). The buckets are plain arrays in the rolling
//! statistics' striped counters, not a third histogram type.

pub const BUCKETS: usize = 64;
const BASE_US: f64 = 50.0;
const GROWTH: f64 = 1.25;

/// The bucket holding a latency in microseconds: bucket `i` covers
/// `(upper(i-1), upper(i)]`, the first everything up to 50 µs, the last the rest.
pub fn bucket(us: f64) -> usize {
    if us <= BASE_US {
        return 0;
    }
    let i = ((us / BASE_US).ln() / GROWTH.ln()).ceil();
    (i as usize).min(BUCKETS - 1)
}

pub fn upper_us(i: usize) -> f64 {
    BASE_US * GROWTH.powi(i as i32)
}

fn lower_us(i: usize) -> f64 {
    if i == 0 { 0.0 } else { upper_us(i - 1) }
}

/// The `q` quantile (0..=1) in milliseconds, interpolated inside its bucket;
/// `None` without samples.
pub fn quantile_ms(hist: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0.0;
    for (i, &n) in hist.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let next = seen + n as f64;
        if next >= rank {
            let frac = (rank - seen) / n as f64;
            let (lo, hi) = (lower_us(i), upper_us(i));
            return Some((lo + (hi - lo) * frac) / 1000.0);
        }
        seen = next;
    }
    Some(upper_us(BUCKETS - 1) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bounded() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(50.0), 0);
        assert_eq!(bucket(51.0), 1);
        assert_eq!(bucket(1e12), BUCKETS - 1);
        for us in [80.0, 1_000.0, 12_345.0, 2_000_000.0] {
            let i = bucket(us);
            assert!(lower_us(i) < us && us <= upper_us(i), "{us} in bucket {i}");
        }
    }

    #[test]
    fn quantiles_land_near_the_truth() {
        let mut h = [0u64; BUCKETS];
        // 1..=1000 ms, one request each.
        for ms in 1..=1000 {
            h[bucket(f64::from(ms) * 1000.0)] += 1;
        }
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = quantile_ms(&h, q).expect("samples");
            assert!((got - want).abs() / want < 0.15, "q{q}: {got} vs {want}");
        }
        assert_eq!(quantile_ms(&[0; BUCKETS], 0.5), None);
    }
}
