//! Request ids and Server-Timing.

use super::*;

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
    // An id too long (or not visible ASCII) to echo and log is replaced by a new one.
    let long = "x".repeat(200);
    let resp = c
        .post(&url)
        .header("x-request-id", &long)
        .json(&json!({"inputs": "echo"}))
        .send()
        .await
        .expect("send");
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an id");
    assert_eq!(id.len(), 36, "a new UUID, not the client's: {id}");

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
