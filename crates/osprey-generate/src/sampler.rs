//! Choosing the next token from a sequence's logits. Done here rather than with
//! llama.cpp's samplers: those copy the whole vocabulary (262k entries for Gemma
//! 3) into a candidate array for every token of every sequence, on the decode
//! thread, which at 8 sequences cost a fifth of each step. These read the logits
//! in place and run for all sequences of a step in parallel.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::Sampling;

/// Tokens whose scaled logit is more than this below the best are not candidates:
/// each weighs under e^-20 (2e-9) of the best, all of them together under 0.1% of
/// the mass even for Gemma's 262k tokens.
const CUT: f32 = 20.0;

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
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Tokens this far below the best weigh less than e^-CUT of it each: left
        // out, they change no draw measurably, and the exp runs on a few hundred
        // candidates instead of the whole vocabulary.
        let inv_t = 1.0 / self.temperature;
        let floor = max - CUT / inv_t;
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| **l >= floor)
            .map(|(i, &l)| (i as u32, l))
            .collect();
        let best_first = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        if self.top_k > 0 && self.top_k < cand.len() {
            cand.select_nth_unstable_by(self.top_k - 1, best_first);
            cand.truncate(self.top_k);
        }
        for c in &mut cand {
            c.1 = ((c.1 - max) * inv_t).exp();
        }
        if self.top_p < 1.0 {
            cand.sort_unstable_by(best_first);
            let want = self.top_p * cand.iter().map(|c| c.1).sum::<f32>();
            let mut acc = 0.0;
            let keep = cand
                .iter()
                .position(|c| {
                    acc += c.1;
                    acc >= want
                })
                .map_or(cand.len(), |k| k + 1);
            cand.truncate(keep);
        }
        let mass: f32 = cand.iter().map(|c| c.1).sum();
        let mut r = self.rng.random::<f32>() * mass;
        for &(i, w) in &cand {
            r -= w;
            if r <= 0.0 {
                return i as i32;
            }
        }
        // Rounding left a sliver: the last candidate takes it.
        cand.last().map_or(0, |c| c.0 as i32)
    }
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
        // A wide nucleus keeps its share of a flat distribution.
        let flat: Vec<f32> = (0..10_000).map(|i| -(i as f32) * 1e-6).collect();
        let mut wide = TokenSampler::new(&sampling(1.0, 0, 0.9, 7));
        assert!((0..2000).all(|_| wide.sample(&flat) < 9100));
    }
}
