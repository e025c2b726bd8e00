//! Batch budgets that follow measured speed, on the real binary: under a load
//! that fills every batch, the request cap is tried one step down, judged on the
//! next window and kept or taken back, each step listed at `/admin/actions` with
//! its figures, the budgets in force at `/info`, and no request failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::serve_model_with;

fn retunes(actions: &Value) -> Vec<Value> {
    actions["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["action"] == "batch_retuned")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_budgets_climb_under_load_and_say_why() {
    let s = Arc::new(
        serve_model_with(
            &[],
            &[
                ("OSPREY_AUTOSCALE__TUNE_BATCHES", "true"),
                ("OSPREY_AUTOSCALE__TUNE_WINDOW_MS", "300"),
                ("OSPREY_BATCHING__MAX_BATCH_REQUESTS", "4"),
                ("OSPREY_LIMITS__MAX_QUEUE_MS", "60000"),
            ],
        )
        .await,
    );
    assert_eq!(s.get_json("/info").await["max_batch_requests"], 4);

    // Sixteen clients of one unique text each: four inputs a batch, more waiting.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (s, stop, sent, failed) = (s.clone(), stop.clone(), sent.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let status = s
                    .client
                    .post(format!("{}/embed", s.base))
                    .json(&json!({ "inputs": [format!("client {c} asks question number {i}")] }))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                sent.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // A trial, then its verdict.
    let deadline = Instant::now() + Duration::from_secs(60);
    let steps = loop {
        let steps = retunes(&s.get_json("/admin/actions").await);
        if steps.iter().any(|a| a["detail"]["step"]["kind"] != "trial") {
            break steps;
        }
        assert!(
            Instant::now() < deadline,
            "no verdict on a trial: {steps:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    assert!(sent.load(Ordering::Relaxed) > 0);

    // Newest first: the first step was a trial of the request cap, down from 4.
    let first = steps.last().cloned().unwrap_or_default();
    let step = &first["detail"]["step"];
    assert_eq!(step["kind"], "trial", "{first:#}");
    assert_eq!(step["knob"], "max_batch_requests", "{first:#}");
    assert_eq!(
        (step["from"].as_f64(), step["to"].as_f64()),
        (Some(4.0), Some(2.0))
    );
    assert!(
        step["measured"].as_f64().is_some_and(|v| v > 0.0),
        "{first:#}"
    );
    assert!(
        first["detail"]["window"]["bound_batches"].as_u64() >= Some(8),
        "{first:#}"
    );
    assert!(
        first["reason"]
            .as_str()
            .is_some_and(|r| r.contains("batching.max_batch_requests")),
        "{first:#}"
    );
    // What /info reports is what the newest step left in force.
    let newest = &steps[0]["detail"]["step"]["budgets"];
    let info = s.get_json("/info").await;
    assert_eq!(
        info["max_batch_requests"], newest["max_batch_requests"],
        "{info:#}"
    );
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("osprey_self_heal_actions_total{action=\"batch_retuned\"}")),
        "the steps are counted"
    );

    // A budget set by hand restarts the climb from it and is not overwritten.
    let resp = s
        .client
        .put(format!("{}/admin/config", s.base))
        .json(&json!({"batching": {"max_batch_requests": 5}}))
        .send()
        .await
        .expect("PUT /admin/config");
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.get_json("/info").await["max_batch_requests"], 5);
}
