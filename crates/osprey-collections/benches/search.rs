//! Search and upsert latency on 20k × 384 clustered vectors (the default
//! model's size): a graph search, graph searches with a 20% filter and a 1%
//! filter (the latter takes the exact path over the matching points), a
//! brute-force search, and a durable upsert of 16 points (one fsynced commit).
//!
//! `cargo bench -p osprey-collections --bench search`

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark: a failed setup ends it

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use osprey_collections::{Collections, Distance, Filter, Point, PointId, SearchRequest};
use serde_json::json;
use support::{Clusters, config, fill, params, payload_for};

fn search(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cols = Collections::open(&config(&dir)).expect("collections");
    cols.create("b", params(384, Distance::Cosine))
        .expect("a collection");
    let mut data = Clusters::new(384, 100, 64, 42);
    fill(&cols, "b", &mut data, 20_000);
    let queries: Vec<Vec<f32>> = (0..64).map(|_| data.sample().0).collect();
    let filter = |v: serde_json::Value| Some(Filter::from_value(&v).expect("a filter"));
    let cases = [
        ("graph", None, false),
        (
            "graph, 20% filter",
            filter(json!({"must": [{"key": "meta.city", "match": {"value": "Paris"}}]})),
            false,
        ),
        (
            "1% filter (exact over matches)",
            filter(
                json!({"must": [{"key": "group", "match": {"value": 3}}, {"key": "meta.rank", "range": {"lt": 10}}]}),
            ),
            false,
        ),
        ("exact", None, true),
    ];
    let mut group = c.benchmark_group("search 20k x 384, top 10");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));
    for (name, filter, exact) in cases {
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                let req = SearchRequest {
                    vector: queries[i].clone(),
                    limit: 10,
                    filter: filter.clone(),
                    exact,
                    with_payload: true,
                    ..Default::default()
                };
                black_box(cols.search("b", &req).expect("a search"))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("upsert");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    let mut next = 1_000_000u64;
    group.bench_function("16 points, durable", |b| {
        b.iter(|| {
            let points: Vec<Point> = (0..16)
                .map(|k| {
                    next += 1;
                    Point {
                        id: PointId::Num(next),
                        vector: data.sample().0,
                        payload: payload_for(k, 0),
                    }
                })
                .collect();
            black_box(cols.upsert("b", points).expect("an upsert"))
        })
    });
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
