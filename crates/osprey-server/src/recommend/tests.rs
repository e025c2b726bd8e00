use super::*;

fn quiet() -> Evidence {
    Evidence {
        requests: 1000,
        mean_latency_ms: 10.0,
        mean_queue_ms: 1.0,
        cpu_percent: 40.0,
        cores: 2,
        memory: Some(MemoryEvidence {
            hit_rate: 0.9,
            lookups: 1000,
            evictions: 0,
            bytes: 10,
            capacity: 100,
        }),
        replicas: 1,
        threads_per_replica: 2,
        shared_pool: false,
        padding: Some((1100, 1000, 1.25)),
        refused: vec![(RejectReason::QueueTooLong, 0)],
        error_rate: 0.0,
        max_queue_ms: 1500,
        max_queue_tokens: 32_768,
        max_in_flight: 1024,
        requests_per_second_limit: 0,
        latency_burn: Some((0.5, 50.0)),
        profile: "balanced".into(),
    }
}

fn settings(e: &Evidence) -> Vec<&'static str> {
    recommend(e).iter().map(|r| r.setting).collect()
}

#[test]
fn a_healthy_server_gets_none() {
    assert!(recommend(&quiet()).is_empty());
    assert!(recommend(&Evidence::default()).is_empty());
}

#[test]
fn a_full_evicting_missing_tier_asks_for_more_memory() {
    let mut e = quiet();
    e.memory = Some(MemoryEvidence {
        hit_rate: 0.1,
        lookups: 500,
        evictions: 40,
        bytes: 95,
        capacity: 100,
    });
    let r = recommend(&e);
    assert_eq!(settings(&e), ["cache.memory.max_bytes"]);
    assert_eq!(r[0].suggested, json!(200));
    // Not full: misses are one-off texts, not a small tier.
    e.memory = Some(MemoryEvidence {
        bytes: 20,
        ..e.memory.unwrap_or_default()
    });
    assert!(recommend(&e).is_empty());
}

#[test]
fn queueing_with_idle_cores_asks_for_a_replica_within_the_cores() {
    let mut e = quiet();
    e.mean_queue_ms = 8.0;
    assert!(
        recommend(&e).is_empty(),
        "one two-thread replica: no core left"
    );
    e.threads_per_replica = 1;
    assert_eq!(
        settings(&e),
        ["batching.replicas"],
        "a core no replica uses"
    );
    e.cpu_percent = 95.0;
    assert_eq!(
        settings(&e),
        ["batching.replicas"],
        "the core is still unassigned"
    );
    e.replicas = 2;
    assert!(
        recommend(&e).is_empty(),
        "two one-thread replicas fill two cores"
    );
    e.shared_pool = true;
    assert!(recommend(&e).is_empty(), "a busy shared pool has no room");
    e.cpu_percent = 40.0;
    assert_eq!(settings(&e), ["batching.replicas"], "an idle shared pool");
}

#[test]
fn padding_waste_asks_for_a_tighter_bound() {
    let mut e = quiet();
    e.padding = Some((2000, 1000, 4.0));
    let r = recommend(&e);
    assert_eq!(settings(&e), ["batching.max_padding_ratio"]);
    assert_eq!(r[0].suggested, json!(1.25));
    e.padding = Some((2000, 1000, 1.1));
    assert!(recommend(&e).is_empty(), "already at the tightest bound");
}

#[test]
fn refusals_ask_for_the_budget_behind_them() {
    let mut e = quiet();
    e.error_rate = 0.2;
    for (reason, setting) in [
        (RejectReason::QueueTooLong, "limits.max_queue_ms"),
        (RejectReason::QueueFull, "batching.max_queue_tokens"),
        (RejectReason::InFlight, "limits.max_in_flight"),
        (RejectReason::RateLimit, "limits.requests_per_second"),
    ] {
        e.refused = vec![(reason, 50), (RejectReason::Deadline, 500)];
        assert_eq!(settings(&e), [setting], "{reason:?}");
    }
    e.error_rate = 0.0;
    assert!(recommend(&e).is_empty(), "old refusals with none lately");
}

#[test]
fn a_burning_latency_objective_with_headroom_asks_for_the_latency_profile() {
    let mut e = quiet();
    e.latency_burn = Some((5.0, 50.0));
    assert_eq!(settings(&e), ["model.profile"]);
    e.profile = "latency".into();
    assert!(recommend(&e).is_empty());
    e.profile = "balanced".into();
    e.cpu_percent = 90.0;
    assert!(recommend(&e).is_empty(), "no headroom");
    e.threads_per_replica = 1;
    assert_eq!(settings(&e), ["model.profile"], "a core no replica uses");
}
