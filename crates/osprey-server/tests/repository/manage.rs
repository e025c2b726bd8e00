//! Live model management: add, reload and remove while requests flow, with not
//! one failed request, and models that fail to load leaving the others serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Reply, client};
use crate::{fetch, models_path, post, repo, root};

async fn delete(path: &str) -> Reply {
    let resp = client()
        .delete(format!("{}{path}", repo().base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
    Reply::read(resp).await
}

/// Requests of three kinds in a loop until `stop`; returns (answered, failures).
fn load(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..6)
            .map(|w| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let text = format!("worker {w} request {i}: live swaps fail nothing");
                        let (path, body) = match w % 3 {
                            0 => ("/embed", json!({ "inputs": text, "model": "minilm" })),
                            1 => ("/v1/embeddings", json!({ "input": text, "model": "para" })),
                            _ => ("/predict", json!({ "inputs": text, "model": "polarity" })),
                        };
                        let r = post(path, body).await;
                        if r.status == 200 {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else if let Ok(mut f) = failures.lock() {
                            f.push(format!("{path}: {} {}", r.status, r.text));
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.await;
        }
        let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
        (ok.load(Ordering::Relaxed), failures)
    })
}

#[tokio::test]
async fn adding_reloading_and_removing_under_load_fails_no_request() {
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let added = post(
        "/admin/models",
        json!({ "name": "extra", "path": models_path("paraphrase-MiniLM-L3-v2"), "version": "7" }),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json["id"], "extra");
    assert_eq!(added.json["version"], "7");
    let r = post("/embed", json!({ "inputs": "new model", "model": "extra" })).await;
    assert_eq!(r.header("x-osprey-model"), Some("extra@7"));
    assert_eq!(r.vectors()[0].len(), 384);

    let dup = post(
        "/admin/models",
        json!({ "name": "extra", "path": models_path("paraphrase-MiniLM-L3-v2"), "version": "7" }),
    )
    .await;
    dup.assert_error(409, "the same name@version again");

    for name in ["minilm", "para@1", "polarity"] {
        let r = post(&format!("/admin/models/{name}/reload"), json!({})).await;
        assert_eq!(r.status, 200, "reload {name}: {}", r.text);
    }
    // The default model's slot (readiness, /info) follows the reloaded copy.
    let info = fetch("/info").await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json["model_id"], "all-MiniLM-L6-v2");
    let ready = fetch("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let gone = delete("/admin/models/extra@7").await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_eq!(gone.json["removed"], json!(["extra@7"]));
    post("/embed", json!({ "inputs": "x", "model": "extra" }))
        .await
        .assert_error(404, "a removed model");
    delete("/admin/models/extra")
        .await
        .assert_error(404, "removed twice");

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (answered, failures) = running.await.expect("load loop");
    assert!(answered > 0, "no request went through");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the changes; first: {:?}",
        failures.len(),
        answered + failures.len(),
        failures.first()
    );
}

/// A model directory that is broken in one way, beside copies of good files.
fn broken_dir(what: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = root().join("models/minilm-polarity-classifier");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(good.join(f), dir.path().join(f)).expect("copy a model file");
    }
    match what {
        "corrupt" => std::fs::write(dir.path().join("model.safetensors"), b"not safetensors")
            .expect("write garbage weights"),
        "architecture" => {
            let mut config: Value = serde_json::from_slice(
                &std::fs::read(good.join("config.json")).expect("read config"),
            )
            .expect("config JSON");
            config["architectures"] = json!(["GPT2LMHeadModel"]);
            std::fs::write(dir.path().join("config.json"), config.to_string())
                .expect("write config");
        }
        _ => {}
    }
    dir
}

#[tokio::test]
async fn models_that_fail_to_load_get_a_clear_error_and_the_others_keep_serving() {
    let corrupt = broken_dir("corrupt");
    let arch = broken_dir("architecture");
    let cases = [
        (root().join("models/no-such-model"), "no-such-model"),
        (corrupt.path().to_path_buf(), "safetensors"),
        (arch.path().to_path_buf(), "GPT2LMHeadModel"),
    ];
    for (path, expect) in cases {
        let r = post(
            "/admin/models",
            json!({ "name": "broken", "path": path.to_string_lossy() }),
        )
        .await;
        r.assert_error(422, expect);
        assert_eq!(r.json["error"]["code"], "model_load_failed", "{}", r.text);
        assert!(r.error_message().contains(expect), "{expect}: {}", r.text);
    }
    let r = post(
        "/admin/models",
        json!({ "name": "bad name!", "path": models_path("all-MiniLM-L6-v2") }),
    )
    .await;
    r.assert_error(422, "a name with a space");
    let r = post(
        "/admin/models",
        json!({ "name": "wrongtask", "path": models_path("all-MiniLM-L6-v2"), "task": "classify" }),
    )
    .await;
    r.assert_error(422, "a task the files do not hold");
    fetch("/v1/models/broken")
        .await
        .assert_error(404, "never served");
    let r = post(
        "/embed",
        json!({ "inputs": "still serving", "model": "minilm" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn traffic_weights_split_versions_and_ab_keys_stick() {
    for version in ["a", "b"] {
        let r = post(
            "/admin/models",
            json!({ "name": "ab", "version": version, "traffic": 0.5,
                    "path": models_path("paraphrase-MiniLM-L3-v2") }),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let r = post(
            "/embed",
            json!({ "inputs": format!("spread {i}"), "model": "ab" }),
        )
        .await;
        seen.insert(r.header("x-osprey-model").unwrap_or("").to_owned());
    }
    assert_eq!(seen.len(), 2, "both versions serve: {seen:?}");
    for user in ["alice", "bob", "carol"] {
        let mut versions = std::collections::HashSet::new();
        for i in 0..8 {
            let resp = client()
                .post(format!("{}/embed", repo().base))
                .header("x-osprey-ab-key", user)
                .json(&json!({ "inputs": format!("{user} {i}"), "model": "ab" }))
                .send()
                .await
                .expect("POST /embed");
            let r = Reply::read(resp).await;
            versions.insert(r.header("x-osprey-model").unwrap_or("").to_owned());
        }
        assert_eq!(
            versions.len(),
            1,
            "{user} moved between versions: {versions:?}"
        );
    }
    let pinned = post("/embed", json!({ "inputs": "pinned", "model": "ab@b" })).await;
    assert_eq!(pinned.header("x-osprey-model"), Some("ab@b"));
    let gone = delete("/admin/models/ab").await;
    assert_eq!(gone.json["removed"], json!(["ab@a", "ab@b"]));
}
