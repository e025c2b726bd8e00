//! Admission decisions on loads made up for each case, on tokio's paused clock.

use std::time::Duration;

use super::*;
use crate::ReplicaLoad;

/// Two replicas at 1,000 tokens a second, each busy for `busy_ms` with 300 tokens.
fn load(busy_ms: u64, queued: usize) -> Load {
    let replica = ReplicaLoad {
        tokens_per_second: 1000.0,
        busy_for: Duration::from_millis(busy_ms),
        running_tokens: if busy_ms > 0 { 300 } else { 0 },
        // Batch times stray by 5%: predictions are stretched by 10%.
        spread: 0.05,
    };
    Load {
        replicas: vec![replica; 2],
        queued_tokens: queued,
        max_queue_tokens: 10_000,
        max_batch_tokens: 4096,
        max_batch_requests: 32,
    }
}

fn admission(max_in_flight: usize) -> Admission {
    Admission::new(AdmissionConfig {
        max_in_flight,
        deadline: None,
        max_queue: None,
    })
}

fn retry_after(e: &EngineError) -> u64 {
    match e {
        EngineError::DeadlineUnreachable {
            retry_after_secs, ..
        } => *retry_after_secs,
        other => panic!("not a deadline refusal: {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn unreachable_deadlines_are_refused_from_the_replicas_load() {
    let a = admission(0);
    let check = |load: Load, ms: u64| {
        let permit = a
            .enter(Some(Duration::from_millis(ms)))
            .expect("no in-flight cap");
        a.charge(&permit, &load, 512, &["a short input"]).map(drop)
    };
    // Alone on an idle replica, 5 tokens take 5 ms.
    check(load(0, 0), 400).expect("alone");
    // Both replicas busy for 300 ms more, then a batch of up to 32 such inputs (what
    // arrives meanwhile joins it): about half a second. Fits 1 s, not 400 ms.
    check(load(300, 0), 1000).expect("fits");
    let e = check(load(300, 0), 400).expect_err("does not fit");
    assert!(e.to_string().contains("deadline of 400 ms"), "{e}");
    assert_eq!(retry_after(&e), 1);
    // Batches that stray more from their rate stretch predictions more: by half
    // their time, the same wait no longer fits 800 ms.
    check(load(300, 0), 800).expect("steady batches");
    let mut noisy = load(300, 0);
    for r in &mut noisy.replicas {
        r.spread = 0.5;
    }
    check(noisy, 800).expect_err("noisy batches");
    // Queued work waits its turn: 9,000 tokens take seconds, and the advice to
    // retry says so.
    let e = check(load(0, 9000), 400).expect_err("long queue");
    assert!(retry_after(&e) >= 4, "{e}");

    // Admitted requests count as outstanding until their ticket drops, also before
    // their inputs reach the queue: behind 900 such tokens, 400 ms is too short.
    let holder = a.enter(None).expect("permit");
    let held = a
        .charge(
            &holder,
            &load(0, 0),
            512,
            &["x".repeat(1792), "x".repeat(1792)],
        )
        .expect("no deadline");
    assert_eq!(a.outstanding.load(Ordering::Acquire), 900);
    check(load(0, 0), 400).expect_err("behind outstanding work");
    // What the replicas run is outstanding too, but counted once: by them.
    let running = Load {
        replicas: vec![
            ReplicaLoad {
                tokens_per_second: 1000.0,
                busy_for: Duration::from_millis(10),
                running_tokens: 450,
                spread: 0.05,
            };
            2
        ],
        ..load(0, 0)
    };
    check(running, 400).expect("the outstanding work is running");
    drop(held);
    assert_eq!(a.outstanding.load(Ordering::Acquire), 0);
    check(load(0, 0), 400).expect("alone again");

    // An idle engine takes a request even when its rate says it is too slow: only
    // running batches can correct the rate.
    let mut slow = load(0, 0);
    for r in &mut slow.replicas {
        r.tokens_per_second = 1.0;
    }
    check(slow.clone(), 400).expect("idle engine");
    slow.queued_tokens = 1;
    check(slow, 400).expect_err("not idle");
    // Rates not known yet (no batch timed): admitted.
    let mut unknown = load(0, 9000);
    unknown.replicas[1].tokens_per_second = 0.0;
    check(unknown, 400).expect("rates unknown");
    // Without a deadline only the capacity counts.
    a.charge(&holder, &load(0, 9000), 512, &["a short input"])
        .expect("no deadline");
    // Over the queue's capacity: refused before any tokenizing. An empty queue
    // takes any request (the queue then holds its real size).
    let big = vec!["x".repeat(4000); 8];
    let mut small = load(0, 100);
    small.max_queue_tokens = 4096;
    let e = a
        .charge(&holder, &small, 512, &big)
        .expect_err("over capacity");
    assert!(
        matches!(
            e,
            EngineError::Overloaded {
                queued: 100,
                capacity: 4096
            }
        ),
        "{e}"
    );
    small.queued_tokens = 0;
    a.charge(&holder, &small, 512, &big).expect("empty queue");
}

#[tokio::test(start_paused = true)]
async fn absurd_spreads_and_rates_saturate_instead_of_panicking() {
    let a = admission(0);
    let permit = a.enter(Some(Duration::from_millis(400))).expect("permit");
    for spread in [f64::INFINITY, f64::NAN, 1e300] {
        let mut l = load(300, 0);
        for r in &mut l.replicas {
            r.spread = spread;
        }
        let e = a
            .charge(&permit, &l, 512, &["text"])
            .expect_err("stretched past the deadline");
        assert!(matches!(e, EngineError::DeadlineUnreachable { .. }), "{e}");
    }
    let mut crawling = load(300, 5000);
    for r in &mut crawling.replicas {
        r.tokens_per_second = 1e-300;
    }
    let e = a
        .charge(&permit, &crawling, 512, &["text"])
        .expect_err("never finishes");
    assert_eq!(retry_after(&e), 60, "capped advice");
}

#[tokio::test(start_paused = true)]
async fn in_flight_cap_and_deadlines() {
    let a = admission(1);
    let first = a.enter(None).expect("first permit");
    let e = a.enter(None).expect_err("cap reached");
    assert!(matches!(e, EngineError::Busy { max_in_flight: 1 }), "{e}");
    assert_eq!(a.in_flight(), 1, "the refused request gave its slot back");
    drop(first);
    assert_eq!(a.in_flight(), 0);

    // The configured deadline bounds what a client asks for.
    let a = Admission::new(AdmissionConfig {
        max_in_flight: 0,
        deadline: Some(Duration::from_secs(2)),
        max_queue: None,
    });
    let budget = |asked| a.enter(asked).expect("permit").deadline().map(|d| d.budget);
    assert_eq!(budget(None), Some(Duration::from_secs(2)));
    assert_eq!(
        budget(Some(Duration::from_secs(1))),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        budget(Some(Duration::from_secs(9))),
        Some(Duration::from_secs(2))
    );

    // Work past its deadline is dropped and answered with DeadlineExceeded.
    let p = a.enter(Some(Duration::from_millis(50))).expect("permit");
    let slow = p.within(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    });
    let e = slow.await.expect_err("past the deadline");
    assert!(matches!(e, EngineError::DeadlineExceeded { ms: 50 }), "{e}");
    let quick = p.within(async { Ok(7) }).await.expect("in time");
    assert_eq!(quick, 7);
}

#[test]
fn bodies_are_judged_by_their_declared_size() {
    let a = admission(0);
    a.check_body(0, 1000, 1 << 20)
        .expect("an empty queue takes anything");
    a.check_body(900, 1000, 400).expect("100 tokens fit");
    let e = a
        .check_body(900, 1000, 4000)
        .expect_err("1,000 tokens do not");
    assert!(matches!(e, EngineError::Overloaded { .. }), "{e}");
}

#[tokio::test(start_paused = true)]
async fn requests_are_not_admitted_into_more_queueing_than_max_queue() {
    let a = Admission::new(AdmissionConfig {
        max_in_flight: 0,
        deadline: Some(Duration::from_secs(30)),
        max_queue: Some(Duration::from_secs(1)),
    });
    let permit = a.enter(None).expect("permit");
    // 32 inputs of about 10 tokens each: ~170 ms of work for the two replicas.
    let batch: Vec<String> = (0..32)
        .map(|i| format!("input {i} of a batch of 32 ....."))
        .collect();
    // Behind 300 ms of running work it queues about half a second (batches
    // stretched for their spread, fixed costs): admitted.
    a.charge(&permit, &load(300, 0), 512, &batch)
        .expect("a short queue");
    // Behind 3,000 queued tokens (1.5 s on two replicas at 1,000 tokens/s) it
    // would queue well past a second, though the 30 s deadline allows it.
    let e = a
        .charge(&permit, &load(300, 3000), 512, &batch)
        .expect_err("a long queue");
    match &e {
        EngineError::QueueTooLong {
            wait_ms,
            max_queue_ms,
            retry_after_secs,
        } => {
            assert_eq!(*max_queue_ms, 1000);
            assert!((1500..4000).contains(wait_ms), "{e}");
            assert!((1..=4).contains(retry_after_secs), "{e}");
        }
        other => panic!("not a queue refusal: {other}"),
    }
    // The request's own work does not count as queueing: 4,000 tokens alone on an
    // idle engine are admitted, and behind a little running work too.
    let big: Vec<String> = (0..32)
        .map(|i| format!("{i} {}", "word ".repeat(120)))
        .collect();
    a.charge(&permit, &load(0, 0), 512, &big).expect("alone");
    a.charge(&permit, &load(100, 0), 512, &big)
        .expect("its own work is not queueing");
    // Without max_queue only the deadline bounds it.
    let deadline_only = Admission::new(AdmissionConfig {
        max_queue: None,
        ..AdmissionConfig::default()
    });
    let permit = deadline_only.enter(None).expect("permit");
    deadline_only
        .charge(&permit, &load(300, 3000), 512, &batch)
        .expect("within the 30 s deadline");
}

#[tokio::test(start_paused = true)]
async fn bodies_are_refused_unread_when_the_queue_ahead_is_too_long() {
    let a = Admission::new(AdmissionConfig {
        max_in_flight: 0,
        deadline: None,
        max_queue: Some(Duration::from_secs(1)),
    });
    // An idle engine, and a short queue, take anything.
    a.check_waiting(&load(0, 0)).expect("idle");
    a.check_waiting(&load(300, 200)).expect("a short queue");
    // 3,000 tokens queued drain in 1.5 s on two replicas at 1,000 tokens/s.
    let e = a.check_waiting(&load(300, 3000)).expect_err("a long queue");
    assert!(matches!(e, EngineError::QueueTooLong { .. }), "{e}");
    let unbounded = admission(0);
    unbounded
        .check_waiting(&load(300, 3000))
        .expect("no max_queue");
}
