//! What a new user gets: onnxruntime by default on one shared pool, optimization
//! profiles, int8 weights whose accuracy is stated, and the optimised graph kept
//! between starts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{osprey, run, serve_model, serve_model_with, stderr, tempdir};
use crate::{cosine, reference};

async fn info(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/info"))
        .send()
        .await
        .expect("GET /info")
        .json()
        .await
        .expect("/info is JSON")
}

/// Embeds the reference texts and returns each one's cosine to the float64 reference.
async fn cosines_to_reference(client: &reqwest::Client, base: &str) -> Vec<f64> {
    let reference = reference();
    let cases: Vec<_> = reference
        .cases
        .iter()
        .filter(|c| c.untruncated_token_count <= 256)
        .collect();
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let resp = client
        .post(format!("{base}/embed"))
        .json(&json!({ "inputs": texts }))
        .send()
        .await
        .expect("POST /embed");
    assert_eq!(resp.status(), 200);
    let vectors: Vec<Vec<f32>> = resp.json().await.expect("vectors");
    assert_eq!(vectors.len(), cases.len());
    vectors
        .iter()
        .zip(&cases)
        .map(|(v, c)| cosine(v, &c.embedding))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_is_onnxruntime_on_one_shared_pool_and_matches_the_reference() {
    let cache = tempdir();
    let cache_dir = cache.path().to_string_lossy().into_owned();
    let s = serve_model_with(&[], &[("OSPREY_CACHE_DIR", &cache_dir)]).await;
    let i = info(&s.client, &s.base).await;
    assert_eq!(i["backend"], "onnx", "{i}");
    assert_eq!(i["profile"], "balanced", "{i}");
    assert_eq!(i["thread_pool"], "shared", "{i}");
    assert_eq!(i["replicas"], 1, "{i}");
    assert_eq!(i["precision"], "fp32", "{i}");
    assert!(i.get("accuracy").is_none(), "{i}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(i["threads_per_replica"], cores, "{i}");
    for c in cosines_to_reference(&s.client, &s.base).await {
        assert!(c >= 0.9999, "cosine {c}");
    }

    // The optimised graph was kept for the next start.
    let kept: Vec<_> = std::fs::read_dir(cache.path().join("ort"))
        .expect("the graph cache directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    drop(s);

    // A damaged cache file is noticed, replaced, and serving is unchanged.
    std::fs::write(&kept[0], b"not a graph").expect("damage the cached graph");
    let s = serve_model_with(&[], &[("OSPREY_CACHE_DIR", &cache_dir)]).await;
    for c in cosines_to_reference(&s.client, &s.base).await {
        assert!(c >= 0.9999, "cosine after a damaged cache {c}");
    }
    let size = std::fs::metadata(&kept[0]).expect("the cache file").len();
    assert!(
        size > 1_000_000,
        "the damaged graph was not replaced ({size} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speed_profile_serves_int8_weights_and_states_their_accuracy() {
    let s = serve_model(&["--profile", "speed"]).await;
    let i = info(&s.client, &s.base).await;
    assert_eq!(i["profile"], "speed", "{i}");
    assert_eq!(i["precision"], "int8", "{i}");
    let a = &i["accuracy"];
    assert_eq!(a["against"], "fp32", "{i}");
    assert_eq!(a["sentences"], 16, "{i}");
    let (mean, min) = (
        a["mean_cosine"].as_f64().expect("mean"),
        a["min_cosine"].as_f64().expect("min"),
    );
    assert!((0.98..=1.0).contains(&mean), "mean cosine {mean}");
    assert!((0.95..=mean).contains(&min), "min cosine {min}");
    // Not fp32 in disguise: int8 weights move the vectors, a little.
    assert!(mean < 0.99999, "mean cosine {mean} is fp32's");

    // Against the independent float64 reference, not only against fp32.
    let got = cosines_to_reference(&s.client, &s.base).await;
    let avg = got.iter().sum::<f64>() / got.len() as f64;
    assert!(avg >= 0.985, "mean cosine to the reference {avg}");
    for c in got {
        assert!(c >= 0.97, "cosine to the reference {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throughput_profile_runs_a_single_threaded_replica_per_core() {
    let s = serve_model(&["--profile", "throughput"]).await;
    let i = info(&s.client, &s.base).await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(i["profile"], "throughput", "{i}");
    assert_eq!(i["thread_pool"], "replica", "{i}");
    assert_eq!(i["replicas"], cores, "{i}");
    assert_eq!(i["threads_per_replica"], 1, "{i}");
    assert_eq!(i["max_batch_requests"], 64, "{i}");
    for c in cosines_to_reference(&s.client, &s.base).await {
        assert!(c >= 0.9999, "cosine {c}");
    }
}

#[test]
fn an_unknown_profile_is_refused_with_the_names() {
    let dir = tempdir();
    let out = run(
        osprey(dir.path()).args(["serve", "--profile", "fastest"]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown profile `fastest`"), "{err}");
    assert!(err.contains("speed"), "{err}");
}
