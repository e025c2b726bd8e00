#![allow(clippy::expect_used)]
//! The engine's queueing, admission, capacity and failure handling on the fake
//! backend: batches are held at a gate or scripted to fail, and deadlines run on
//! tokio's paused clock, so nothing here waits on real time or a real model.

use std::sync::Arc;
use std::time::Duration;

use osprey_engine::{AdmissionConfig, BatchingConfig, EmbedOptions, Engine, EngineError, Pipeline};
use osprey_testkit::{FAKE_DIMS, Script, fake_engine};

fn engine(batching: BatchingConfig, admission: AdmissionConfig) -> (Arc<Engine>, Arc<Script>) {
    let script = Script::new();
    let engine = fake_engine(&batching, admission, &script).expect("fake engine");
    (Arc::new(engine), script)
}

fn one_replica() -> BatchingConfig {
    BatchingConfig {
        replicas: 1,
        threads: 1,
        ..BatchingConfig::default()
    }
}

fn no_deadline() -> AdmissionConfig {
    AdmissionConfig {
        max_in_flight: 0,
        deadline: None,
        max_queue: None,
    }
}

fn texts(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag} input number {i}")).collect()
}

type Embedding = tokio::task::JoinHandle<Result<osprey_engine::Embeddings, EngineError>>;

/// Embeds `n` texts tagged `tag` in a task of its own.
fn spawn_embed(engine: &Arc<Engine>, tag: &str, n: usize) -> Embedding {
    let (e, t) = (engine.clone(), texts(tag, n));
    tokio::spawn(async move { e.embed(&t, EmbedOptions::default()).await })
}

/// Yields until something waits in the engine's queue.
async fn until_queued(engine: &Engine) {
    while engine.queued_tokens() == 0 {
        tokio::task::yield_now().await;
    }
}

/// Waits, off the runtime, until `n` batches run on the fake replicas.
async fn running(script: &Arc<Script>, n: usize) {
    let s = script.clone();
    let seen = tokio::task::spawn_blocking(move || s.wait_running(n, Duration::from_secs(30)))
        .await
        .expect("wait task");
    assert!(seen, "{n} batches never started");
}

#[tokio::test]
async fn the_rate_is_known_once_started_and_running_work_delays_new_work() {
    let (engine, script) = engine(one_replica(), no_deadline());
    // Before any request: the warm-up has timed a batch.
    let rate = engine.tokens_per_second().expect("known after the warm-up");
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    let idle = engine.load();
    assert_eq!(
        (
            idle.replicas.len(),
            idle.running_tokens(),
            idle.queued_tokens
        ),
        (1, 0, 0)
    );
    let alone = idle.finish_in(0, 100, 4).expect("rates known");

    script.hold();
    let work = spawn_embed(&engine, "long", 16);
    running(&script, 1).await;
    let busy = engine.load();
    assert!(busy.running_tokens() > 0, "the replica shows its batch");
    let behind = busy
        .finish_in(busy.queued_tokens, 100, 4)
        .expect("rates known");
    assert!(behind > alone, "{behind:?} behind a batch, {alone:?} alone");
    script.release();

    let out = work.await.expect("task").expect("embedded");
    assert_eq!(out.vectors.len(), 16);
    assert!(out.vectors.iter().all(|v| v.len() == FAKE_DIMS));
    let after = engine.load();
    assert!(after.tokens_per_second().is_some_and(|r| r > 0.0));
    assert_eq!(after.running_tokens(), 0);
    engine.shutdown();
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_and_drains_after() {
    let batching = BatchingConfig {
        max_batch_tokens: 128,
        max_queue_tokens: 200,
        ..one_replica()
    };
    let (engine, script) = engine(batching, no_deadline());
    script.hold();
    // The first batch runs (held), the next requests queue until the queue is full.
    let first = spawn_embed(&engine, "first", 1);
    running(&script, 1).await;
    let mut queued = Vec::new();
    let refused = loop {
        let fut = spawn_embed(&engine, &format!("q{}", queued.len()), 2);
        // Let it reach the queue (or be refused) before the next one.
        tokio::task::yield_now().await;
        if fut.is_finished() {
            break fut.await.expect("task");
        }
        until_queued(&engine).await;
        queued.push(fut);
        assert!(queued.len() < 100, "the queue never filled");
    };
    match refused {
        Err(EngineError::Overloaded { queued, capacity }) => {
            assert_eq!(capacity, 200);
            assert!(queued > 0 && queued <= 200, "{queued}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(engine.queued_tokens() <= 200, "bounded in tokens");
    script.release();
    first.await.expect("task").expect("first served");
    for q in queued {
        assert_eq!(
            q.await.expect("task").expect("queued served").vectors.len(),
            2
        );
    }
    assert_eq!(engine.queued_tokens(), 0);
}

#[tokio::test(start_paused = true)]
async fn deadlines_drop_queued_work() {
    let (engine, script) = engine(one_replica(), no_deadline());
    let pipeline = Pipeline::new(engine.clone(), None);
    script.hold();
    let blocker = spawn_embed(&engine, "blocker", 1);
    running(&script, 1).await;
    // Queued behind the held batch; on the paused clock the deadline passes as
    // soon as nothing else can run.
    let permit = engine
        .admission()
        .enter(Some(Duration::from_millis(50)))
        .expect("permit");
    let e = pipeline
        .embed_permitted(&texts("late", 3), EmbedOptions::default(), &permit)
        .await
        .expect_err("past its deadline");
    assert!(matches!(e, EngineError::DeadlineExceeded { ms: 50 }), "{e}");
    // Its flight is aborted when the last request holding it goes away.
    for _ in 0..1000 {
        if engine.queued_tokens() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(engine.queued_tokens(), 0, "its inputs left the queue");
    drop(permit);
    script.release();
    blocker
        .await
        .expect("task")
        .expect("the running batch finishes");
    assert_eq!(engine.admission().in_flight(), 0);
}

#[tokio::test]
async fn a_failed_batch_fails_its_requests_and_the_replica_keeps_serving() {
    let (engine, script) = engine(one_replica(), no_deadline());
    script.fail_next(1);
    let e = engine
        .embed(&texts("doomed", 2), EmbedOptions::default())
        .await
        .expect_err("scripted failure");
    assert!(e.to_string().contains("scripted failure"), "{e}");
    let out = engine
        .embed(&texts("fine", 2), EmbedOptions::default())
        .await
        .expect("the replica survived");
    assert_eq!(out.vectors.len(), 2);
}

#[tokio::test]
async fn dropped_requests_leave_the_queue_and_batches_fill_from_it() {
    let batching = BatchingConfig {
        max_batch_requests: 4,
        ..one_replica()
    };
    let (engine, script) = engine(batching, no_deadline());
    let before = script.batch_sizes().len();
    script.hold();
    let blocker = spawn_embed(&engine, "blocker", 1);
    running(&script, 1).await;
    // A request that gives up while queued takes its inputs with it.
    let gone = spawn_embed(&engine, "gone", 3);
    until_queued(&engine).await;
    gone.abort();
    let _ = gone.await;
    assert_eq!(engine.queued_tokens(), 0);
    // Six inputs queued while the replica is busy run in batches of at most four.
    let waiting = spawn_embed(&engine, "six", 6);
    until_queued(&engine).await;
    script.release();
    blocker.await.expect("task").expect("blocker");
    assert_eq!(waiting.await.expect("task").expect("six").vectors.len(), 6);
    assert_eq!(script.batch_sizes()[before..], [1, 4, 2]);
    // Only a batch that leaves the queue empty is announced as the last before
    // idle (the backend may give its buffers back after it).
    assert_eq!(script.idle_hints()[before..], [true, false, true]);
}

#[tokio::test]
async fn the_in_flight_cap_refuses_the_request_over_it() {
    let admission = AdmissionConfig {
        max_in_flight: 2,
        deadline: None,
        max_queue: None,
    };
    let (engine, _script) = engine(one_replica(), admission);
    let a = engine.admission().enter(None).expect("first");
    let _b = engine.admission().enter(None).expect("second");
    let e = engine.admission().enter(None).expect_err("third");
    assert!(matches!(e, EngineError::Busy { max_in_flight: 2 }), "{e}");
    drop(a);
    engine.admission().enter(None).expect("a slot came back");
}

#[tokio::test]
async fn admission_is_charged_only_for_misses() {
    use osprey_engine::cache::{CacheConfig, MemoryConfig, TieredCache};
    let batching = BatchingConfig {
        max_queue_tokens: 64,
        ..one_replica()
    };
    let (engine, script) = engine(batching, no_deadline());
    let cache = Arc::new(
        TieredCache::open(&CacheConfig {
            memory: MemoryConfig::default(),
            ..CacheConfig::disabled()
        })
        .await
        .expect("memory cache"),
    );
    let p = Arc::new(Pipeline::new(engine.clone(), Some(cache)));
    let known = vec!["admitted once".to_string()];
    p.embed(&known, EmbedOptions::default())
        .await
        .expect("warm");

    // A held batch and a queued request fill the queue.
    script.hold();
    let blocker = spawn_embed(&engine, "blocker", 1);
    running(&script, 1).await;
    let queued = spawn_embed(&engine, "queued", 2);
    until_queued(&engine).await;
    // Every text cached: admission is not consulted, so the full queue cannot refuse it.
    let out = p
        .embed(&known, EmbedOptions::default())
        .await
        .expect("served from the cache");
    assert_eq!(out.computed, 0);
    // With a miss, admission is charged for the missing text and refuses it.
    let long = format!("a new text {}", "that does not fit ".repeat(20));
    let refused = p
        .embed(
            &["admitted once".to_string(), long],
            EmbedOptions::default(),
        )
        .await;
    assert!(
        matches!(refused, Err(EngineError::Overloaded { .. })),
        "{refused:?}"
    );
    script.release();
    blocker.await.expect("task").expect("blocker");
    queued.await.expect("task").expect("queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_added_removed_and_relaid_while_requests_run() {
    let (engine, _script) = engine(one_replica(), no_deadline());
    assert_eq!(engine.layout(), [1]);
    let load: Vec<Embedding> = (0..16)
        .map(|i| spawn_embed(&engine, &format!("load {i}"), 8))
        .collect();
    let e = engine.clone();
    let layouts = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        e.add_replica().expect("a second replica");
        seen.push(e.layout());
        e.relayout(1, 2).expect("one replica of two threads");
        seen.push(e.layout());
        e.relayout(2, 1).expect("two one-thread replicas");
        seen.push(e.layout());
        assert_eq!(e.remove_replica(), 1);
        // Never the last one.
        assert_eq!(e.remove_replica(), 1);
        seen.push(e.layout());
        seen
    })
    .await
    .expect("the changes");
    assert_eq!(layouts, [vec![1, 1], vec![2], vec![1, 1], vec![1]]);
    for l in load {
        let out = l.await.expect("task").expect("answered across the changes");
        assert_eq!(out.vectors.len(), 8);
    }
    assert!(engine.max_replicas() >= 2);
}
