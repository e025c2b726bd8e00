//! Overload and deadlines: fast refusals with bounded memory, 504s that drop queued
//! work, and deadlines the queue cannot meet refused at once.

use super::*;

#[tokio::test]
async fn overload_is_refused_at_once_with_bounded_memory() {
    let _g = exclusive().await;
    let s = guarded_server();
    let c = client();
    // Warm every path once before measuring memory.
    embed(&c, &s.base, json!({"inputs": unique_batch(0, 32)})).await;
    let before = rss_mb();

    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let requests = (0..64).map(|k| {
        let c = c.clone();
        let url = format!("{}/embed", s.base);
        let order = order.clone();
        async move {
            let texts = unique_batch(k * 100, 32);
            let r = Reply::read(
                c.post(url)
                    .json(&json!({ "inputs": texts }))
                    .send()
                    .await
                    .expect("send"),
            )
            .await;
            order.lock().expect("lock").push(r.status);
            (texts, r)
        }
    });
    let results = join_all(requests).await;
    let after = rss_mb();

    let (mut ok, mut refused) = (0, 0);
    for (texts, r) in &results {
        match r.status {
            200 => {
                ok += 1;
                assert_eq!(r.vectors().len(), texts.len());
            }
            429 | 503 => {
                refused += 1;
                r.assert_error(r.status, "overload");
                assert!(r.header("retry-after").is_some());
            }
            other => panic!("unexpected status {other}: {}", r.text),
        }
    }
    assert!(ok >= 1, "some requests are served");
    assert!(
        refused >= 32,
        "most are refused: {ok} served, {refused} refused"
    );
    // Refusals do not wait for work: they all arrive before the first success.
    let order = order.lock().expect("lock").clone();
    let first_ok = order.iter().position(|&s| s == 200).expect("a success");
    assert!(first_ok >= 32, "first success at {first_ok}: {order:?}");
    assert!(
        after - before < 300.0,
        "RSS grew {:.0} MB under overload",
        after - before
    );
    assert_eq!(s.engine.admission().in_flight(), 0, "every slot returned");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "after the storm"}))
            .await
            .len(),
        1
    );
}

fn longest_text() -> String {
    reference()
        .cases
        .iter()
        .max_by_key(|c| c.token_count)
        .expect("cases")
        .text
        .clone()
}

/// A request admitted to an idle engine whose replicas then stall past its deadline
/// gets 504, and its queued inputs are taken out of the queue (fake replicas: the
/// stall is theirs to script).
#[tokio::test]
async fn deadline_drops_queued_work_with_504() {
    let script = Script::new();
    let batching = BatchingConfig {
        max_batch_requests: 1,
        ..BatchingConfig::default()
    };
    let s = start_fake(
        small_limits(),
        batching,
        Protection::default(),
        None,
        &script,
    );
    let c = client();
    let metric = |text: &str| metric_sum(text, "osprey_cancelled_items_total");
    let cancelled_before = metric(&get(&c, &format!("{}/metrics", s.base)).await.text);

    // Six inputs, one per batch: two run (held at the gate), four wait in the queue.
    script.hold();
    let texts: Vec<String> = (0..6).map(|i| format!("held input {i}")).collect();
    let r = Reply::read(
        c.post(format!("{}/embed", s.base))
            .header(osprey_server::DEADLINE_HEADER, "300")
            .json(&json!({ "inputs": texts }))
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(504, "deadline");
    assert_eq!(r.json["error"]["code"], "deadline_exceeded");
    // The queue empties at once: the inputs were taken out, not left for the replicas.
    let mut waited = 0;
    while s.engine.queued_tokens() > 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(s.engine.queued_tokens(), 0);
    script.release();
    let cancelled = metric(&get(&c, &format!("{}/metrics", s.base)).await.text) - cancelled_before;
    assert!(cancelled >= 4.0, "queued inputs cancelled: {cancelled}");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "after the deadline"}))
            .await
            .len(),
        1
    );
}

/// Auth off, a large queue and small batches: room for seconds of queued work.
fn deep_queue_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let batching = BatchingConfig {
            max_batch_tokens: 512,
            max_queue_tokens: 1 << 20,
            ..BatchingConfig::default()
        };
        // Deadlines alone decide here: no bound on queueing.
        start_with(small_limits(), batching, unbounded_queue())
    })
}

/// Behind seconds of queued work, a request with a short deadline is refused at
/// once with 503 (not admitted to time out with 504), while one whose deadline
/// leaves room is admitted and served.
#[tokio::test]
async fn unreachable_deadlines_are_refused_at_once() {
    let s = deep_queue_server();
    let c = client();
    // Known from the warm-up, before this server has served anything.
    let rate = s.engine.tokens_per_second().expect("rate known at start");

    // At least two seconds of work at that rate, in requests of 16 long inputs.
    let long = longest_text();
    let per_request = 16.0 * 256.0;
    let requests = ((2.0 * rate / per_request).ceil() as usize).clamp(1, 64);
    let background = join_all((0..requests).map(|k| {
        let c = c.clone();
        let url = format!("{}/embed", s.base);
        let texts: Vec<String> = (0..16).map(|i| format!("{long} [{k}-{i}]")).collect();
        async move {
            Reply::read(
                c.post(url)
                    .json(&json!({ "inputs": texts }))
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    }));
    let probe = async {
        // Once the queue alone holds a second of work at the current rate...
        let second_of_work = || {
            let load = s.engine.load();
            let rate = load.tokens_per_second().unwrap_or(f64::INFINITY);
            load.queued_tokens as f64 >= rate
        };
        let mut waited = 0;
        while !second_of_work() && waited < 10_000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            waited += 1;
        }
        assert!(
            second_of_work(),
            "the background work never filled the queue"
        );
        // ...300 ms cannot be enough.
        let short = Reply::read(
            c.post(format!("{}/embed", s.base))
                .header(osprey_server::DEADLINE_HEADER, "300")
                .json(&json!({ "inputs": "a request in a hurry" }))
                .send()
                .await
                .expect("send"),
        )
        .await;
        // Refused at once: the work ahead of it is still queued.
        let still_queued = s.engine.queued_tokens();
        // A deadline that leaves room is admitted, and waits its turn.
        let patient = Reply::read(
            c.post(format!("{}/embed", s.base))
                .header(osprey_server::DEADLINE_HEADER, "30000")
                .json(&json!({ "inputs": "a patient request" }))
                .send()
                .await
                .expect("send"),
        )
        .await;
        (short, still_queued, patient)
    };
    let (background, (short, still_queued, patient)) = tokio::join!(background, probe);

    short.assert_error(503, "unreachable deadline");
    assert_eq!(short.json["error"]["code"], "deadline_unreachable");
    assert!(short.header("retry-after").is_some());
    assert!(still_queued > 0, "the refusal waited for the queue");
    assert_eq!(patient.vectors().len(), 1);
    for r in background {
        assert_eq!(r.vectors().len(), 16);
    }
}
