//! Inputs longer than the model's window, embedded whole: each is split into
//! overlapping windows the model can take, every window is embedded, and the
//! windows' vectors are averaged weighted by their tokens, then normalized.

use std::time::Instant;

use osprey_cache::Entry;
use osprey_models::{Encoded, TokenizeError, l2_normalize};

use crate::{CacheStatus, EmbedOptions, Embedded, EngineError, Permit, Pipeline, Timings};

/// Tokens each window shares with the one before it, as a share of the model's
/// maximum: enough context across a cut without doubling the work.
const OVERLAP_DIVISOR: usize = 8;

impl Pipeline {
    /// Embeds `texts` whole within `permit`'s deadline, a long text as the
    /// token-weighted mean of its windows; also returns each text's window count.
    /// Not cached: a text that fits takes one window and equals the usual vector.
    pub async fn embed_chunked(
        &self,
        texts: &[String],
        opts: EmbedOptions,
        permit: &Permit,
    ) -> Result<(Embedded, Vec<usize>), EngineError> {
        permit.within(self.chunked(texts, opts, permit)).await
    }

    async fn chunked(
        &self,
        texts: &[String],
        opts: EmbedOptions,
        permit: &Permit,
    ) -> Result<(Embedded, Vec<usize>), EngineError> {
        let engine = self.engine();
        let t0 = Instant::now();
        let tokenizer = engine.tokenizer().clone();
        let overlap = engine.info().max_input_tokens / OVERLAP_DIVISOR;
        let owned = texts.to_vec();
        let windows: Vec<Vec<Vec<u32>>> = tokio::task::spawn_blocking(move || {
            owned
                .iter()
                .enumerate()
                .map(|(index, t)| {
                    tokenizer.windows(t, overlap).map_err(|e| match e {
                        TokenizeError::Failed(message) => EngineError::Tokenize { index, message },
                        TokenizeError::TooLong { tokens, max } => {
                            EngineError::InputTooLong { index, tokens, max }
                        }
                    })
                })
                .collect::<Result<_, _>>()
        })
        .await
        .map_err(|_| EngineError::Backend("the tokenizer task stopped".into()))??;
        let tokenize = t0.elapsed();
        let counts: Vec<usize> = windows.iter().map(Vec::len).collect();
        let flat: Vec<Encoded> = windows
            .iter()
            .flatten()
            .map(|ids| Encoded {
                ids: ids.clone(),
                ..Encoded::default()
            })
            .collect();
        let tokens: usize = flat.iter().map(|e| e.ids.len()).sum();
        let _ticket = engine.charge_tokens(permit, tokens, flat.len())?;
        let pooled = EmbedOptions {
            normalize: false,
            truncate: true,
            dimensions: None,
        };
        let raw = engine.embed_tokens(flat, pooled).await?;
        let t1 = Instant::now();
        let mut vectors = raw.vectors.into_iter();
        let mut entries = Vec::with_capacity(windows.len());
        for ws in &windows {
            let weights: Vec<usize> = ws.iter().map(Vec::len).collect();
            let parts: Vec<Vec<f32>> = vectors.by_ref().take(ws.len()).collect();
            let mut v = weighted_mean(&parts, &weights);
            if let Some(d) = opts.dimensions {
                v.truncate(d);
            }
            if opts.normalize {
                l2_normalize(&mut v);
            }
            entries.push(Entry::new(v, weights.iter().sum::<usize>() as u32));
        }
        let timings = Timings {
            tokenize,
            postprocess: raw.timings.postprocess + t1.elapsed(),
            ..raw.timings
        };
        let embedded = Embedded {
            entries,
            tokens,
            timings,
            cache: if self.cache().is_some() {
                CacheStatus::Miss
            } else {
                CacheStatus::Off
            },
            computed: counts.len(),
            computed_tokens: tokens,
        };
        Ok((embedded, counts))
    }
}

/// The mean of `parts` weighted by `weights`, in f64 so long texts lose nothing.
fn weighted_mean(parts: &[Vec<f32>], weights: &[usize]) -> Vec<f32> {
    let dims = parts.first().map_or(0, Vec::len);
    let mut acc = vec![0f64; dims];
    let total: usize = weights.iter().sum();
    for (p, &w) in parts.iter().zip(weights) {
        for (a, x) in acc.iter_mut().zip(p) {
            *a += f64::from(*x) * w as f64;
        }
    }
    let total = total.max(1) as f64;
    acc.into_iter().map(|a| (a / total) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_is_weighted_by_tokens() {
        let v = weighted_mean(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[3, 1]);
        assert_eq!(v, vec![0.75, 0.25]);
        assert_eq!(weighted_mean(&[vec![2.0]], &[7]), vec![2.0]);
    }
}
