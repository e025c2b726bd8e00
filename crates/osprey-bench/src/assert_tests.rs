use std::collections::BTreeMap;

use super::*;
use crate::report::Percentiles;

pub(crate) fn run_with(p99: f64, errors: u64, requests: u64) -> RunReport {
    RunReport {
        name: "r".into(),
        url: "http://x/embed".into(),
        api: "tei".into(),
        mode: "closed".into(),
        concurrency: Some(1),
        rate: None,
        arrival: None,
        connections: 1,
        workload: "unique".into(),
        duration_s: 1.0,
        requests,
        successes: requests - errors,
        items: requests - errors,
        requests_per_s: requests as f64,
        items_per_s: (requests - errors) as f64,
        sent_per_s: None,
        error_count: errors,
        error_rate: errors as f64 / requests as f64,
        errors: BTreeMap::new(),
        bytes_sent: 0,
        bytes_received: 0,
        latency_ms: Percentiles {
            p50: p99 / 2.0,
            p99,
            max: p99 * 2.0,
            ..Default::default()
        },
        service_ms: None,
        histogram: vec![],
        interval_s: 1.0,
        timeline: vec![],
        server: None,
        assertions: vec![],
        objective: vec![],
    }
}

fn passes(expr: &str, run: &RunReport) -> bool {
    Assertion::parse(expr).expect("parses").check(run).passed
}

#[test]
fn latency_assertions_use_units() {
    let run = run_with(40.0, 0, 1000);
    assert!(passes("p99<50ms", &run));
    assert!(passes("p99 < 0.05s", &run));
    assert!(!passes("p99<40ms", &run));
    assert!(passes("p99<=40", &run));
    assert!(!passes("p99<30000us", &run));
    assert!(passes("p50<21ms", &run));
    assert!(!passes("max<79ms", &run));
    assert!(passes("p99>1ms", &run));
}

#[test]
fn error_assertions_take_rates_or_counts() {
    let run = run_with(1.0, 1, 1000);
    assert!(passes("errors<0.2%", &run));
    assert!(!passes("errors<0.1%", &run));
    assert!(passes("errors<=0.1%", &run));
    assert!(!passes("errors=0", &run));
    assert!(passes("errors<2", &run));
    assert!(passes("error_rate<0.002", &run));
    assert!(passes("errors=0", &run_with(1.0, 0, 10)));
}

#[test]
fn throughput_assertions() {
    let run = run_with(1.0, 0, 500);
    assert!(passes("rps>=500", &run));
    assert!(!passes("rps>500", &run));
    assert!(passes("items_per_s>100/s", &run));
}

#[test]
fn latency_fails_when_nothing_succeeded() {
    let run = run_with(0.0, 10, 10);
    assert!(!passes("p99<50ms", &run));
}

#[test]
fn bad_assertions_are_refused_with_help() {
    for bad in [
        "p99",
        "p98<5ms",
        "p99<fast",
        "p99<5parsecs",
        "errors<-1",
        "p99=5ms",
        "<5",
    ] {
        let e = Assertion::parse(bad).expect_err(bad).to_string();
        assert!(e.contains("--assert"), "{e}");
    }
}
