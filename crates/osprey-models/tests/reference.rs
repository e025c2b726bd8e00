#![allow(clippy::expect_used)]

//! Embeddings from each backend against vectors recorded from an independent float64
//! implementation (scripts/reference_embeddings.py).

use std::path::PathBuf;

use osprey_models::testkit::model_dir;
use osprey_models::{
    BackendKind, BackendOptions, ModelDir, TextTokenizer, l2_normalize, load_backends,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    token_count: usize,
    untruncated_token_count: usize,
    embedding: Vec<f64>,
    embedding_unnormalized: Vec<f64>,
}

fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn check_backend(kind: BackendKind) {
    let reference = reference();
    assert!(reference.cases.len() >= 20);
    let model = ModelDir::open(model_dir()).expect("model directory (run `make model`)");
    assert_eq!(model.max_seq_length, reference.max_seq_length);
    let tok = TextTokenizer::load(&model.file("tokenizer.json"), model.max_seq_length)
        .expect("tokenizer");
    let opts = BackendOptions {
        kind,
        replicas: 1,
        threads: 2,
        onnxruntime_lib: None,
        onnx_prepack: false,
    };
    let mut backend = load_backends(&model, &opts)
        .expect("backend")
        .pop()
        .expect("one replica");

    let encoded: Vec<Vec<u32>> = reference
        .cases
        .iter()
        .map(|c| {
            let e = tok.encode(&c.text, true).expect("encode");
            assert_eq!(e.ids.len(), c.token_count, "token count of {:?}", c.text);
            assert_eq!(e.truncated, c.untruncated_token_count > c.token_count);
            e.ids
        })
        .collect();
    let seqs: Vec<&[u32]> = encoded.iter().map(Vec::as_slice).collect();

    // Once as one mixed-length batch, once one at a time: both must match.
    let batched = backend.embed(&seqs).expect("batch");
    for (i, case) in reference.cases.iter().enumerate() {
        let single = backend.embed(&seqs[i..=i]).expect("single").remove(0);
        for (label, raw) in [("batched", &batched[i]), ("single", &single)] {
            let c = cosine(raw, &case.embedding_unnormalized);
            assert!(
                c >= 0.9999,
                "{kind} {label} case {i} {:?}: cosine {c}",
                case.text
            );
            let mut v = raw.clone();
            l2_normalize(&mut v);
            let c = cosine(&v, &case.embedding);
            assert!(
                c >= 0.9999,
                "{kind} {label} normalized case {i}: cosine {c}"
            );
            let max_diff = v
                .iter()
                .zip(&case.embedding)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            assert!(
                max_diff < 1e-3,
                "{kind} {label} case {i}: max diff {max_diff}"
            );
        }
    }
}

#[test]
fn candle_matches_reference() {
    check_backend(BackendKind::Candle);
}

#[cfg(feature = "onnx")]
#[test]
fn onnx_matches_reference() {
    check_backend(BackendKind::Onnx);
}

#[test]
fn truncation_is_refused_when_asked() {
    let reference = reference();
    let model = ModelDir::open(model_dir()).expect("model directory");
    let tok = TextTokenizer::load(&model.file("tokenizer.json"), model.max_seq_length)
        .expect("tokenizer");
    let long = reference
        .cases
        .iter()
        .find(|c| c.untruncated_token_count > 300)
        .expect("a long case");
    match tok.encode(&long.text, false) {
        Err(osprey_models::TokenizeError::TooLong { tokens, max }) => {
            assert_eq!(tokens, long.untruncated_token_count);
            assert_eq!(max, 256);
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn model_settings_come_from_its_files() {
    let model = ModelDir::open(model_dir()).expect("model directory");
    assert_eq!(model.pooling, osprey_models::Pooling::Mean);
    assert!(model.normalize);
    assert_eq!(model.max_seq_length, 256);
    assert_eq!(model.dims(), 384);
    assert_eq!(model.id, "all-MiniLM-L6-v2");
}

#[test]
fn missing_directory_is_a_clear_error() {
    let err = ModelDir::open("/nonexistent/model").expect_err("must fail");
    assert!(err.to_string().contains("make model"), "{err}");
}
