//! How far quantized weights move a model's outputs from fp32: cosine similarity
//! on a fixed sample of sentences, measured at start-up and shown in `/info`.

use osprey_models::{Backend, TextTokenizer};
use serde::Serialize;

use crate::EngineError;

/// Sentences of everyday lengths and topics; fixed, so figures compare across runs.
pub const SAMPLE: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password if I no longer have access to my email?",
    "Quarterly revenue grew by twelve percent, driven by strong demand in Asia.",
    "A card payment of 4,999 dollars was made at 3am from an unusual location.",
    "The patient reported mild headaches and occasional dizziness after the new medication.",
    "Rust's ownership model prevents data races at compile time.",
    "Can you recommend a good Italian restaurant near the train station?",
    "The committee postponed its decision until more evidence is available.",
    "My order arrived damaged and I would like a refund or a replacement.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The new update drains my phone battery much faster than before.",
    "Heavy rain is expected across the northern region throughout the weekend.",
    "She finished the marathon in under four hours despite the heat.",
    "Vector databases index embeddings so that similar items can be found quickly.",
    "Please cancel my subscription at the end of the current billing period.",
    "The museum's new exhibition explores three centuries of maritime trade.",
];

/// Cosine similarity of one model's outputs to a reference's on [`SAMPLE`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// What the outputs were compared with.
    pub against: &'static str,
    pub sentences: usize,
    pub mean_cosine: f64,
    pub min_cosine: f64,
}

/// Runs [`SAMPLE`] through both backends and compares their outputs.
pub fn measure(
    tokenizer: &TextTokenizer,
    model: &mut dyn Backend,
    reference: &mut dyn Backend,
    against: &'static str,
) -> Result<Accuracy, EngineError> {
    let seqs = SAMPLE
        .iter()
        .map(|s| tokenizer.encode(s, true).map(|e| e.ids))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Backend(format!("tokenizing the accuracy sample: {e}")))?;
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let got = model.embed(&refs)?;
    let want = reference.embed(&refs)?;
    let cosines: Vec<f64> = got.iter().zip(&want).map(|(a, b)| cosine(a, b)).collect();
    Ok(Accuracy {
        against,
        sentences: cosines.len(),
        mean_cosine: cosines.iter().sum::<f64>() / cosines.len().max(1) as f64,
        min_cosine: cosines.iter().copied().fold(f64::INFINITY, f64::min),
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-12);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
