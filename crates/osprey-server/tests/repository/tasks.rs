//! Classification, reranking, a second embedding model and tokenization, each
//! against an independent float64 computation (scripts/reference_heads.py).

use serde_json::{Value, json};

use crate::{assert_close, floats, max_diff, models_path, post, python, reference_embeddings};

const TEXTS: [&str; 4] = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish .",
    "Osprey serves many models in one process.",
    "",
];

fn reference_logits(dir: &str, inputs: Value) -> Vec<Vec<f64>> {
    let out = python(
        "reference_heads.py",
        &json!({ "model_dir": models_path(dir), "inputs": inputs }),
    );
    out["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .map(floats)
        .collect()
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// A `/predict` list as scores by label, checked to be sorted highest first.
fn by_label(list: &Value) -> Vec<(String, f64)> {
    let items: Vec<(String, f64)> = list
        .as_array()
        .unwrap_or_else(|| panic!("{list} is not a list"))
        .iter()
        .map(|p| {
            (
                p["label"].as_str().expect("label").to_owned(),
                p["score"].as_f64().expect("score"),
            )
        })
        .collect();
    assert!(
        items.windows(2).all(|w| w[0].1 >= w[1].1),
        "not sorted by score: {list}"
    );
    items
}

fn score_of(items: &[(String, f64)], label: &str) -> f64 {
    items
        .iter()
        .find(|(l, _)| l == label)
        .map_or(f64::NAN, |(_, s)| *s)
}

#[tokio::test]
async fn predict_matches_the_float64_classifier() {
    let texts: Vec<&str> = TEXTS[..3].to_vec();
    let reference = reference_logits("minilm-polarity-classifier", json!(texts));
    let r = post("/predict", json!({ "inputs": texts, "model": "polarity" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-osprey-model"), Some("polarity@1"));
    let lists = r.json.as_array().expect("one list per input");
    assert_eq!(lists.len(), 3);
    for (list, logits) in lists.iter().zip(&reference) {
        let got = by_label(list);
        let want = softmax(logits);
        let diff = max_diff(
            &[score_of(&got, "negative"), score_of(&got, "positive")],
            &want,
        );
        assert!(
            diff < 1e-4,
            "probabilities differ by {diff}: {list} vs {want:?}"
        );
    }
    // Raw scores are the logits themselves.
    let raw = post(
        "/predict",
        json!({ "inputs": texts[0], "raw_scores": true }),
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    let got = by_label(&raw.json);
    let diff = max_diff(
        &[score_of(&got, "negative"), score_of(&got, "positive")],
        &reference[0],
    );
    assert!(diff < 1e-3, "logits differ by {diff}");
}

#[tokio::test]
async fn predict_parses_inputs_as_text_embeddings_inference_does() {
    // A list of exactly two strings is one pair: one list back, not a list of lists.
    let pair = ["the film was great", "i loved it"];
    let reference = reference_logits("minilm-polarity-classifier", json!([pair]));
    let r = post("/predict", json!({ "inputs": pair })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = by_label(&r.json);
    let want = softmax(&reference[0]);
    let diff = max_diff(
        &[score_of(&got, "negative"), score_of(&got, "positive")],
        &want,
    );
    assert!(diff < 1e-4, "a pair scored {got:?}, the reference {want:?}");

    let three = post("/predict", json!({ "inputs": ["a", "b", "c"] })).await;
    assert_eq!(
        three.json.as_array().map(Vec::len),
        Some(3),
        "{}",
        three.text
    );
    let batch = post("/predict", json!({ "inputs": [pair, ["x", "y"]] })).await;
    assert_eq!(
        batch.json.as_array().map(Vec::len),
        Some(2),
        "{}",
        batch.text
    );
    let single = post("/predict", json!({ "inputs": "only one" })).await;
    assert!(single.json[0]["label"].is_string(), "{}", single.text);

    post("/predict", json!({ "inputs": [1, 2] }))
        .await
        .assert_error(422, "numbers are not texts");
    post("/predict", json!({ "inputs": [] }))
        .await
        .assert_error(422, "no inputs");
}

#[tokio::test]
async fn rerank_matches_the_float64_cross_encoder() {
    let query = "a positive movie review";
    let texts: Vec<&str> = TEXTS.to_vec();
    let pairs: Vec<Value> = texts.iter().map(|t| json!([query, t])).collect();
    let reference = reference_logits("minilm-polarity-reranker", json!(pairs));
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());

    let r = post(
        "/rerank",
        json!({ "query": query, "texts": texts, "return_text": true }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-osprey-model"), Some("ranker@1"));
    let ranked = r.json.as_array().expect("a ranking");
    assert_eq!(ranked.len(), texts.len());
    let scores: Vec<f64> = ranked
        .iter()
        .map(|x| x["score"].as_f64().unwrap_or(f64::NAN))
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "not sorted: {}",
        r.text
    );
    for item in ranked {
        let i = item["index"].as_u64().expect("index") as usize;
        let want = sigmoid(reference[i][0]);
        let got = item["score"].as_f64().expect("score");
        assert!((got - want).abs() < 1e-4, "text {i}: {got} vs {want}");
        assert_eq!(item["text"], texts[i]);
    }

    let raw = post(
        "/rerank",
        json!({ "query": query, "texts": texts, "raw_scores": true }),
    )
    .await;
    for item in raw.json.as_array().expect("a ranking") {
        let i = item["index"].as_u64().expect("index") as usize;
        let got = item["score"].as_f64().expect("score");
        assert!(
            (got - reference[i][0]).abs() < 1e-3,
            "logit {i}: {got} vs {}",
            reference[i][0]
        );
        assert!(item.get("text").is_none(), "text only when asked");
    }
}

#[tokio::test]
async fn cohere_rerank_answers_in_its_own_shape() {
    let query = "which sentence is about films?";
    let docs = [
        "the movie was long",
        "Redis keeps data in memory",
        "a documentary about birds",
    ];
    let body = json!({
        "model": "ranker",
        "query": query,
        "documents": [docs[0], { "text": docs[1] }, docs[2]],
        "top_n": 2,
        "return_documents": true,
    });
    let r = post("/v1/rerank", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "top_n");
    let pairs: Vec<Value> = docs.iter().map(|d| json!([query, d])).collect();
    let reference = reference_logits("minilm-polarity-reranker", json!(pairs));
    let mut want: Vec<(usize, f64)> = reference
        .iter()
        .enumerate()
        .map(|(i, l)| (i, 1.0 / (1.0 + (-l[0]).exp())))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (got, (i, score)) in results.iter().zip(&want) {
        assert_eq!(got["index"].as_u64(), Some(*i as u64), "{}", r.text);
        let s = got["relevance_score"].as_f64().expect("relevance_score");
        assert!((s - score).abs() < 1e-4, "{s} vs {score}");
        assert_eq!(got["document"]["text"], docs[*i]);
    }
    assert_eq!(r.json["model"], "ranker");
    assert!(
        r.json["usage"]["total_tokens"]
            .as_u64()
            .is_some_and(|t| t > 0)
    );
    post(
        "/v1/rerank",
        json!({ "query": query, "documents": docs, "top_n": 0 }),
    )
    .await
    .assert_error(422, "top_n 0");
}

#[tokio::test]
async fn a_second_embedding_model_matches_its_reference() {
    let texts = &TEXTS[..3];
    let (reference, _) = reference_embeddings("paraphrase-MiniLM-L3-v2", texts, false);
    let r = post("/embed", json!({ "inputs": texts, "model": "para" })).await;
    assert_eq!(r.header("x-osprey-model"), Some("para@1"));
    let got = r.vectors();
    assert_close(&got, &reference, "paraphrase-MiniLM-L3-v2");
    // The default embedding model is the first one configured, and differs.
    let first = post("/embed", json!({ "inputs": texts[0] })).await;
    assert_eq!(first.header("x-osprey-model"), Some("minilm@1"));
    let a = &first.vectors()[0];
    let cos: f32 = a.iter().zip(&got[0]).map(|(x, y)| x * y).sum();
    assert!(cos < 0.99, "two models gave the same vector (cosine {cos})");
}

#[tokio::test]
async fn tokenize_shows_the_models_tokens() {
    let text = "Osprey tokenizes héllo, world!";
    let reference = reference_logits_ids("minilm-polarity-classifier", text);
    let r = post("/tokenize", json!({ "inputs": text, "model": "polarity" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let tokens = r.json[0].as_array().expect("one list per input");
    let ids: Vec<u64> = tokens
        .iter()
        .map(|t| t["id"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(ids, reference);
    assert_eq!(tokens[0]["special"], true);
    assert!(tokens[0]["start"].is_null());
    for t in &tokens[1..tokens.len() - 1] {
        let (s, e) = (t["start"].as_u64(), t["stop"].as_u64());
        let (Some(s), Some(e)) = (s, e) else {
            panic!("a word piece without offsets: {t}");
        };
        assert_eq!(t["text"], text[s as usize..e as usize], "{t}");
    }
    let plain = post(
        "/tokenize",
        json!({ "inputs": [text], "add_special_tokens": false }),
    )
    .await;
    assert_eq!(
        plain.json[0].as_array().map(Vec::len),
        Some(tokens.len() - 2),
        "{}",
        plain.text
    );
}

fn reference_logits_ids(dir: &str, text: &str) -> Vec<u64> {
    let out = python(
        "reference_heads.py",
        &json!({ "model_dir": models_path(dir), "inputs": [text] }),
    );
    out["ids"][0]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_u64().unwrap_or(0))
        .collect()
}

#[tokio::test]
async fn long_inputs_are_chunked_as_computed_by_hand() {
    let long =
        "Sentence embeddings map text to vectors, and long documents need chunks. ".repeat(40);
    let texts = [long.as_str(), "a short one"];
    for (model, dir) in [
        ("para", "paraphrase-MiniLM-L3-v2"),
        ("minilm", "all-MiniLM-L6-v2"),
    ] {
        let (reference, chunks) = reference_embeddings(dir, &texts, true);
        assert!(
            chunks[0] > 1,
            "{model}: the long text must need several windows"
        );
        let r = post(
            "/embed",
            json!({ "inputs": texts, "model": model, "truncate": false }),
        )
        .await;
        let want_header = chunks
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            r.header("x-osprey-chunks"),
            Some(want_header.as_str()),
            "{model}"
        );
        let got = r.vectors();
        assert_close(&got, &reference, model);
        // Truncation on (the default) cuts instead, and says nothing of chunks.
        let cut = post("/embed", json!({ "inputs": texts, "model": model })).await;
        assert!(cut.header("x-osprey-chunks").is_none());
        assert_ne!(cut.vectors()[0], got[0]);
    }
}

#[tokio::test]
async fn classifier_and_cross_encoder_on_onnx_match_the_float64_reference() {
    for (name, dir) in [
        ("polarity-onnx", "minilm-polarity-classifier"),
        ("ranker-onnx", "minilm-polarity-reranker"),
    ] {
        let added = post(
            "/admin/models",
            json!({ "name": name, "path": models_path(dir), "backend": "onnx", "replicas": 1 }),
        )
        .await;
        assert_eq!(added.status, 201, "{}", added.text);
        assert_eq!(added.json["details"]["backend"], "onnx");
    }
    // Single texts and pairs (token types on the onnx graph).
    let inputs = json!([TEXTS[0], [TEXTS[2], TEXTS[1]]]);
    let reference = reference_logits("minilm-polarity-classifier", inputs.clone());
    let r = post(
        "/predict",
        json!({ "inputs": inputs, "model": "polarity-onnx", "raw_scores": true }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for (list, logits) in r.json.as_array().expect("lists").iter().zip(&reference) {
        let got = by_label(list);
        let diff = max_diff(
            &[score_of(&got, "negative"), score_of(&got, "positive")],
            logits,
        );
        assert!(diff < 1e-3, "onnx classifier logits differ by {diff}");
    }
    let query = "a positive movie review";
    let pairs: Vec<Value> = TEXTS.iter().map(|t| json!([query, t])).collect();
    let reference = reference_logits("minilm-polarity-reranker", json!(pairs));
    let r = post(
        "/rerank",
        json!({ "query": query, "texts": TEXTS, "raw_scores": true, "model": "ranker-onnx" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for item in r.json.as_array().expect("a ranking") {
        let i = item["index"].as_u64().expect("index") as usize;
        let got = item["score"].as_f64().expect("score");
        assert!(
            (got - reference[i][0]).abs() < 1e-3,
            "onnx logit {i}: {got} vs {}",
            reference[i][0]
        );
    }
    for name in ["polarity-onnx", "ranker-onnx"] {
        let gone = crate::common::client()
            .delete(format!("{}/admin/models/{name}", crate::repo().base))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(gone.status(), 200);
    }
}
