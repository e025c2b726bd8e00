//! Per-client rate limits over HTTP.

use super::*;

#[tokio::test]
async fn rate_limit_per_client_over_http() {
    let _g = shared().await;
    let s = rate_server();
    // From an address of its own: the start-up probe spent a cell of 127.0.0.1's.
    let c = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    // The burst of 3, then refusals with their headers; the wait is at most a
    // second, so some later request may pass, but never all five.
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    let mut refused = None;
    for i in 0..8 {
        let r = embed_with(&c, &s.base, None, &format!("rate {i}")).await;
        statuses.push(r.status);
        remaining.push(r.header("ratelimit-remaining").map(str::to_owned));
        if r.status == 429 && refused.is_none() {
            refused = Some(r);
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    // Answers carry the budget once half the burst is used, not before.
    assert_eq!(
        &remaining[..3],
        &[None, Some("1".into()), Some("0".into())],
        "{remaining:?}"
    );
    let r = refused.expect("a 429 after the burst");
    r.assert_error(429, "rate limit");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.json["error"]["type"], "rate_limit_error");
    // Probes are not limited.
    for _ in 0..5 {
        assert_eq!(
            get(&c, &format!("{}/health/ready", s.base)).await.status,
            200
        );
    }
}
