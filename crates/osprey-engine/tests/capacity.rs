#![allow(clippy::expect_used)]
//! The engine's own capacity estimate on the real model: known as soon as the engine
//! has started (the warm-up times a batch), kept by the batches it runs, and showing
//! what a replica is running, so later work is predicted to finish later.

use std::time::Duration;

use osprey_engine::EmbedOptions;
use support::{engine_at, model_dir};

mod support;

#[tokio::test]
async fn the_rate_is_known_once_started_and_running_work_delays_new_work() {
    let engine = engine_at(&model_dir());

    // Before any request: the warm-up has timed a batch.
    let rate = engine.tokens_per_second().expect("known after the warm-up");
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    let idle = engine.load();
    assert_eq!(idle.replicas.len(), 1);
    assert_eq!(idle.running_tokens(), 0);
    assert_eq!(idle.queued_tokens, 0);
    let alone = idle.finish_in(0, 100, 4).expect("rates known");
    assert!(alone > Duration::ZERO);

    // While a batch of long inputs runs, the replica shows it, and a new request
    // would finish later than on the idle replica.
    let texts: Vec<String> = (0..16)
        .map(|i| format!("{i} {}", "osprey capacity ".repeat(60)))
        .collect();
    let work = tokio::spawn({
        let engine = engine.clone();
        async move { engine.embed(&texts, EmbedOptions::default()).await }
    });
    let mut busy = None;
    for _ in 0..10_000 {
        let load = engine.load();
        if load.running_tokens() > 0 {
            busy = Some(load);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let busy = busy.expect("the batch seen running");
    let behind = busy
        .finish_in(busy.queued_tokens, 100, 4)
        .expect("rates known");
    assert!(behind > alone, "{behind:?} behind a batch, {alone:?} alone");

    let out = work.await.expect("task").expect("embedded");
    assert_eq!(out.vectors.len(), 16);
    // Every batch keeps the estimate: still known, the replica idle again.
    let after = engine.load();
    assert!(after.tokens_per_second().is_some_and(|r| r > 0.0));
    assert_eq!(after.running_tokens(), 0);
    engine.shutdown();
}
