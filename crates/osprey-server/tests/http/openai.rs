//! `POST /v1/embeddings`: the OpenAI shape, usage, base64 and dimensions.

use super::*;

#[tokio::test]
async fn openai_shape_usage_and_vectors() {
    let (_g, server) = shared().await;
    let c = client();
    let cases: Vec<&Case> = reference().cases.iter().collect();
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let r = post_json(
        &c,
        &format!("{}/v1/embeddings", server.base),
        json!({"input": texts}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = &r.json;
    assert_eq!(j["object"], "list");
    assert_eq!(j["model"], "all-MiniLM-L6-v2");
    let data = j["data"].as_array().expect("data is an array");
    assert_eq!(data.len(), cases.len());
    for (i, (item, case)) in data.iter().zip(&cases).enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let v: Vec<f32> =
            serde_json::from_value(item["embedding"].clone()).expect("float embedding");
        assert_matches_reference(&v, case, &format!("openai case {i}"));
    }
    let tokens: usize = cases.iter().map(|c| c.token_count).sum();
    assert_eq!(j["usage"]["prompt_tokens"], tokens, "{}", j["usage"]);
    assert_eq!(j["usage"]["total_tokens"], tokens, "{}", j["usage"]);

    // A single string, and the model name a client sends.
    let r = post_json(
        &c,
        &format!("{}/v1/embeddings", server.base),
        json!({"input": cases[0].text, "model": "all-MiniLM-L6-v2"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.json["model"], "all-MiniLM-L6-v2");
    assert_eq!(r.json["usage"]["prompt_tokens"], cases[0].token_count);
}

#[tokio::test]
async fn openai_base64_decodes_to_the_float_vector() {
    let (_g, server) = shared().await;
    let c = client();
    let url = format!("{}/v1/embeddings", server.base);
    let input = ["The quick brown fox jumps over the lazy dog.", "a"];
    let float = post_json(&c, &url, json!({"input": input})).await;
    let b64 = post_json(
        &c,
        &url,
        json!({"input": input, "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(float.status, 200, "{}", float.text);
    assert_eq!(b64.status, 200, "{}", b64.text);
    for i in 0..input.len() {
        let want: Vec<f32> =
            serde_json::from_value(float.json["data"][i]["embedding"].clone()).expect("floats");
        let s = b64.json["data"][i]["embedding"]
            .as_str()
            .expect("base64 embedding is a string");
        assert_eq!(s.len(), (DIMS * 4).div_ceil(3) * 4, "encoded length");
        let bytes = base64_decode(s);
        assert_eq!(bytes.len(), DIMS * 4);
        let got: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!(
            cosine32(&got, &want) > 0.99999,
            "input {i}: base64 and float vectors differ"
        );
        assert_unit(&got, "base64 vector");
    }
    // `float` spelled out is the default.
    let r = post_json(&c, &url, json!({"input": "a", "encoding_format": "float"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["data"][0]["embedding"].is_array());
    let r = post_json(&c, &url, json!({"input": "a", "encoding_format": "hex"})).await;
    r.assert_error(422, "unknown encoding_format");
}

#[tokio::test]
async fn openai_dimensions() {
    let (_g, server) = shared().await;
    let c = client();
    let url = format!("{}/v1/embeddings", server.base);
    let text = "What is the capital of France?";
    let full = post_json(&c, &url, json!({"input": text})).await;
    let full: Vec<f32> =
        serde_json::from_value(full.json["data"][0]["embedding"].clone()).expect("full vector");

    let r = post_json(&c, &url, json!({"input": text, "dimensions": 8})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v: Vec<f32> =
        serde_json::from_value(r.json["data"][0]["embedding"].clone()).expect("8 dims");
    assert_eq!(v.len(), 8);
    assert_unit(&v, "dimensions 8");
    // The first 8 components of the full vector, renormalized.
    assert!(cosine32(&v, &full[..8]) > 0.99999);

    let r = post_json(&c, &url, json!({"input": text, "dimensions": DIMS})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["data"][0]["embedding"].as_array().map(Vec::len),
        Some(DIMS)
    );

    for bad in [json!(0), json!(-1), json!(10000), json!(DIMS + 1)] {
        let r = post_json(&c, &url, json!({"input": text, "dimensions": bad})).await;
        r.assert_error(422, &format!("dimensions {bad}"));
    }
    for bad in [json!("8"), json!(8.5)] {
        let r = post_json(&c, &url, json!({"input": text, "dimensions": bad})).await;
        r.assert_error(422, &format!("dimensions {bad}"));
    }
}

/// Served from `[model]` alone, any unknown name means the default model (OpenAI
/// clients must send one), while a model added at run time answers to its name.
#[tokio::test]
async fn one_model_answers_any_name_and_added_models_their_own() {
    let (_g, server) = shared().await;
    let c = client();
    let url = format!("{}/v1/embeddings", server.base);
    let r = post_json(
        &c,
        &url,
        json!({"input": "x", "model": "text-embedding-3-small"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-osprey-model"), Some("all-MiniLM-L6-v2@1"));
    assert_eq!(r.json["model"], "text-embedding-3-small");

    let para = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/paraphrase-MiniLM-L3-v2");
    let added = post_json(
        &c,
        &format!("{}/admin/models", server.base),
        json!({"name": "para-live", "path": para.to_string_lossy()}),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let r = post_json(&c, &url, json!({"input": "x", "model": "para-live"})).await;
    assert_eq!(
        r.header("x-osprey-model"),
        Some("para-live@1"),
        "{}",
        r.text
    );
    let r = post_json(&c, &url, json!({"input": "x", "model": "still-unknown"})).await;
    assert_eq!(r.header("x-osprey-model"), Some("all-MiniLM-L6-v2@1"));
    let gone = c
        .delete(format!("{}/admin/models/para-live", server.base))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(gone.status(), 200);
}
