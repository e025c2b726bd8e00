//! The HTTP API end to end: the real server in-process on an ephemeral port, the real
//! model, and reference vectors from an independent float64 implementation.
//!
//! One server is shared by the whole binary (see `common`). Tests that read global
//! counters or deliberately fill the queue take the traffic lock exclusively; all
//! others share it, so they run concurrently with each other but not with those.

#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static TRAFFIC: RwLock<()> = RwLock::const_new(());

async fn shared() -> (RwLockReadGuard<'static, ()>, &'static TestServer) {
    let guard = TRAFFIC.read().await;
    (guard, main_server())
}

async fn exclusive() -> (RwLockWriteGuard<'static, ()>, &'static TestServer) {
    let guard = TRAFFIC.write().await;
    (guard, main_server())
}

fn long_case() -> &'static Case {
    reference()
        .cases
        .iter()
        .max_by_key(|c| c.untruncated_token_count)
        .expect("reference cases")
}

fn assert_matches_reference(v: &[f32], case: &Case, what: &str) {
    assert_eq!(v.len(), DIMS, "{what}");
    assert_unit(v, what);
    let c = cosine(v, &case.embedding);
    assert!(c >= 0.9999, "{what} {:?}: cosine {c}", case.text);
}

// ---------------------------------------------------------------- startup

#[tokio::test]
async fn while_loading_ready_is_503_and_embed_is_503_with_retry_after() {
    let (_g, server) = shared().await;
    let p = server
        .while_loading
        .as_ref()
        .expect("the main server is probed while loading");
    assert_eq!(p.ready_status, 503, "{}", p.ready_body);
    assert_eq!(p.ready_body["status"], "not_ready");
    assert_eq!(p.ready_body["components"]["model"]["status"], "loading");
    assert_eq!(p.embed_status, 503, "{}", p.embed_body);
    assert_error_body(&p.embed_body, "embed while loading");
    assert_eq!(p.embed_body["error"]["type"], "unavailable");
    assert!(p.embed_retry_after.is_some(), "retry-after while loading");
}

// ---------------------------------------------------------------- /embed

#[tokio::test]
async fn embed_a_string_and_a_list() {
    let (_g, server) = shared().await;
    let c = client();
    let one = embed(&c, &server.base, json!({"inputs": "hello world"})).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].len(), DIMS);
    assert_unit(&one[0], "string input");

    let two = embed(
        &c,
        &server.base,
        json!({"inputs": ["hello world", "goodbye moon"]}),
    )
    .await;
    assert_eq!(two.len(), 2);
    for v in &two {
        assert_eq!(v.len(), DIMS);
        assert_unit(v, "list input");
    }
    // A string and a one-item list are the same request.
    assert!(cosine32(&one[0], &two[0]) > 0.99999);
    assert!(
        cosine32(&two[0], &two[1]) < 0.99,
        "distinct texts, distinct vectors"
    );
}

#[tokio::test]
async fn embed_matches_reference_in_one_request() {
    let (_g, server) = shared().await;
    let cases = &reference().cases;
    assert!(cases.len() >= 20 && cases.len() <= MAX_INPUTS);
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let vs = embed(&client(), &server.base, json!({"inputs": texts})).await;
    assert_eq!(vs.len(), cases.len());
    for (i, (v, case)) in vs.iter().zip(cases).enumerate() {
        assert_matches_reference(v, case, &format!("batched case {i}"));
    }
}

#[tokio::test]
async fn embed_matches_reference_one_by_one() {
    let (_g, server) = shared().await;
    let c = client();
    for (i, case) in reference().cases.iter().enumerate() {
        let vs = embed(&c, &server.base, json!({"inputs": case.text})).await;
        assert_eq!(vs.len(), 1);
        assert_matches_reference(&vs[0], case, &format!("single case {i}"));
    }
}

#[tokio::test]
async fn embed_unnormalized_matches_reference() {
    let (_g, server) = shared().await;
    let cases = &reference().cases;
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let vs = embed(
        &client(),
        &server.base,
        json!({"inputs": texts, "normalize": false}),
    )
    .await;
    assert_eq!(vs.len(), cases.len());
    for (i, (v, case)) in vs.iter().zip(cases).enumerate() {
        assert_eq!(v.len(), DIMS);
        let c = cosine(v, &case.embedding_unnormalized);
        assert!(c >= 0.9999, "unnormalized case {i}: cosine {c}");
        let want: f64 = case
            .embedding_unnormalized
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt();
        let got = norm(v);
        assert!(
            (got - want).abs() / want < 1e-3,
            "unnormalized case {i}: norm {got}, reference {want}"
        );
    }
}

#[tokio::test]
async fn truncate_false_refuses_over_long_input_and_default_truncates() {
    let (_g, server) = shared().await;
    let c = client();
    let long = long_case();
    assert!(long.untruncated_token_count > 256);

    let r = post_json(
        &c,
        &format!("{}/embed", server.base),
        json!({"inputs": long.text, "truncate": false}),
    )
    .await;
    r.assert_error(413, "truncate:false over the limit");
    let msg = r.error_message();
    assert!(
        msg.contains(&long.untruncated_token_count.to_string()),
        "message should carry the token count {}: {msg}",
        long.untruncated_token_count
    );
    assert!(
        msg.contains("256"),
        "message should carry the maximum: {msg}"
    );

    // The same input in a list, after a short one: the index is reported too.
    let r = post_json(
        &c,
        &format!("{}/embed", server.base),
        json!({"inputs": ["short", long.text], "truncate": false}),
    )
    .await;
    r.assert_error(413, "truncate:false, second input");
    assert!(r.error_message().contains("input 1"), "{}", r.text);

    // Default: truncated to 256 tokens, the reference's truncated embedding.
    let vs = embed(&c, &server.base, json!({"inputs": long.text})).await;
    assert_matches_reference(&vs[0], long, "default truncation");
    let vs = embed(
        &c,
        &server.base,
        json!({"inputs": long.text, "truncate": true}),
    )
    .await;
    assert_matches_reference(&vs[0], long, "truncate:true");

    // Exactly at the limit is accepted without truncation.
    let exact = reference()
        .cases
        .iter()
        .find(|c| c.untruncated_token_count == 256)
        .expect("a case of exactly 256 tokens");
    let vs = embed(
        &c,
        &server.base,
        json!({"inputs": exact.text, "truncate": false}),
    )
    .await;
    assert_matches_reference(&vs[0], exact, "exactly 256 tokens, truncate:false");
}

// ---------------------------------------------------------------- /v1/embeddings

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

// ---------------------------------------------------------------- info, health, metrics

#[tokio::test]
async fn info_describes_the_model() {
    let (_g, server) = shared().await;
    let r = get(&client(), &format!("{}/info", server.base)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = &r.json;
    assert_eq!(j["model_id"], "all-MiniLM-L6-v2");
    assert_eq!(j["dims"], DIMS);
    assert_eq!(j["max_input_length"], 256);
    assert_eq!(j["backend"], "candle");
    assert_eq!(j["max_client_batch_size"], MAX_INPUTS);
    assert_eq!(j["max_input_chars"], MAX_INPUT_CHARS);
    assert_eq!(j["max_body_bytes"], MAX_BODY_BYTES);
    assert!(
        j["model_revision"].as_str().is_some_and(|s| !s.is_empty()),
        "{j}"
    );
}

#[tokio::test]
async fn health_live_and_ready() {
    let (_g, server) = shared().await;
    let c = client();
    let r = get(&c, &format!("{}/health/live", server.base)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "live");

    let r = get(&c, &format!("{}/health/ready", server.base)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "ready");
    assert_eq!(r.json["components"]["model"]["status"], "ready");
    assert_eq!(r.json["components"]["model"]["id"], "all-MiniLM-L6-v2");
    assert!(r.json["components"]["queue"]["capacity_tokens"].is_u64());
}

#[tokio::test]
async fn metrics_after_traffic() {
    let (_g, server) = shared().await;
    let c = client();
    embed(&c, &server.base, json!({"inputs": ["metrics", "traffic"]})).await;
    let r = get(&c, &format!("{}/metrics", server.base)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    for name in [
        "osprey_requests_total",
        "osprey_batch_size",
        "osprey_batch_padding_ratio",
        "osprey_request_duration_seconds",
        "osprey_embedded_items_total",
    ] {
        assert!(r.text.contains(name), "/metrics lacks {name}:\n{}", r.text);
    }
    assert!(
        r.text.contains(r#"route="/embed""#),
        "requests are labelled by route:\n{}",
        r.text
    );
    assert!(metric_sum(&r.text, "osprey_batch_size_count") >= 1.0);
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn client_errors_have_the_right_status_and_shape() {
    let (_g, server) = shared().await;
    let c = client();
    let url = format!("{}/embed", server.base);

    // (what, body, status) for JSON bodies on both embedding routes.
    let too_many: Vec<String> = (0..=MAX_INPUTS).map(|i| format!("t{i}")).collect();
    let too_long = "a".repeat(MAX_INPUT_CHARS + 1);
    let cases: Vec<(&str, Value, u16)> = vec![
        ("empty list", json!([]), 422),
        ("too many inputs", json!(too_many), 413),
        ("input over max chars", json!(["ok", too_long]), 413),
        ("number item", json!([1]), 422),
        ("null item", json!([null]), 422),
        ("nested list item", json!([["a"]]), 422),
        ("object", json!({"text": "a"}), 422),
        ("number", json!(5), 422),
        ("null", Value::Null, 422),
        ("bool", json!(true), 422),
    ];
    for (what, inputs, status) in &cases {
        let r = post_json(&c, &url, json!({ "inputs": inputs })).await;
        r.assert_error(*status, &format!("/embed {what}"));
        let r = post_json(
            &c,
            &format!("{}/v1/embeddings", server.base),
            json!({ "input": inputs }),
        )
        .await;
        r.assert_error(*status, &format!("/v1/embeddings {what}"));
    }
    let r = post_json(&c, &url, json!({"inputs": too_many})).await;
    assert!(
        r.error_message().contains(&MAX_INPUTS.to_string()),
        "{}",
        r.text
    );
    assert_eq!(r.json["error"]["type"], "invalid_request_error");

    // Characters, not bytes: two-byte characters right at the limit are fine.
    let vs = embed(
        &c,
        &server.base,
        json!({"inputs": "é".repeat(MAX_INPUT_CHARS)}),
    )
    .await;
    assert_eq!(vs.len(), 1);

    let r = post_json(&c, &url, json!({"text": "a"})).await;
    r.assert_error(422, "missing inputs");
    let r = post_json(&c, &url, json!({"inputs": "a", "normalize": "yes"})).await;
    r.assert_error(422, "normalize of the wrong type");
    // A top-level array is accepted by serde as the struct's fields in order (a
    // quirk, reported); whatever it does, it is not a server error.
    let r = post_json(&c, &url, json!(["a"])).await;
    assert!(r.status < 500, "array body: {}", r.status);

    // Raw bodies: syntax errors are 400.
    let raw: Vec<(&str, Vec<u8>, u16)> = vec![
        ("truncated JSON", br#"{"inputs":"#.to_vec(), 400),
        ("not JSON", b"not json".to_vec(), 400),
        ("trailing garbage", br#"{"inputs":"a"} x"#.to_vec(), 400),
        (
            "two documents",
            br#"{"inputs":"a"}{"inputs":"b"}"#.to_vec(),
            400,
        ),
        ("empty body", Vec::new(), 400),
        (
            "invalid UTF-8 in a string",
            b"{\"inputs\":\"\xff\xfe\"}".to_vec(),
            400,
        ),
        (
            "invalid UTF-8 outside strings",
            b"{\"inputs\":\"a\"\xff}".to_vec(),
            400,
        ),
        (
            "lone surrogate escape",
            br#"{"inputs":"\ud800"}"#.to_vec(),
            400,
        ),
    ];
    for (what, body, status) in raw {
        for (route, key) in [("/embed", "\"inputs\""), ("/v1/embeddings", "\"input\"")] {
            let body = replace_bytes(&body, b"\"inputs\"", key.as_bytes());
            let resp = c
                .post(format!("{}{route}", server.base))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            Reply::read(resp)
                .await
                .assert_error(status, &format!("{route} {what}"));
        }
    }

    // Deep nesting: never a stack overflow or a server error. Inside `inputs` it is
    // refused as soon as an item is not a string (422) or at serde_json's depth limit
    // (400); under a field the server ignores, serde_json skips it without recursing.
    let depth = 200_000;
    let deep_inputs = format!(
        r#"{{"inputs":{}"a"{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let deep_ignored = format!(
        r#"{{"x":{}{},"inputs":"a"}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let deep_objects = format!(
        r#"{{"inputs":"a","x":{}1{}}}"#,
        r#"{"a":"#.repeat(depth / 5),
        "}".repeat(depth / 5)
    );
    let deep_top = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for (what, body, allowed) in [
        ("deeply nested inputs", deep_inputs, &[400, 422][..]),
        ("deeply nested ignored field", deep_ignored, &[200, 400][..]),
        (
            "deeply nested ignored objects",
            deep_objects,
            &[200, 400][..],
        ),
        ("deeply nested top level", deep_top, &[400, 422][..]),
    ] {
        assert!(body.len() < MAX_BODY_BYTES, "{what} fits the body limit");
        let r = Reply::read(
            c.post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert!(
            allowed.contains(&r.status),
            "{what}: {} {:.200}",
            r.status,
            r.text
        );
        if r.status != 200 {
            assert_error_body(&r.json, what);
        }
    }

    // Content types.
    let body = br#"{"inputs":"a"}"#.to_vec();
    for (what, ct, status) in [
        ("text/plain", Some("text/plain"), 415),
        ("form", Some("application/x-www-form-urlencoded"), 415),
        ("no content type", None, 415),
        (
            "json with charset",
            Some("application/json; charset=utf-8"),
            200,
        ),
        ("upper-case json", Some("Application/JSON"), 200),
    ] {
        let mut req = c.post(&url).body(body.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = Reply::read(req.send().await.expect("send")).await;
        if status == 200 {
            assert_eq!(r.status, 200, "{what}: {}", r.text);
        } else {
            r.assert_error(status, what);
        }
    }

    // Routes and methods.
    let r = get(&c, &format!("{}/nope", server.base)).await;
    r.assert_error(404, "unknown route");
    assert_eq!(r.json["error"]["type"], "not_found");
    let r = post_json(&c, &format!("{}/v2/embed", server.base), json!({})).await;
    r.assert_error(404, "unknown POST route");
    let r = get(&c, &url).await;
    r.assert_error(405, "GET /embed");
    let r = Reply::read(
        c.delete(format!("{}/info", server.base))
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(405, "DELETE /info");

    // Still healthy, and no client input was a server error.
    let vs = embed(&c, &server.base, json!({"inputs": "still fine"})).await;
    assert_eq!(vs[0].len(), DIMS);
    let m = get(&c, &format!("{}/metrics", server.base)).await;
    for line in m.text.lines() {
        if line.starts_with("osprey_requests_total") {
            assert!(!line.contains(r#"status="500""#), "a 500: {line}");
        }
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (_g, server) = shared().await;
    let c = client();
    let url = format!("{}/embed", server.base);
    // Valid JSON larger than max_body_bytes, with its length declared.
    let big =
        serde_json::to_vec(&json!({"inputs": "a".repeat(MAX_BODY_BYTES + 10)})).expect("serialize");
    let (status, body) = raw_request(
        server.addr,
        format!(
            "POST /embed HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            big.len()
        ),
        big.clone(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_error_body(&body, "declared oversized body");

    // The same body chunked, so only reading it reveals the size.
    let mut chunked = Vec::new();
    for part in big.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_request(
        server.addr,
        "POST /v1/embeddings HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".into(),
        chunked,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_error_body(&body, "chunked oversized body");

    // Through an ordinary client as well.
    let resp = c
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    match resp {
        Ok(resp) => Reply::read(resp)
            .await
            .assert_error(413, "reqwest oversized body"),
        // The server may answer and close before the client finished sending.
        Err(e) => eprintln!("oversized body through reqwest: {e}"),
    }

    // A small chunked body is fine.
    let small = br#"{"inputs":"chunked"}"#;
    let (status, body) = raw_request(
        server.addr,
        "POST /embed HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".into(),
        [format!("{:x}\r\n", small.len()).as_bytes(), small, b"\r\n0\r\n\r\n"].concat(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0].as_array().map(Vec::len), Some(DIMS));

    let vs = embed(&c, &server.base, json!({"inputs": "after big bodies"})).await;
    assert_eq!(vs[0].len(), DIMS);
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn request_id_and_server_timing() {
    let (_g, server) = shared().await;
    let c = client();
    let url = format!("{}/embed", server.base);
    let r = post_json(&c, &url, json!({"inputs": "headers"})).await;
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").expect("x-request-id is set");
    assert!(!id.is_empty());
    let r2 = post_json(&c, &url, json!({"inputs": "headers"})).await;
    assert_ne!(r2.header("x-request-id"), Some(id), "ids are per request");

    let timing = r.header("server-timing").expect("server-timing is set");
    for stage in [
        "validate",
        "tokenize",
        "queue",
        "inference",
        "postprocess",
        "serialize",
    ] {
        assert!(
            timing
                .split(',')
                .any(|part| part.trim().starts_with(&format!("{stage};dur="))),
            "server-timing lacks {stage}: {timing}"
        );
    }

    let resp = c
        .post(&url)
        .header("x-request-id", "test-id-1234")
        .json(&json!({"inputs": "echo"}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("test-id-1234")
    );

    // The OpenAI route times its stages too; errors still carry a request id.
    let r = post_json(
        &c,
        &format!("{}/v1/embeddings", server.base),
        json!({"input": "timing"}),
    )
    .await;
    assert!(
        r.header("server-timing")
            .is_some_and(|t| t.contains("serialize;dur="))
    );
    let resp = c
        .post(&url)
        .header("x-request-id", "err-id")
        .json(&json!({"inputs": []}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 422);
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("err-id")
    );
}

// ---------------------------------------------------------------- batching

fn distinct_texts() -> Vec<String> {
    let subjects = [
        "A fisherman",
        "The orchestra",
        "My grandmother",
        "A software engineer",
        "The volcano",
        "Our football team",
        "A small cat",
        "The central bank",
    ];
    let endings = [
        "repairs an old wooden boat in the harbour.",
        "raised interest rates again this spring.",
        "sings quietly while baking bread at dawn.",
        "debugged a race condition in the scheduler.",
    ];
    let mut out = Vec::new();
    for s in subjects {
        for e in endings {
            out.push(format!("{s} {e}"));
        }
    }
    out
}

#[tokio::test]
async fn concurrent_requests_map_back_and_are_batched() {
    let (_g, server) = exclusive().await;
    let c = client();
    let texts = distinct_texts();
    assert_eq!(texts.len(), 32);

    let mut alone = Vec::new();
    for t in &texts {
        alone.push(
            embed(&c, &server.base, json!({"inputs": t}))
                .await
                .remove(0),
        );
    }

    let (batches0, items0) = server.engine.batch_counts();
    // A long input first keeps the replica busy while the burst arrives.
    let blocker = embed(&c, &server.base, json!({"inputs": long_case().text}));
    let burst = join_all(
        texts
            .iter()
            .map(|t| embed(&c, &server.base, json!({"inputs": t}))),
    );
    let (_, got) = tokio::join!(blocker, burst);
    let (batches1, items1) = server.engine.batch_counts();

    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.len(), 1);
        let own = cosine32(&v[0], &alone[i]);
        assert!(own > 0.99999, "text {i}: cosine to its own vector {own}");
        for (j, other) in alone.iter().enumerate() {
            if j != i {
                assert!(
                    cosine32(&v[0], other) < own,
                    "text {i} is closer to text {j} than to itself"
                );
            }
        }
    }
    let (batches, items) = (batches1 - batches0, items1 - items0);
    eprintln!("burst: {items} inputs in {batches} batches");
    assert_eq!(items, 33, "every input was run once");
    assert!(
        items > batches,
        "no batching: {items} inputs in {batches} batches"
    );
}

#[tokio::test]
async fn mixed_length_concurrent_requests() {
    let (_g, server) = shared().await;
    let c = client();
    let cases = &reference().cases;
    // Every reference case as its own request, all at once, and once more through
    // the OpenAI route, interleaved.
    let tei = join_all(
        cases
            .iter()
            .map(|case| embed(&c, &server.base, json!({"inputs": case.text}))),
    );
    let openai_url = format!("{}/v1/embeddings", server.base);
    let openai = join_all(
        cases
            .iter()
            .rev()
            .map(|case| post_json(&c, &openai_url, json!({"input": case.text}))),
    );
    let (tei, openai) = tokio::join!(tei, openai);
    for (i, (v, case)) in tei.iter().zip(cases).enumerate() {
        assert_eq!(v.len(), 1);
        assert_matches_reference(&v[0], case, &format!("concurrent case {i}"));
    }
    for (r, case) in openai.iter().zip(cases.iter().rev()) {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["usage"]["prompt_tokens"], case.token_count);
        let v: Vec<f32> =
            serde_json::from_value(r.json["data"][0]["embedding"].clone()).expect("floats");
        assert_matches_reference(&v, case, "concurrent openai case");
    }
}

// ---------------------------------------------------------------- disconnects

#[tokio::test]
async fn client_disconnect_leaves_the_server_working() {
    let (_g, server) = exclusive().await;
    let c = client();
    let metrics_url = format!("{}/metrics", server.base);
    let cancelled_before = metric_sum(
        &get(&c, &metrics_url).await.text,
        "osprey_cancelled_items_total",
    );

    // Two requests of 16 maximum-length inputs keep the replica busy for a while.
    let long = &long_case().text;
    let busy_inputs: Vec<String> = (0..16).map(|i| format!("{i} {long}")).collect();
    let busy = join_all((0..2).map(|_| embed(&c, &server.base, json!({"inputs": busy_inputs}))));
    let doomed = async {
        // Wait until work is queued behind the running batch.
        for _ in 0..2000 {
            if server.engine.queued_tokens() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let doomed_inputs: Vec<String> = (0..16).map(|i| format!("doomed {i} {long}")).collect();
        let mut outcomes = Vec::new();
        for timeout in [Duration::from_millis(1), Duration::from_millis(150)] {
            let r = c
                .post(format!("{}/embed", server.base))
                .timeout(timeout)
                .json(&json!({"inputs": doomed_inputs}))
                .send()
                .await;
            // Whatever the outcome, it must not be a server error; 503 is a
            // deliberate refusal (on a slow machine, the work ahead may not finish
            // within the deadline).
            if let Ok(resp) = &r {
                let status = resp.status();
                assert!(status == 503 || !status.is_server_error(), "{status}");
            }
            outcomes.push(r.map(|r| r.status().as_u16()).map_err(|e| e.is_timeout()));
        }
        outcomes
    };
    let (busy, outcomes) = tokio::join!(busy, doomed);
    eprintln!("doomed requests: {outcomes:?}");
    for vs in busy {
        assert_eq!(vs.len(), 16);
        assert!(vs.iter().all(|v| v.len() == DIMS));
    }

    // The server answers normally afterwards and its queue drains.
    let vs = embed(&c, &server.base, json!({"inputs": "after the disconnect"})).await;
    assert_eq!(vs[0].len(), DIMS);
    let mut drained = false;
    for _ in 0..600 {
        if server.engine.queued_tokens() == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        drained,
        "queue still holds {} tokens",
        server.engine.queued_tokens()
    );
    let r = get(&c, &format!("{}/health/ready", server.base)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["components"]["queue"]["queued_tokens"], 0);
    let cancelled_after = metric_sum(
        &get(&c, &metrics_url).await.text,
        "osprey_cancelled_items_total",
    );
    eprintln!(
        "cancelled items during the test: {}",
        cancelled_after - cancelled_before
    );
}

// ---------------------------------------------------------------- overload

#[tokio::test]
async fn overload_is_429_with_retry_after() {
    let server = small_queue_server();
    let c = client();
    let url = format!("{}/embed", server.base);
    let request = |r: usize| {
        let texts: Vec<String> = (0..32)
            .map(|i| format!("request {r} text {i}: the queue only holds a few hundred tokens"))
            .collect();
        post_json(&c, &url, json!({ "inputs": texts }))
    };
    let (mut ok, mut rejected) = (0, 0);
    // One round practically always overloads the queue; a few more make sure.
    for round in 0..5 {
        let replies = join_all((0..64).map(|r| request(round * 64 + r))).await;
        for r in &replies {
            assert!(
                r.status < 500,
                "server error under load: {} {}",
                r.status,
                r.text
            );
            match r.status {
                200 => {
                    ok += 1;
                    let vs = r.vectors();
                    assert_eq!(vs.len(), 32);
                    assert!(vs.iter().all(|v| v.len() == DIMS));
                }
                429 => {
                    rejected += 1;
                    r.assert_error(429, "overloaded");
                    assert_eq!(r.json["error"]["type"], "overloaded");
                    let retry = r.header("retry-after").expect("429 carries retry-after");
                    assert!(retry.parse::<u64>().is_ok(), "retry-after {retry}");
                }
                s => panic!("unexpected status {s}: {}", r.text),
            }
        }
        if rejected > 0 {
            break;
        }
    }
    eprintln!("overload: {ok} accepted, {rejected} rejected");
    assert!(ok >= 1, "an empty queue always admits a request");
    assert!(rejected >= 1, "a 300-token queue never filled up");

    // Once the flood is over the server serves normally.
    let vs = embed(&c, &server.base, json!({"inputs": "calm again"})).await;
    assert_eq!(vs[0].len(), DIMS);
    let r = get(&c, &format!("{}/health/ready", server.base)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["components"]["queue"]["capacity_tokens"], 300);
}
