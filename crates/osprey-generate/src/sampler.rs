//! Choosing the next token from a sequence's logits. Done here rather than with
//! llama.cpp's samplers: those copy the whole vocabulary (262k entries for Gemma
//! 3) into a candidate array for every token of every sequence, on the decode
//! thread, which at 8 sequences cost a fifth of each step. These read the logits
//! in place and run for all sequences of a step in parallel.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::Sampling;

/// Candidates sorted first when `top_p` is set: enough to hold the nucleus almost
/// always; the whole vocabulary is sorted only when they are not.
const NUCLEUS_FIRST: usize = 4096;

pub struct TokenSampler {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    rng: SmallRng,
}

impl TokenSampler {
    pub fn new(s: &Sampling) -> Self {
        let seed = s.seed.map_or_else(rand::random, u64::from);
        Self {
            temperature: s.temperature,
            top_k: s.top_k as usize,
            top_p: s.top_p,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The next token's id.
    pub fn sample(&mut self, logits: &[f32]) -> i32 {
        if self.temperature == 0.0 || self.top_k == 1 {
            return argmax(logits);
        }
        let n = logits.len();
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        // Candidates, best first when an order is needed.
        let mut ids: Vec<u32> = (0..n as u32).collect();
        if self.top_k > 0 && self.top_k < n {
            ids.select_nth_unstable_by(self.top_k - 1, by_logit);
            ids.truncate(self.top_k);
        }
        let max = ids
            .iter()
            .map(|&i| logits[i as usize])
            .fold(f32::NEG_INFINITY, f32::max);
        let inv_t = 1.0 / self.temperature;
        let weight = |i: u32| ((logits[i as usize] - max) * inv_t).exp();
        let total: f32 = ids.iter().map(|&i| weight(i)).sum();
        if self.top_p < 1.0 {
            let keep = nucleus(&mut ids, total, self.top_p, &weight, &by_logit);
            ids.truncate(keep);
        }
        let mass: f32 = ids.iter().map(|&i| weight(i)).sum();
        let mut r = self.rng.random::<f32>() * mass;
        for &i in &ids {
            r -= weight(i);
            if r <= 0.0 {
                return i as i32;
            }
        }
        // Rounding left a sliver: the last candidate takes it.
        ids.last().map_or(0, |&i| i as i32)
    }
}

/// Sorts the best candidates first and returns how many hold `top_p` of `total`.
fn nucleus(
    ids: &mut [u32],
    total: f32,
    top_p: f32,
    weight: &impl Fn(u32) -> f32,
    by_logit: &impl Fn(&u32, &u32) -> std::cmp::Ordering,
) -> usize {
    let want = top_p * total;
    let head = NUCLEUS_FIRST.min(ids.len());
    if head < ids.len() {
        ids.select_nth_unstable_by(head - 1, by_logit);
    }
    ids[..head].sort_unstable_by(by_logit);
    let mut acc = 0.0;
    for (k, &i) in ids[..head].iter().enumerate() {
        acc += weight(i);
        if acc >= want {
            return k + 1;
        }
    }
    ids.sort_unstable_by(by_logit);
    let mut acc = 0.0;
    for (k, &i) in ids.iter().enumerate() {
        acc += weight(i);
        if acc >= want {
            return k + 1;
        }
    }
    ids.len()
}

/// The first index of the largest logit (llama.cpp's greedy choice).
pub fn argmax(logits: &[f32]) -> i32 {
    let mut best = 0;
    let mut top = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > top {
            top = l;
            best = i;
        }
    }
    best as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f32, top_k: u32, top_p: f32, seed: u32) -> Sampling {
        Sampling {
            temperature,
            top_p,
            top_k,
            seed: Some(seed),
        }
    }

    #[test]
    fn greedy_takes_the_first_best() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
        let mut s = TokenSampler::new(&sampling(0.0, 0, 1.0, 1));
        assert_eq!(s.sample(&[0.1, 3.0, -1.0]), 1);
    }

    #[test]
    fn draws_follow_the_softmax_and_a_seed_repeats_them() {
        // Probabilities 0.5, 0.25, 0.25 at temperature 1.
        let logits = [2f32.ln(), 0.0, 0.0];
        let mut s = TokenSampler::new(&sampling(1.0, 0, 1.0, 42));
        let mut counts = [0u32; 3];
        let draws: Vec<i32> = (0..20_000).map(|_| s.sample(&logits)).collect();
        for &d in &draws {
            counts[d as usize] += 1;
        }
        let share = f64::from(counts[0]) / 20_000.0;
        assert!((share - 0.5).abs() < 0.02, "{counts:?}");
        let mut again = TokenSampler::new(&sampling(1.0, 0, 1.0, 42));
        let repeat: Vec<i32> = (0..20_000).map(|_| again.sample(&logits)).collect();
        assert_eq!(draws, repeat);
    }

    #[test]
    fn top_k_and_top_p_keep_only_the_best() {
        let logits: Vec<f32> = (0..10_000).map(|i| -(i as f32) * 0.001).collect();
        let mut k = TokenSampler::new(&sampling(1.0, 3, 1.0, 7));
        assert!((0..2000).all(|_| k.sample(&logits) < 3));
        // One token holds 90% of the mass: top_p 0.5 keeps only it.
        let mut peaked = vec![0.0f32; 10_000];
        peaked[1234] = 20.0;
        let mut p = TokenSampler::new(&sampling(1.0, 0, 0.5, 7));
        assert!((0..200).all(|_| p.sample(&peaked) == 1234));
        // A flat nucleus larger than the first sorted block is still exact.
        let flat: Vec<f32> = (0..10_000).map(|i| -(i as f32) * 1e-6).collect();
        let mut wide = TokenSampler::new(&sampling(1.0, 0, 0.9, 7));
        assert!((0..2000).all(|_| wide.sample(&flat) < 9100));
    }
}
