//! Concurrent requests batched and mapped back; client disconnects.

use super::*;

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
