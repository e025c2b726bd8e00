//! A full queue: 429 with Retry-After.

use super::*;

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
