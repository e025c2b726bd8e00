//! Anomaly detection: how many standard deviations a value lies from its rolling
//! baseline (a z-score).

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub mean: f64,
    pub std: f64,
    pub samples: usize,
}

/// Mean and standard deviation of the baseline values; `None` when empty.
pub fn baseline(values: impl Iterator<Item = f64>) -> Option<Baseline> {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Some(Baseline {
        mean,
        std: var.sqrt(),
        samples: v.len(),
    })
}

impl Baseline {
    /// The z-score of `value`. `floor` bounds the deviation from below: a perfectly
    /// flat baseline would otherwise call any wiggle infinitely anomalous.
    pub fn z(&self, value: f64, floor: f64) -> f64 {
        (value - self.mean) / self.std.max(floor).max(f64::EPSILON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores() {
        let b = baseline([10.0, 12.0, 8.0, 10.0].into_iter()).expect("values");
        assert_eq!(b.mean, 10.0);
        assert!((b.std - 2f64.sqrt()).abs() < 1e-9);
        assert!(b.z(13.0, 0.0) > 2.0);
        assert!(b.z(11.0, 0.0) < 2.0);
        assert!(b.z(11.0, 5.0) < 0.3, "the floor damps flat baselines");
        assert!(baseline(std::iter::empty()).is_none());
    }
}
