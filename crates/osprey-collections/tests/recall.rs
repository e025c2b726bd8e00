//! Search quality against an exact f64 reference on clustered data, with and
//! without filters, for each distance.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use osprey_collections::{Collections, Distance, Filter, Payload, PointId, SearchRequest};
use serde_json::{Value, json};
use support::*;

const K: usize = 10;

fn search(c: &Collections, q: &[f32], filter: Option<Filter>, exact: bool) -> Vec<PointId> {
    c.search(
        "c",
        &SearchRequest {
            vector: q.to_vec(),
            limit: K,
            filter,
            exact,
            ..Default::default()
        },
    )
    .unwrap()
    .into_iter()
    .map(|h| h.id)
    .collect()
}

#[test]
fn cosine_recall_at_10_on_clustered_data() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    c.create("c", params(128, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(128, 50, 64, 7);
    let points = fill(&c, "c", &mut data, 20_000);
    let queries: Vec<Vec<f32>> = (0..60).map(|_| data.sample().0).collect();

    let (mut approx, mut exact) = (0.0, 0.0);
    for q in &queries {
        let truth = exact_top(Distance::Cosine, &points, q, K, |_, _| true);
        approx += recall(&search(&c, q, None, false), &truth);
        exact += recall(&search(&c, q, None, true), &truth);
    }
    let n = queries.len() as f64;
    let (approx, exact) = (approx / n, exact / n);
    println!("recall@10: graph {approx:.4}, exact {exact:.4}");
    assert!(approx >= 0.95, "graph recall@10 {approx}");
    assert!(exact >= 0.999, "exact recall@10 {exact}");

    // Scores are cosine similarities.
    let q = &queries[0];
    let hits = c
        .search(
            "c",
            &SearchRequest {
                vector: q.clone(),
                limit: 3,
                exact: true,
                ..Default::default()
            },
        )
        .unwrap();
    let truth = exact_top(Distance::Cosine, &points, q, 3, |_, _| true);
    for (h, t) in hits.iter().zip(&truth) {
        assert!(
            (h.score as f64 - t.1).abs() < 1e-4,
            "{} vs {}",
            h.score,
            t.1
        );
    }

    // Filters: each checked against exact filtered search over the same points,
    // and every hit must satisfy the filter.
    type Keep = Box<dyn Fn(&PointId, &Payload) -> bool>;
    let some_ids: Vec<u64> = (0..20_000).step_by(37).collect();
    let cases: Vec<(&str, Value, Keep)> = vec![
        (
            "match value on a nested key (20%)",
            json!({"must": [{"key": "meta.city", "match": {"value": "Paris"}}]}),
            Box::new(|_, p| p["meta"]["city"] == "Paris"),
        ),
        (
            "match any on an integer (30%)",
            json!({"must": [{"key": "group", "match": {"any": [1, 2, 3]}}]}),
            Box::new(|_, p| [1, 2, 3].contains(&p["group"].as_u64().unwrap())),
        ),
        (
            "array payload, should and must_not",
            json!({"should": [{"key": "tags", "match": {"value": "a"}}, {"key": "tags", "match": {"value": "b"}}],
                   "must_not": [{"key": "tags", "match": {"value": "c"}}]}),
            Box::new(|_, p| {
                let t: Vec<&str> = p["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                (t.contains(&"a") || t.contains(&"b")) && !t.contains(&"c")
            }),
        ),
        (
            "range (40%)",
            json!({"must": [{"key": "price", "range": {"gte": 10.0, "lt": 50.0}}]}),
            Box::new(|_, p| {
                let x = p["price"].as_f64().unwrap();
                (10.0..50.0).contains(&x)
            }),
        ),
        (
            "except",
            json!({"must": [{"key": "meta.city", "match": {"except": ["London", "Paris", "Rome"]}}]}),
            Box::new(|_, p| {
                !["London", "Paris", "Rome"].contains(&p["meta"]["city"].as_str().unwrap())
            }),
        ),
        (
            "selective: two conditions (1%)",
            json!({"must": [{"key": "group", "match": {"value": 3}}, {"key": "meta.rank", "range": {"lt": 10}}]}),
            Box::new(|_, p| p["group"] == 3 && p["meta"]["rank"].as_u64().unwrap() < 10),
        ),
        (
            "has_id (540 ids)",
            json!({"must": [{"has_id": some_ids}]}),
            Box::new(move |id, _| matches!(id, PointId::Num(n) if n % 37 == 0)),
        ),
        (
            "nested filter with min_should",
            json!({"must": [{"min_should": {"min_count": 2, "conditions": [
                {"key": "tags", "match": {"value": "d"}},
                {"key": "group", "match": {"any": [0, 1, 2, 3, 4]}},
                {"key": "meta.city", "match": {"any": ["Oslo", "Berlin"]}}
            ]}}]}),
            Box::new(|_, p| {
                let a = p["tags"].as_array().unwrap().iter().any(|t| t == "d");
                let b = p["group"].as_u64().unwrap() < 5;
                let c = ["Oslo", "Berlin"].contains(&p["meta"]["city"].as_str().unwrap());
                (a as u8 + b as u8 + c as u8) >= 2
            }),
        ),
        (
            "matches nothing",
            json!({"must": [{"key": "meta.city", "match": {"value": "Atlantis"}}]}),
            Box::new(|_, _| false),
        ),
    ];
    let by_id: std::collections::HashMap<PointId, &Payload> =
        points.iter().map(|(id, _, p)| (id.clone(), p)).collect();
    for (what, filter, keep) in &cases {
        let f = Filter::from_value(filter).unwrap();
        let matching = points.iter().filter(|(id, _, p)| keep(id, p)).count() as u64;
        assert_eq!(c.count("c", Some(&f)).unwrap(), matching, "{what}: count");
        let mut total = 0.0;
        for q in queries.iter().take(30) {
            let truth = exact_top(Distance::Cosine, &points, q, K, |id, p| keep(id, p));
            let found = search(&c, q, Some(f.clone()), false);
            assert_eq!(found.len(), truth.len(), "{what}: hit count");
            for id in &found {
                assert!(
                    keep(id, by_id[id]),
                    "{what}: {id} does not satisfy the filter"
                );
            }
            total += recall(&found, &truth);
        }
        let r = total / 30.0;
        println!("{what}: {matching} points, recall@10 {r:.4}");
        assert!(r >= 0.95, "{what}: filtered recall@10 {r}");
    }
}

#[test]
fn dot_and_euclid_rank_as_the_reference() {
    for distance in [Distance::Dot, Distance::Euclid] {
        let dir = tempfile::tempdir().unwrap();
        let c = Collections::open(&config(&dir)).unwrap();
        c.create("c", params(32, distance)).unwrap();
        let mut data = Clusters::new(32, 20, 8, 11);
        let points = fill(&c, "c", &mut data, 8_000);
        let mut total = 0.0;
        for _ in 0..30 {
            let q = data.sample().0;
            let truth = exact_top(distance, &points, &q, K, |_, _| true);
            let hits = c
                .search(
                    "c",
                    &SearchRequest {
                        vector: q.clone(),
                        limit: K,
                        ..Default::default()
                    },
                )
                .unwrap();
            let found: Vec<PointId> = hits.iter().map(|h| h.id.clone()).collect();
            total += recall(&found, &truth);
            // Best first: descending similarity, ascending distance.
            for w in hits.windows(2) {
                if distance == Distance::Euclid {
                    assert!(w[0].score <= w[1].score);
                } else {
                    assert!(w[0].score >= w[1].score);
                }
            }
            let top = &truth[0];
            if found[0] == top.0 {
                assert!((hits[0].score as f64 - top.1).abs() < 1e-3 * top.1.abs().max(1.0));
            }
            // score_threshold keeps scores at least as good as it.
            let t = truth[4].1 as f32;
            let kept = c
                .search(
                    "c",
                    &SearchRequest {
                        vector: q.clone(),
                        limit: K,
                        exact: true,
                        score_threshold: Some(t),
                        ..Default::default()
                    },
                )
                .unwrap();
            assert!(
                kept.len() >= 4 && kept.len() <= 6,
                "{distance:?}: {} kept",
                kept.len()
            );
            for h in &kept {
                if distance == Distance::Euclid {
                    assert!(h.score <= t);
                } else {
                    assert!(h.score >= t);
                }
            }
            // limit and offset page through the same ranking.
            let exact = c
                .search(
                    "c",
                    &SearchRequest {
                        vector: q.clone(),
                        limit: 6,
                        exact: true,
                        ..Default::default()
                    },
                )
                .unwrap();
            let paged = c
                .search(
                    "c",
                    &SearchRequest {
                        vector: q.clone(),
                        limit: 3,
                        offset: 3,
                        exact: true,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(
                paged.iter().map(|h| &h.id).collect::<Vec<_>>(),
                exact[3..].iter().map(|h| &h.id).collect::<Vec<_>>()
            );
        }
        let r = total / 30.0;
        println!("{distance:?}: recall@10 {r:.4}");
        assert!(r >= 0.95, "{distance:?}: recall@10 {r}");
    }
}
