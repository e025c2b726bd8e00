//! `/info`, `/health/*` and `/metrics`.

use super::*;

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
