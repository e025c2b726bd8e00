//! KServe v2 inference on ONNX tensor models, against scikit-learn's own
//! `predict_proba` (scripts/reference_tensor.py retrains the same estimators), and
//! on a text model through BYTES inputs.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::{fetch, floats, max_diff, post, python};

/// The first `n` rows of a model's dataset, and scikit-learn's answers for them.
fn rows_and_reference(model: &str, n: usize) -> (Vec<Vec<f64>>, Value) {
    let sample = python(
        "reference_tensor.py",
        &json!({ "model": model, "sample": n }),
    );
    let rows: Vec<Vec<f64>> = sample["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(floats)
        .collect();
    let reference = python(
        "reference_tensor.py",
        &json!({ "model": model, "rows": rows }),
    );
    (rows, reference)
}

fn infer_body(rows: &[Vec<f64>]) -> Value {
    let width = rows.first().map_or(0, Vec::len);
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    json!({
        "id": "req-1",
        "inputs": [{ "name": "input", "shape": [rows.len(), width], "datatype": "FP32", "data": data }]
    })
}

fn output<'a>(reply: &'a Value, name: &str) -> &'a Value {
    reply["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no output `{name}` in {reply}"))
}

#[tokio::test]
async fn tensor_models_answer_as_scikit_learn_does() {
    for (model, n, classes) in [("risk", 12, 2), ("digits", 10, 10)] {
        let dir = if model == "risk" {
            "breast-cancer-risk"
        } else {
            "digits-classifier"
        };
        let (rows, reference) = rows_and_reference(dir, n);
        let r = post(&format!("/v2/models/{model}/infer"), infer_body(&rows)).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        assert_eq!(r.json["model_name"], model);
        assert_eq!(r.json["id"], "req-1");
        let probs = output(&r.json, "probabilities");
        assert_eq!(probs["datatype"], "FP32");
        assert_eq!(probs["shape"], json!([n, classes]));
        let want: Vec<f64> = reference["probabilities"]
            .as_array()
            .expect("probabilities")
            .iter()
            .flat_map(floats)
            .collect();
        let diff = max_diff(&floats(&probs["data"]), &want);
        assert!(diff < 1e-4, "{model}: predict_proba differs by {diff}");
        let labels = output(&r.json, "label");
        assert_eq!(labels["datatype"], "INT64");
        assert_eq!(labels["data"], reference["label"], "{model} labels");
    }
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_each_gets_its_own_rows() {
    let (rows, reference) = rows_and_reference("breast-cancer-risk", 24);
    let want: Vec<Vec<f64>> = reference["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(floats)
        .collect();
    let replies = join_all(rows.iter().enumerate().map(|(i, row)| async move {
        // Requests of one row and of two rows, nested and flat data.
        let body = if i % 2 == 0 {
            json!({ "inputs": [{ "name": "input", "shape": [1, 30], "datatype": "FP32", "data": [row] }] })
        } else {
            infer_body(std::slice::from_ref(row))
        };
        (i, post("/v2/models/risk/infer", body).await)
    }))
    .await;
    for (i, r) in replies {
        assert_eq!(r.status, 200, "row {i}: {}", r.text);
        let got = floats(&output(&r.json, "probabilities")["data"]);
        let diff = max_diff(&got, &want[i]);
        assert!(
            diff < 1e-4,
            "row {i} got another row's answer (differs by {diff})"
        );
    }
}

#[tokio::test]
async fn metadata_and_readiness_follow_the_protocol() {
    let live = fetch("/v2/health/live").await;
    assert_eq!((live.status, live.json["live"].clone()), (200, json!(true)));
    let ready = fetch("/v2/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let meta = fetch("/v2/models/risk").await;
    assert_eq!(meta.status, 200, "{}", meta.text);
    assert_eq!(meta.json["name"], "risk");
    assert_eq!(meta.json["versions"], json!(["1"]));
    assert_eq!(meta.json["platform"], "onnxruntime_onnx");
    assert_eq!(
        meta.json["inputs"],
        json!([{ "name": "input", "datatype": "FP32", "shape": [-1, 30] }])
    );
    let outputs: Vec<&str> = meta.json["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(outputs.contains(&"probabilities") && outputs.contains(&"label"));
    let versioned = fetch("/v2/models/risk/versions/1").await;
    assert_eq!(versioned.json, meta.json);
    let r = fetch("/v2/models/risk/versions/1/ready").await;
    assert_eq!((r.status, r.json["ready"].clone()), (200, json!(true)));
    fetch("/v2/models/nope/ready")
        .await
        .assert_error(404, "unknown model");
    fetch("/v2/models/risk/versions/9")
        .await
        .assert_error(404, "unknown version");
    let text = fetch("/v2/models/minilm").await;
    assert_eq!(
        text.json["inputs"],
        json!([{ "name": "text", "datatype": "BYTES", "shape": [-1] }])
    );
}

#[tokio::test]
async fn bad_tensors_are_refused_naming_the_input() {
    let row: Vec<f64> = vec![1.0; 30];
    let cases = [
        (
            json!({ "inputs": [{ "name": "input", "shape": [1, 29], "datatype": "FP32", "data": vec![1.0; 29] }] }),
            "shape",
        ),
        (
            json!({ "inputs": [{ "name": "input", "shape": [1, 30], "datatype": "INT64", "data": vec![1; 30] }] }),
            "INT64",
        ),
        (
            json!({ "inputs": [{ "name": "input", "shape": [2, 30], "datatype": "FP32", "data": row }] }),
            "elements",
        ),
        (
            json!({ "inputs": [{ "name": "pixels", "shape": [1, 30], "datatype": "FP32", "data": row }] }),
            "pixels",
        ),
        (
            json!({ "inputs": [{ "name": "input", "shape": [1, 30], "datatype": "FP16", "data": row }] }),
            "FP16",
        ),
        (
            json!({ "inputs": [{ "name": "input", "shape": [1, 30], "datatype": "FP32", "data": vec!["a"; 30] }] }),
            "element 0",
        ),
        (json!({ "inputs": [] }), "missing"),
    ];
    for (body, what) in cases {
        let r = post("/v2/models/risk/infer", body).await;
        r.assert_error(400, what);
        assert!(r.error_message().contains(what), "{what}: {}", r.text);
    }
    let r = post(
        "/v2/models/risk/infer",
        json!({ "inputs": [{ "name": "input", "shape": [1, 30], "datatype": "FP32", "data": row }],
                "outputs": [{ "name": "logits" }] }),
    )
    .await;
    r.assert_error(400, "an unknown output");
    post(
        "/v2/models/nope/infer",
        infer_body(std::slice::from_ref(&row)),
    )
    .await
    .assert_error(404, "unknown model");
}

#[tokio::test]
async fn outputs_can_be_chosen_by_name() {
    let (rows, _) = rows_and_reference("digits-classifier", 2);
    let mut body = infer_body(&rows);
    body["outputs"] = json!([{ "name": "label" }]);
    let r = post("/v2/models/digits/infer", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r.json["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, ["label"]);
}

#[tokio::test]
async fn text_models_take_bytes_inputs() {
    let texts = ["Osprey speaks KServe v2.", "a second text"];
    let body =
        json!({ "inputs": [{ "name": "text", "shape": [2], "datatype": "BYTES", "data": texts }] });
    let r = post("/v2/models/minilm/infer", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let emb = output(&r.json, "embedding");
    assert_eq!(emb["shape"], json!([2, 384]));
    let direct = post("/embed", json!({ "inputs": texts, "model": "minilm" }))
        .await
        .vectors();
    let want: Vec<f64> = direct.iter().flatten().map(|&x| f64::from(x)).collect();
    assert!(max_diff(&floats(&emb["data"]), &want) < 1e-6);

    let pairs = json!({ "inputs": [{ "name": "text", "shape": [1, 2], "datatype": "BYTES",
                                     "data": ["a positive movie review", "a lovely film"] }] });
    let r = post("/v2/models/ranker/infer", pairs).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let score = floats(&output(&r.json, "score")["data"]);
    let rerank = post(
        "/rerank",
        json!({ "query": "a positive movie review", "texts": ["a lovely film"], "raw_scores": true, "model": "ranker" }),
    )
    .await;
    let logit = rerank.json[0]["score"].as_f64().unwrap_or(f64::NAN);
    assert!((score[0] - logit).abs() < 1e-6, "{score:?} vs {logit}");
}
