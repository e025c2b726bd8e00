//! What the protection checks cost a request that passes them, without the HTTP
//! stack around them: an API key checked (SHA-256 of the presented key, compared in
//! constant time with every stored digest) and a GCRA rate limit counted per key
//! (the key's own bucket) or per client IP (a keyed table). Set against the CPU
//! time a cache-hit request takes end to end (BENCHMARKS.md), this is the checks'
//! share of cache-hit throughput.
//!
//! `cargo bench -p osprey-server --bench guard_checks`

#![allow(clippy::expect_used)] // a benchmark: a failed setup ends it

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use axum::http::{HeaderMap, HeaderValue, header};
use criterion::{Criterion, criterion_group, criterion_main};
use osprey_server::LimitsConfig;
use osprey_server::auth::{AuthConfig, Authenticator, Scope, digest_hex};
use osprey_server::rate_limit::{ClientKey, RateLimits};

const KEY: &str = "osp_bench_key_0123456789abcdef";

fn guard_checks(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let keys = dir.path().join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\nname = \"bench\"\nscope = \"infer\"\nsha256 = \"{}\"\n",
            digest_hex(KEY)
        ),
    )
    .expect("the keys file");
    let auth = Authenticator::from_config(&AuthConfig {
        enabled: true,
        keys_file: Some(keys),
        keys_env: String::new(),
        ..AuthConfig::default()
    })
    .expect("a valid key")
    .expect("auth on");
    let limits = LimitsConfig {
        // High enough never to refuse, as in bench/protect/auth.toml.
        requests_per_second: 1_000_000,
        ..LimitsConfig::default()
    };
    let rate = RateLimits::with_slots(&limits, auth.key_count());
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {KEY}")).expect("a header value"),
    );
    let ip = ClientKey::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));

    let mut g = c.benchmark_group("guard");
    g.bench_function("api_key", |b| {
        b.iter(|| {
            auth.authorize(black_box(&headers), Scope::Infer)
                .expect("a valid key")
                .client()
        })
    });
    g.bench_function("rate_per_key", |b| {
        b.iter(|| rate.check_request(black_box(&ClientKey::Slot(0))).is_ok())
    });
    g.bench_function("rate_per_ip", |b| {
        b.iter(|| rate.check_request(black_box(&ip)).is_ok())
    });
    g.bench_function("api_key_and_rate", |b| {
        b.iter(|| {
            let client = auth
                .authorize(black_box(&headers), Scope::Infer)
                .expect("a valid key")
                .client();
            rate.check_request(&client).is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, guard_checks);
criterion_main!(benches);
