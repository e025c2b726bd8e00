//! Scores computed outside the graph: exact search and vector preparation.

use crate::kernel::{dot, l2_squared};
use crate::point::Distance;

/// The score of `v` for `query`, as the graph reports it: a dot product for
/// Cosine (on normalized vectors) and Dot, a distance for Euclid.
pub(crate) fn score(distance: Distance, query: &[f32], v: &[f32]) -> f32 {
    match distance {
        Distance::Cosine | Distance::Dot => dot(query, v),
        Distance::Euclid => l2_squared(query, v).sqrt(),
    }
}

/// Whether score `a` ranks before score `b`.
pub(crate) fn better(distance: Distance, a: f32, b: f32) -> bool {
    if distance.higher_is_better() {
        a > b
    } else {
        a < b
    }
}

/// Best first: `Less` when score `a` ranks before score `b`, `Equal` on a tie
/// (callers break ties by id or key).
pub(crate) fn rank(distance: Distance, a: f32, b: f32) -> std::cmp::Ordering {
    if better(distance, a, b) {
        std::cmp::Ordering::Less
    } else if better(distance, b, a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

/// The `count` best of `hits`, best first (ties by key).
pub(crate) fn best(distance: Distance, mut hits: Vec<(u64, f32)>, count: usize) -> Vec<(u64, f32)> {
    let order = |a: &(u64, f32), b: &(u64, f32)| rank(distance, a.1, b.1).then(a.0.cmp(&b.0));
    if hits.len() > count && count > 0 {
        hits.select_nth_unstable_by(count - 1, order);
    }
    hits.truncate(count);
    hits.sort_by(order);
    hits
}

/// Whether `score` passes a Qdrant `score_threshold`.
pub(crate) fn passes(distance: Distance, score: f32, threshold: f32) -> bool {
    if distance.higher_is_better() {
        score >= threshold
    } else {
        score <= threshold
    }
}

/// Scales a Cosine vector to unit length in place (a zero vector stays zero).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_naive_sums() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32).sin()).collect();
        let naive_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let naive_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((score(Distance::Dot, &a, &b) - naive_dot).abs() < 1e-4);
        assert!((score(Distance::Euclid, &a, &b) - naive_l2.sqrt()).abs() < 1e-4);
        let mut n = a.clone();
        normalize(&mut n);
        assert!((dot(&n, &n) - 1.0).abs() < 1e-5);
        let mut z = vec![0.0; 4];
        normalize(&mut z);
        assert_eq!(z, vec![0.0; 4]);
    }
}
