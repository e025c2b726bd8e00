//! The generator against a real HTTP server with known delays: what it
//! measures must match what the server did.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use osprey_bench::measure;
use support::{Behaviour, quiet, start};

#[test]
fn percentiles_match_the_servers_known_delays() {
    // 9 requests in 10 take 5 ms, every 10th takes 60 ms.
    let server = start(Behaviour {
        slow_every: Some((10, Duration::from_millis(60))),
        ..Behaviour::tei(Duration::from_millis(5))
    });
    let report = measure(&quiet(&server.url(), &["-c", "4", "-d", "1500ms"])).expect("runs");
    let r = &report.runs[0];
    let l = r.latency_ms;

    // Every request the server answered is counted, and nothing else.
    assert_eq!(r.requests, server.requests());
    assert_eq!(r.error_count, 0, "{:?}", r.errors);
    assert!(r.requests > 50, "only {} requests", r.requests);

    // A request can be slower than the server's sleep, never faster.
    assert!(l.min >= 5.0, "{l:?}");
    // Nine in ten requests are fast, so the median is below the slow delay; the
    // upper bounds only leave room for a busy machine.
    assert!((5.0..60.0).contains(&l.p50), "p50 {l:?}");
    assert!((60.0..1000.0).contains(&l.p95), "p95 {l:?}");
    assert!((60.0..1000.0).contains(&l.p99), "p99 {l:?}");
    assert!(l.max >= 60.0);

    // One request in ten is slow, so the histogram puts a tenth at 60 ms or more.
    let slow: u64 = r
        .histogram
        .iter()
        .filter(|b| b.le_ms > 59.0)
        .map(|b| b.count)
        .sum();
    let share = slow as f64 / r.successes as f64;
    assert!((0.08..0.25).contains(&share), "slow share {share}");
    assert_eq!(
        r.histogram.iter().map(|b| b.count).sum::<u64>(),
        r.successes
    );

    // Closed loop of 4 with about 10.5 ms per request on average: Little's law
    // bounds the rate from above.
    assert!(r.requests_per_s < 4.0 / 0.005, "{}", r.requests_per_s);
    assert!(!r.timeline.is_empty());
    assert_eq!(
        r.timeline.iter().map(|p| p.requests).sum::<u64>(),
        r.requests
    );
}

#[test]
fn open_loop_records_the_stall_that_closed_loop_hides() {
    let stall = Duration::from_millis(600);
    let behaviour = Behaviour {
        stall: Some((60, stall)),
        ..Behaviour::tei(Duration::from_millis(2))
    };

    // Open loop: 200 requests/s are due whatever the server does; the 120 or so
    // due during the stall wait, and that wait is their latency.
    let server = start(behaviour.clone());
    let report = measure(&quiet(
        &server.url(),
        &["--rate", "200", "--connections", "8", "-d", "1500ms"],
    ))
    .expect("runs");
    let open = &report.runs[0];
    assert_eq!(open.mode, "open");
    assert_eq!(open.error_count, 0, "{:?}", open.errors);
    assert!(
        open.latency_ms.p90 >= 250.0,
        "open loop p90 {:?}",
        open.latency_ms
    );
    assert!(open.latency_ms.max >= 500.0, "{:?}", open.latency_ms);
    // Measured from the actual send, as a closed-loop tool would, most requests
    // look fast: only the 8 caught in flight saw the stall.
    let service = open.service_ms.expect("open loop reports service time");
    assert!(service.p90 < 100.0, "service {service:?}");
    // The schedule held: about 300 requests were due and sent.
    assert!((240..=320).contains(&open.requests), "{}", open.requests);

    // Closed loop against the same stall: 8 requests see it, thousands do not.
    let server = start(behaviour);
    let report = measure(&quiet(&server.url(), &["-c", "8", "-d", "1500ms"])).expect("runs");
    let closed = &report.runs[0];
    assert!(closed.requests > 200, "{}", closed.requests);
    assert!(closed.latency_ms.max >= 500.0, "{:?}", closed.latency_ms);
    assert!(
        closed.latency_ms.p90 < 100.0,
        "closed loop p90 {:?}",
        closed.latency_ms
    );
}

#[test]
fn poisson_arrivals_keep_the_rate() {
    let server = start(Behaviour::tei(Duration::ZERO));
    let report = measure(&quiet(
        &server.url(),
        &["--rate", "300", "--arrival", "poisson", "-d", "1s"],
    ))
    .expect("runs");
    let r = &report.runs[0];
    assert_eq!(r.arrival.as_deref(), Some("poisson"));
    // 300 expected; Poisson's standard deviation is about 17.
    assert!((220..=380).contains(&r.requests), "{}", r.requests);
}

#[test]
fn sweep_finds_the_highest_concurrency_meeting_the_objective() {
    // Two requests at a time, 20 ms each: one or two clients see 20 ms, four
    // wait a turn and see 40 ms or more.
    let server = start(Behaviour {
        capacity: Some(2),
        ..Behaviour::tei(Duration::from_millis(20))
    });
    let report = measure(&quiet(
        &server.url(),
        &[
            "--sweep",
            "concurrency=1..16",
            "--objective",
            "p50<36ms",
            "-d",
            "600ms",
        ],
    ))
    .expect("runs");
    let sweep = &report.sweeps[0];
    assert_eq!(sweep.axis, "concurrency");
    assert_eq!(sweep.best, Some(2.0), "{sweep:?}");
    // It stops at the first level that misses.
    let levels: Vec<f64> = sweep.steps.iter().map(|s| s.load).collect();
    assert_eq!(levels, vec![1.0, 2.0, 4.0]);
    assert_eq!(report.runs.len(), 3);
    assert_eq!(report.assertions_failed(), 0);
}

#[test]
fn workloads_reach_the_server_as_specified() {
    let server = start(Behaviour::tei(Duration::ZERO));
    let report = measure(&quiet(
        &server.url(),
        &["-w", "batch:8", "-n", "50", "-c", "2"],
    ))
    .expect("runs");
    let r = &report.runs[0];
    assert_eq!((r.requests, r.items), (50, 400));
    let texts = server.texts();
    assert_eq!(texts.len(), 400);
    assert_eq!(
        texts.iter().collect::<HashSet<_>>().len(),
        400,
        "unique texts repeated"
    );

    let server = start(Behaviour::tei(Duration::ZERO));
    measure(&quiet(
        &server.url(),
        &["-w", "zipf:50:1.2", "-n", "300", "-c", "2"],
    ))
    .expect("runs");
    let texts = server.texts();
    assert_eq!(texts.len(), 300);
    let distinct = texts.iter().collect::<HashSet<_>>().len();
    assert!(
        (5..=50).contains(&distinct),
        "zipf sent {distinct} distinct texts"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("texts.jsonl");
    std::fs::write(&file, "{\"text\":\"first\"}\n{\"text\":\"second\"}\n").expect("write");
    let server = start(Behaviour::tei(Duration::ZERO));
    let spec = format!("file:{}", file.display());
    measure(&quiet(&server.url(), &["-w", &spec, "-n", "4", "-c", "1"])).expect("runs");
    assert_eq!(server.texts(), vec!["first", "second", "first", "second"]);
}

#[test]
fn timeouts_and_server_errors_are_counted_by_kind() {
    let server = start(Behaviour::tei(Duration::from_millis(400)));
    let report = measure(&quiet(
        &server.url(),
        &["--timeout", "100ms", "-n", "3", "-c", "1"],
    ))
    .expect("runs");
    let r = &report.runs[0];
    assert_eq!(r.errors.get("timeout"), Some(&3), "{:?}", r.errors);
    assert_eq!(r.successes, 0);

    let server = start(Behaviour {
        fail_every: Some(10),
        ..Behaviour::tei(Duration::ZERO)
    });
    let report = measure(&quiet(&server.url(), &["-n", "200", "-c", "4"])).expect("runs");
    let r = &report.runs[0];
    assert_eq!(r.errors.get("http 429"), Some(&20), "{:?}", r.errors);
    assert_eq!(r.successes, 180);
    assert!((r.error_rate - 0.1).abs() < 1e-9);
}

#[test]
fn the_api_is_detected_and_credentials_are_sent() {
    let server = start(Behaviour {
        tei: false,
        openai: true,
        api_key: Some("sekret".into()),
        ..Default::default()
    });
    // Without the key the probe explains what is wrong.
    let err = measure(&quiet(&server.url(), &["-n", "1"]))
        .expect_err("needs a key")
        .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("--api-key"), "{err}");

    let report = measure(&quiet(
        &server.url(),
        &["-n", "5", "--api-key", "sekret", "--model", "m"],
    ))
    .expect("runs");
    let r = &report.runs[0];
    assert_eq!(r.api, "openai");
    assert!(r.url.ends_with("/v1/embeddings"), "{}", r.url);
    assert_eq!(r.error_count, 0);
    assert_eq!(
        server
            .seen
            .bodies_openai
            .load(std::sync::atomic::Ordering::SeqCst),
        5
    );

    // A header given by hand works as well.
    let report = measure(&quiet(
        &server.url(),
        &[
            "-n",
            "2",
            "--api",
            "openai",
            "-H",
            "Authorization: Bearer sekret",
        ],
    ))
    .expect("runs");
    assert_eq!(report.runs[0].successes, 2);

    let tei = start(Behaviour::tei(Duration::ZERO));
    let report = measure(&quiet(&tei.url(), &["-n", "2"])).expect("runs");
    assert_eq!(report.runs[0].api, "tei");
}

#[test]
fn unreachable_servers_and_bad_flags_are_errors_not_panics() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let err = measure(&quiet(&url, &["-n", "1"]))
        .expect_err("nothing listens")
        .to_string();
    assert!(err.contains("connect"), "{err}");

    for flags in [
        vec!["-w", "batch:zero"],
        vec!["-d", "forever"],
        vec!["--assert", "p99 under 5ms"],
        vec!["--sweep", "concurrency=1,2"],
        vec!["-w", "file:/nonexistent/texts.txt", "-n", "1"],
    ] {
        assert!(
            measure(&quiet(&url, &flags)).is_err(),
            "{flags:?} should fail"
        );
    }
    assert!(measure(&support::args(&["--url", "https://127.0.0.1:1"])).is_err());
    assert!(measure(&support::args(&["-c", "2"])).is_err(), "no url");
}
