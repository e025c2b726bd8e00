//! The `osprey` binary end to end: `embed`, `--help`, `config check`, and `serve` with
//! readiness, a real request, and graceful shutdown on SIGTERM.

#![allow(clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;

mod batch_tuning;
mod collections;
mod config_check;
mod deploy;
mod embed;
mod help;
mod history;
mod hostile_bodies;
mod live;
mod otlp;
mod profiles;
mod repository;
mod serve;
mod webhook_tls;

/// The reference vectors of an independent float64 implementation.
#[derive(serde::Deserialize)]
pub struct Reference {
    pub cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
pub struct Case {
    pub text: String,
    pub untruncated_token_count: usize,
    pub embedding: Vec<f64>,
    pub embedding_unnormalized: Vec<f64>,
}

pub fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../osprey-models/tests/data/reference.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn cosine(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

/// "hello world" from sentence-transformers starts about like this.
pub fn assert_hello_world(v: &[f32]) {
    assert_eq!(v.len(), 384);
    assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    for (i, want) in [-0.0345f32, 0.0310, 0.0067].into_iter().enumerate() {
        assert!(
            (v[i] - want).abs() < 1.5e-3,
            "component {i}: {} vs {want}",
            v[i]
        );
    }
}
