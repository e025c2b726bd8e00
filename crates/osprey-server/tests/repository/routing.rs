//! How a request finds its model: names, versions, tasks, the default model of
//! each task, and the models list.

use serde_json::json;

use crate::{fetch, post, served_specs};

#[tokio::test]
async fn unknown_and_wrong_task_models_are_refused_clearly() {
    let r = post("/embed", json!({ "inputs": "x", "model": "nope" })).await;
    r.assert_error(404, "unknown model");
    assert_eq!(r.json["error"]["code"], "model_not_found");
    assert!(r.error_message().contains("nope"), "{}", r.text);

    let r = post(
        "/v1/embeddings",
        json!({ "input": "x", "model": "polarity" }),
    )
    .await;
    r.assert_error(422, "a classifier asked for embeddings");
    assert_eq!(r.json["error"]["code"], "wrong_task");
    assert!(r.error_message().contains("classify"), "{}", r.text);

    post("/predict", json!({ "inputs": "x", "model": "minilm" }))
        .await
        .assert_error(422, "an embedding model asked to classify");
    post(
        "/rerank",
        json!({ "query": "q", "texts": ["a"], "model": "polarity" }),
    )
    .await
    .assert_error(422, "a classifier asked to rerank");
    post("/embed", json!({ "inputs": "x", "model": "risk" }))
        .await
        .assert_error(422, "a tensor model asked for embeddings");
    post("/embed", json!({ "inputs": "x", "model": "minilm@7" }))
        .await
        .assert_error(404, "an unknown version");
}

#[tokio::test]
async fn versions_are_pinned_with_an_at_sign() {
    let r = post(
        "/v1/embeddings",
        json!({ "input": "pinned", "model": "para@1" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-osprey-model"), Some("para@1"));
    assert_eq!(r.json["model"], "para@1");
    assert_eq!(
        r.json["data"][0]["embedding"].as_array().map(Vec::len),
        Some(384)
    );
}

#[tokio::test]
async fn the_models_list_is_openais_with_each_models_task() {
    let r = fetch("/v1/models").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "list");
    let data = r.json["data"].as_array().expect("data");
    for spec in served_specs() {
        let card = data
            .iter()
            .find(|m| m["id"] == spec.name.as_str())
            .unwrap_or_else(|| panic!("{} is not listed: {}", spec.name, r.text));
        assert_eq!(card["object"], "model");
        assert_eq!(card["owned_by"], "osprey");
        assert!(card["created"].as_u64().is_some());
    }
    let task = |name: &str| {
        data.iter()
            .find(|m| m["id"] == name)
            .map(|m| m["task"].clone())
    };
    assert_eq!(task("minilm"), Some(json!("embed")));
    assert_eq!(task("polarity"), Some(json!("classify")));
    assert_eq!(task("ranker"), Some(json!("rerank")));
    assert_eq!(task("risk"), Some(json!("tensor")));

    let one = fetch("/v1/models/polarity").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(
        one.json["details"]["labels"],
        json!(["negative", "positive"])
    );
    fetch("/v1/models/nope")
        .await
        .assert_error(404, "unknown model");
}

#[tokio::test]
async fn metrics_are_labelled_by_model_and_version() {
    let r = post("/embed", json!({ "inputs": "counted", "model": "para" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = fetch("/metrics").await.text;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(r#"osprey_model_requests_total{model="para",version="1",task="embed"}"#)
        })
        .unwrap_or_else(|| panic!("no per-model request count in\n{text}"));
    let count: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(count >= 1.0, "{line}");
    assert!(text.contains(r#"osprey_model_replicas{model="risk",version="1",task="tensor"} 1"#));
    // The queue families autoscalers read: the input went through the queue.
    let value = |family: &str| -> f64 {
        let prefix = format!(r#"{family}{{model="para",version="1",task="embed"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {family} for para in\n{text}"))
    };
    assert!(value("osprey_model_dequeued_total") >= 1.0);
    assert!(value("osprey_model_queue_duration_us_total") >= 0.0);
    assert!(value("osprey_model_queue_size") >= 0.0);
}
