//! Start-up and `POST /embed`: vectors against the reference, truncation.

use super::*;

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
