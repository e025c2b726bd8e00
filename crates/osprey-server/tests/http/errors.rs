//! Client errors: status codes and the error body's shape, oversized bodies.

use super::*;

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
