//! `osprey embed`: vectors against the reference, truncation, a missing model.

use std::time::Duration;

use crate::support::*;
use crate::{assert_hello_world, cosine, norm, reference};

#[test]
fn embed_prints_reference_vectors() {
    let dir = tempdir();
    let reference = reference();
    let fox = &reference.cases[0];
    let out = run(
        osprey(dir.path()).args(["embed", "--model", &model_arg(), "hello world", &fox.text]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let vs: Vec<Vec<f32>> =
        serde_json::from_str(stdout(&out).trim()).expect("stdout is a JSON list of vectors");
    assert_eq!(vs.len(), 2);
    assert_hello_world(&vs[0]);
    let c = cosine(&vs[1], &fox.embedding);
    assert!(c >= 0.9999, "cosine to the reference {c}");

    // --no-normalize gives the pooled vector.
    let out = run(
        osprey(dir.path()).args([
            "embed",
            "--model",
            &model_arg(),
            "--no-normalize",
            &fox.text,
        ]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let vs: Vec<Vec<f32>> = serde_json::from_str(stdout(&out).trim()).expect("JSON vectors");
    let c = cosine(&vs[0], &fox.embedding_unnormalized);
    assert!(c >= 0.9999, "unnormalized cosine {c}");
    let want: f64 = fox
        .embedding_unnormalized
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt();
    assert!((norm(&vs[0]) - want).abs() / want < 1e-3);
}

#[test]
fn embed_refuses_over_long_input_with_no_truncate() {
    let dir = tempdir();
    let reference = reference();
    let long = reference
        .cases
        .iter()
        .max_by_key(|c| c.untruncated_token_count)
        .expect("reference cases");
    let out = run(
        osprey(dir.path()).args([
            "embed",
            "--model",
            &model_arg(),
            "--no-truncate",
            &long.text,
        ]),
        Duration::from_secs(120),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&long.untruncated_token_count.to_string()),
        "stderr should name the token count: {err}"
    );
    assert!(stdout(&out).trim().is_empty(), "no vectors on failure");
}

#[test]
fn embed_with_a_missing_model_names_the_directory() {
    let dir = tempdir();
    let out = run(
        osprey(dir.path()).args(["embed", "--model", "/nonexistent/model", "hi"]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("model directory") && err.contains("/nonexistent/model"),
        "{err}"
    );
}
