#![allow(clippy::expect_used)]

//! Embeddings from each backend against vectors recorded from an independent float64
//! implementation (scripts/reference_embeddings.py).

use std::path::PathBuf;

use osprey_models::testkit::{backend_options, model_dir};
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

/// How close a backend must come to the float64 reference.
struct Bound {
    /// Lowest cosine of any one case.
    min_cosine: f64,
    /// Lowest mean cosine over the cases.
    mean_cosine: f64,
    /// Largest difference of one component of the normalized vector.
    max_diff: f64,
}

const EXACT: Bound = Bound {
    min_cosine: 0.9999,
    mean_cosine: 0.9999,
    max_diff: 1e-3,
};

fn check_backend(kind: BackendKind) {
    check(&backend_options(kind), &EXACT);
}

fn check(opts: &BackendOptions, bound: &Bound) {
    let kind = opts.kind;
    let reference = reference();
    assert!(reference.cases.len() >= 20);
    let model = ModelDir::open(model_dir()).expect("model directory (run `make model`)");
    assert_eq!(model.max_seq_length, reference.max_seq_length);
    let tok = TextTokenizer::load(&model.file("tokenizer.json"), model.max_seq_length)
        .expect("tokenizer");
    let mut backend = load_backends(&model, opts)
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
    let mut cosines = Vec::new();
    for (i, case) in reference.cases.iter().enumerate() {
        // As the last run before an idle queue: the first such run after the
        // batch gives onnxruntime's arena back, and must compute the same.
        backend.idle_after_next();
        let single = backend.embed(&seqs[i..=i]).expect("single").remove(0);
        for (label, raw) in [("batched", &batched[i]), ("single", &single)] {
            let c = cosine(raw, &case.embedding_unnormalized);
            assert!(
                c >= bound.min_cosine,
                "{kind} {label} case {i} {:?}: cosine {c}",
                case.text
            );
            let mut v = raw.clone();
            l2_normalize(&mut v);
            let c = cosine(&v, &case.embedding);
            assert!(
                c >= bound.min_cosine,
                "{kind} {label} normalized case {i}: cosine {c}"
            );
            cosines.push(c);
            let max_diff = v
                .iter()
                .zip(&case.embedding)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            assert!(
                max_diff < bound.max_diff,
                "{kind} {label} case {i}: max diff {max_diff}"
            );
        }
    }
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    assert!(mean >= bound.mean_cosine, "{kind}: mean cosine {mean}");
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

/// The default serving set-up: the process-wide thread pool and repacked weights.
#[cfg(feature = "onnx")]
#[test]
fn onnx_on_the_shared_pool_with_repacked_weights_matches_reference() {
    let opts = BackendOptions {
        shared_threads: true,
        onnx_prepack: true,
        replicas: 2,
        ..backend_options(BackendKind::Onnx)
    };
    check(&opts, &EXACT);
}

/// int8 weights (`make onnx` quantizes them) stay within the accuracy the `speed`
/// profile states: about 0.99 mean cosine to the float64 reference.
#[cfg(feature = "onnx")]
#[test]
fn onnx_int8_stays_close_to_reference() {
    let opts = BackendOptions {
        precision: osprey_models::Precision::Int8,
        shared_threads: true,
        onnx_prepack: true,
        ..backend_options(BackendKind::Onnx)
    };
    check(
        &opts,
        &Bound {
            min_cosine: 0.97,
            mean_cosine: 0.985,
            max_diff: 0.05,
        },
    );
}

#[test]
fn int8_weights_need_the_onnx_backend() {
    let opts = BackendOptions {
        precision: osprey_models::Precision::Int8,
        ..backend_options(BackendKind::Candle)
    };
    let model = ModelDir::open(model_dir()).expect("model directory");
    let err = load_backends(&model, &opts).err().expect("refused");
    assert!(err.to_string().contains("onnx"), "{err}");
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
    assert!(err.to_string().contains("make onnx"), "{err}");
}
