//! Query strings: a route's own parameters pass; unknown, repeated or badly
//! encoded ones get 400 naming the parameter.

use super::*;

#[tokio::test]
async fn unknown_and_malformed_query_parameters_are_named_in_a_400() {
    let (_g, server) = shared().await;
    let c = client();
    let base = &server.base;
    for (path, named) in [
        ("/health/live?verbose=1", "`verbose`"),
        ("/v1/models?limit=3", "`limit`"),
        ("/info?%zz", "`%zz`"),
        ("/dashboard/data?since=0&until=9", "`until`"),
        ("/dashboard/data?since=%zz", "`since`"),
        ("/dashboard/data?since=1&since=2", "`since`"),
        ("/admin/profile?seconds=1&rate=99", "`rate`"),
    ] {
        let r = get(&c, &format!("{base}{path}")).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        let message = r.json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{path}: {message}");
        assert_eq!(r.json["error"]["code"], "bad_query", "{path}");
    }
    let r = post_json(
        &c,
        &format!("{base}/embed?normalize=false"),
        json!({"inputs": "hi"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("`normalize`"), "{}", r.text);

    // A route's own parameters, percent-encoded or not, still work.
    for path in [
        "/dashboard/data?since=0",
        "/dashboard/data?s%69nce=%30",
        "/health/live?",
    ] {
        let r = get(&c, &format!("{base}{path}")).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    // Unmatched routes are still a plain 404.
    let r = get(&c, &format!("{base}/nowhere?x=1")).await;
    assert_eq!(r.status, 404, "{}", r.text);
}
