//! What the newer protections cost a request that passes them, each alone and
//! without the HTTP stack around it: the failed-authentication limiter's check
//! before a key is hashed, the query-string check, the request-id check, the
//! client address behind trusted proxies, the shape scan that counts a body's
//! list items before serde parses it, and admission's `max_queue_ms` prediction.
//! Set against the CPU time a cache-hit request takes end to end (BENCHMARKS.md).
//!
//! `cargo bench --workspace --all-features --bench hardening_checks`

#![allow(clippy::expect_used)] // a benchmark: a failed setup ends it

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use axum::routing::post;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use osprey_engine::{Admission, AdmissionConfig, Load, ReplicaLoad};
use osprey_server::LimitsConfig;
use osprey_server::checks::{TrustedProxies, check_query, keep_if_usable, validate_query};
use osprey_server::rate_limit::{FailureLimiter, client_net};
use osprey_wire::{BodyLimits, EmbedRequest, InputLimits, ShapeScanner, check_inputs, parse_body};
use tower::ServiceExt;

const INPUTS: usize = 32;

/// A sentence of about 150 bytes, as in the soak's batches (32 of them, ~5 KB).
fn sentence(i: usize) -> String {
    format!(
        "Sentence {i}: the tide came in over the flats at dusk, and the ospreys \
         circled once above the estuary before settling on the old channel marker."
    )
}

fn failure_limiter(c: &mut Criterion) {
    let limits = LimitsConfig::default();
    let quiet = FailureLimiter::new(limits.auth_failures_per_second, limits.auth_failures_burst);
    // Other addresses failing lately: the good request's check takes its shard's
    // lock and looks its address up instead of reading one counter.
    let busy = FailureLimiter::new(limits.auth_failures_per_second, limits.auth_failures_burst);
    for i in 0..1000u32 {
        busy.record(&IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
    }
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    // Each case must time the path of a request that passes.
    assert!(quiet.admit(&ip).is_ok() && busy.admit(&ip).is_ok());

    let mut g = c.benchmark_group("auth_failures");
    g.bench_function("admit_none_tracked", |b| {
        b.iter(|| quiet.admit(black_box(&ip)).is_ok())
    });
    g.bench_function("admit_1000_others_tracked", |b| {
        b.iter(|| busy.admit(black_box(&ip)).is_ok())
    });
    g.finish();
}

async fn ok() -> &'static str {
    "ok"
}

fn query(c: &mut Criterion) {
    let mut g = c.benchmark_group("query");
    // A request with no `?` never reaches the parser: the middleware's own cost,
    // as the difference between a router with and without it.
    let bare = Router::new().route("/embed", post(ok));
    let checked = Router::new()
        .route("/embed", post(ok))
        .route_layer(axum::middleware::from_fn(check_query));
    let request = || {
        Request::post("/embed")
            .body(Body::empty())
            .expect("a request")
    };
    g.bench_function("router_without_check", |b| {
        b.iter(|| {
            futures::executor::block_on(bare.clone().oneshot(request()))
                .expect("an answer")
                .status()
        })
    });
    g.bench_function("router_with_check_no_query", |b| {
        b.iter(|| {
            futures::executor::block_on(checked.clone().oneshot(request()))
                .expect("an answer")
                .status()
        })
    });
    // What `/dashboard/data` is polled with, and two parameters (no route takes
    // two; this shows the cost per parameter).
    assert!(validate_query("seconds=30&since=1712345678", &["seconds", "since"]).is_ok());
    g.bench_function("validate_one_param", |b| {
        b.iter(|| validate_query(black_box("since=1712345678"), &["since"]).is_ok())
    });
    g.bench_function("validate_two_params", |b| {
        b.iter(|| {
            validate_query(
                black_box("seconds=30&since=1712345678"),
                &["seconds", "since"],
            )
            .is_ok()
        })
    });
    g.finish();
}

fn request_id(c: &mut Criterion) {
    let with_id = |id: &str| {
        Request::post("/embed")
            .header("x-request-id", HeaderValue::from_str(id).expect("a header"))
            .body(())
            .expect("a request")
    };
    let uuid = "3f2b8c1e-7d4a-4e9b-a1c2-5b6d7e8f9a0b";
    let longest = "r".repeat(128);
    let mut g = c.benchmark_group("request_id");
    // The request is made outside the timed part; moving it in and out is timed
    // too, so the same with no check is the baseline.
    g.bench_function("baseline_no_check", |b| {
        b.iter_batched(|| with_id(uuid), black_box, BatchSize::SmallInput)
    });
    g.bench_function("none_sent", |b| {
        b.iter_batched(
            || Request::post("/embed").body(()).expect("a request"),
            keep_if_usable,
            BatchSize::SmallInput,
        )
    });
    g.bench_function("uuid_kept", |b| {
        b.iter_batched(|| with_id(uuid), keep_if_usable, BatchSize::SmallInput)
    });
    g.bench_function("128_bytes_kept", |b| {
        b.iter_batched(|| with_id(&longest), keep_if_usable, BatchSize::SmallInput)
    });
    g.finish();
}

fn client_address(c: &mut Criterion) {
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let direct = TrustedProxies::default();
    let proxies = TrustedProxies::new(
        LimitsConfig {
            trusted_proxies: vec!["10.0.0.0/8".into()],
            ..LimitsConfig::default()
        }
        .trusted_proxy_nets()
        .expect("a CIDR"),
    );
    // Two hops: the client, then an inner proxy; the peer is the outer proxy.
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("203.0.113.7, 10.0.0.5"),
    );
    let none = HeaderMap::new();
    assert_eq!(
        proxies.client(peer, &headers),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))
    );
    let mut g = c.benchmark_group("client_addr");
    g.bench_function("no_trusted_proxies", |b| {
        b.iter(|| client_net(direct.client(black_box(peer), black_box(&none))))
    });
    g.bench_function("xff_two_hops", |b| {
        b.iter(|| client_net(proxies.client(black_box(peer), black_box(&headers))))
    });
    g.finish();
}

fn body(c: &mut Criterion) {
    // One text, as the cache-hit requests the CPU figure was measured on, and 32.
    for n in [1, INPUTS] {
        body_of(c, n);
    }
}

fn body_of(c: &mut Criterion, n: usize) {
    let texts: Vec<String> = (0..n).map(sentence).collect();
    let bytes = serde_json::to_vec(&serde_json::json!({ "inputs": texts })).expect("a JSON body");
    // As the server reads `/embed`: `server.max_inputs` 256, three items each.
    let limits = BodyLimits {
        max_decoded: 16 << 20,
        max_items: Some(256 * 3 + 16),
    };
    let inputs = InputLimits {
        max_inputs: 256,
        max_input_chars: 32_768,
    };
    let mut g = c.benchmark_group(if n == 1 {
        "body_1_input".to_owned()
    } else {
        format!("body_{n}_inputs")
    });
    g.bench_function("shape_scan", |b| {
        b.iter(|| {
            let mut s = ShapeScanner::default();
            s.feed(black_box(&bytes));
            (s.items(), s.max_depth())
        })
    });
    g.bench_function("serde_only", |b| {
        b.iter(|| serde_json::from_slice::<EmbedRequest>(black_box(&bytes)).expect("parsed"))
    });
    g.bench_function("parse_body", |b| {
        b.iter(|| parse_body::<EmbedRequest>(None, black_box(&bytes), limits).expect("parsed"))
    });
    g.bench_function("check_inputs", |b| {
        b.iter(|| check_inputs(inputs, black_box(&texts)).is_ok())
    });
    g.finish();
    eprintln!("a body of {n} inputs: {} bytes", bytes.len());
}

/// Two replicas at a measured rate, one running a batch, work queued: a prediction
/// has something to predict, and the request still passes.
fn busy_load() -> Load {
    let replica = |busy_ms, running| ReplicaLoad {
        tokens_per_second: 6000.0,
        busy_for: Duration::from_millis(busy_ms),
        running_tokens: running,
        spread: 0.1,
    };
    Load {
        replicas: vec![replica(150, 1024), replica(0, 0)],
        queued_tokens: 2048,
        max_queue_tokens: 32_768,
        max_batch_tokens: 4096,
        max_batch_requests: 32,
    }
}

fn admission(c: &mut Criterion) {
    let load = busy_load();
    let texts: Vec<String> = (0..INPUTS).map(sentence).collect();
    // The permits are made once: a deadline of an hour (rather than the default
    // 30 s) outlives the run, and is checked the same way.
    let config = AdmissionConfig {
        deadline: Some(Duration::from_secs(3600)),
        ..AdmissionConfig::default()
    };
    let with = Admission::new(config);
    let without = Admission::new(AdmissionConfig {
        max_queue: None,
        ..config
    });
    let permit_with = with.enter(None).expect("a permit");
    let permit_without = without.enter(None).expect("a permit");
    assert!(with.check_waiting(&load).is_ok());
    let mut g = c.benchmark_group("admission");
    // Before the body is read, with work queued.
    g.bench_function("check_waiting", |b| {
        b.iter(|| with.check_waiting(black_box(&load)).is_ok())
    });
    // A miss of 32 texts charged: the deadline's prediction runs either way;
    // `max_queue_ms` adds the prediction on idle replicas. The ticket is dropped
    // each time, so the work outstanding stays the same.
    g.bench_function("charge_32_deadline_only", |b| {
        b.iter(|| {
            without
                .charge(&permit_without, black_box(&load), 256, &texts)
                .expect("admitted")
        })
    });
    g.bench_function("charge_32_deadline_and_max_queue", |b| {
        b.iter(|| {
            with.charge(&permit_with, black_box(&load), 256, &texts)
                .expect("admitted")
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    failure_limiter,
    query,
    request_id,
    client_address,
    body,
    admission
);
criterion_main!(benches);
