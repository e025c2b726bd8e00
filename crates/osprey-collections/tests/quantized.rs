//! float16 graphs and int8 quantization with rescoring, against an exact f64
//! reference on clustered data: recall, exact scores after rescoring, original
//! vectors in answers, and the int8 scale surviving a restart.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use osprey_collections::{
    CollectionParams, Collections, Datatype, Distance, PointId, Quantization, QuantizationSearch,
    ScalarQuantization, ScalarType, SearchRequest,
};
use support::*;

const K: usize = 10;

fn int8(size: usize, distance: Distance) -> CollectionParams {
    CollectionParams {
        quantization: Some(Quantization::Scalar(ScalarQuantization {
            kind: ScalarType::Int8,
            quantile: None,
            always_ram: Some(true),
        })),
        ..CollectionParams::new(size, distance)
    }
}

fn float16(size: usize, distance: Distance) -> CollectionParams {
    CollectionParams {
        datatype: Datatype::Float16,
        ..CollectionParams::new(size, distance)
    }
}

fn query(q: &[f32], quantization: QuantizationSearch, exact: bool) -> SearchRequest {
    SearchRequest {
        vector: q.to_vec(),
        limit: K,
        exact,
        quantization,
        ..Default::default()
    }
}

/// Mean recall@10 of graph searches against the exact reference, and the
/// largest score error of the hits that are in the reference.
fn measure(
    c: &Collections,
    name: &str,
    distance: Distance,
    points: &[(PointId, Vec<f32>, osprey_collections::Payload)],
    queries: &[Vec<f32>],
    quantization: QuantizationSearch,
) -> (f64, f64) {
    let (mut total, mut worst) = (0.0, 0.0f64);
    for q in queries {
        let truth = exact_top(distance, points, q, K, |_, _| true);
        let hits = c.search(name, &query(q, quantization, false)).unwrap();
        let ids: Vec<PointId> = hits.iter().map(|h| h.id.clone()).collect();
        total += recall(&ids, &truth);
        for h in &hits {
            if let Some((_, s)) = truth.iter().find(|(id, _)| *id == h.id) {
                worst = worst.max((h.score as f64 - s).abs());
            }
        }
    }
    (total / queries.len() as f64, worst)
}

#[test]
fn int8_with_rescoring_keeps_recall_and_exact_scores() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    c.create("q", int8(128, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(128, 50, 64, 11);
    let points = fill(&c, "q", &mut data, 20_000);
    let queries: Vec<Vec<f32>> = (0..60).map(|_| data.sample().0).collect();

    let (rescored, err) = measure(
        &c,
        "q",
        Distance::Cosine,
        &points,
        &queries,
        QuantizationSearch::default(),
    );
    println!("int8 rescored: recall@10 {rescored:.4}, worst score error {err:.2e}");
    assert!(rescored >= 0.95, "int8 recall@10 with rescoring {rescored}");
    // Rescored scores are exact cosine similarities of the originals.
    assert!(err < 1e-4, "rescored score error {err}");

    let estimates = QuantizationSearch {
        rescore: false,
        ..Default::default()
    };
    let (raw, raw_err) = measure(&c, "q", Distance::Cosine, &points, &queries, estimates);
    println!("int8 estimates: recall@10 {raw:.4}, worst score error {raw_err:.2e}");
    // Without rescoring the codes still rank sensibly, and their scores are
    // estimates in the vectors' units (raw integer products would be ~10⁴);
    // saturated components make them run low by up to about a tenth.
    assert!(raw >= 0.5, "int8 recall@10 without rescoring {raw}");
    assert!(raw_err < 0.2, "int8 score estimate error {raw_err}");
    assert!(
        raw_err > err,
        "estimates should be rougher than rescored scores"
    );

    // Answers carry the original (normalized) vectors, not the codes.
    let got = c.retrieve("q", &[PointId::Num(5)], false, true).unwrap();
    let original = &points[5].1;
    let norm = original.iter().map(|x| x * x).sum::<f32>().sqrt();
    let v = got[0].vector.as_ref().expect("a vector");
    for (a, b) in v.iter().zip(original) {
        assert!((a - b / norm).abs() < 1e-6, "{a} vs {}", b / norm);
    }

    // The scale is stored with the points: after a restart, with and without
    // the snapshot, the same queries give the same answers.
    let before: Vec<Vec<PointId>> = queries[..10].iter().map(|q| ids(&c, q)).collect();
    c.flush().unwrap();
    drop(c);
    let c = Collections::open(&config(&dir)).unwrap();
    let after: Vec<Vec<PointId>> = queries[..10].iter().map(|q| ids(&c, q)).collect();
    assert_eq!(
        before, after,
        "answers changed across a restart from the snapshot"
    );
    drop(c);
    for f in std::fs::read_dir(dir.path().join("collections")).unwrap() {
        let d = f.unwrap().path();
        for snap in ["index.graph", "index.meta"] {
            let _ = std::fs::remove_file(d.join(snap));
        }
    }
    let c = Collections::open(&config(&dir)).unwrap();
    let rebuilt: Vec<f64> = queries[..10]
        .iter()
        .map(|q| {
            let truth = exact_top(Distance::Cosine, &points, q, K, |_, _| true);
            recall(&ids(&c, q), &truth)
        })
        .collect();
    let mean = rebuilt.iter().sum::<f64>() / rebuilt.len() as f64;
    assert!(mean >= 0.95, "recall after a rebuild from the store {mean}");
}

fn ids(c: &Collections, q: &[f32]) -> Vec<PointId> {
    c.search("q", &query(q, QuantizationSearch::default(), false))
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
}

#[test]
fn int8_euclid_and_exact_search_rank_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    c.create("e", int8(64, Distance::Euclid)).unwrap();
    let mut data = Clusters::new(64, 20, 32, 5);
    let points = fill(&c, "e", &mut data, 3_000);
    let queries: Vec<Vec<f32>> = (0..30).map(|_| data.sample().0).collect();
    let mut total = 0.0;
    for q in &queries {
        let truth = exact_top(Distance::Euclid, &points, q, K, |_, _| true);
        let hits = c
            .search("e", &query(q, QuantizationSearch::default(), true))
            .unwrap();
        let found: Vec<PointId> = hits.iter().map(|h| h.id.clone()).collect();
        total += recall(&found, &truth);
        // Distances ascend and are the originals' Euclidean distances.
        for w in hits.windows(2) {
            assert!(w[0].score <= w[1].score);
        }
        let (id, d) = &truth[0];
        if let Some(h) = hits.iter().find(|h| &h.id == id) {
            assert!((h.score as f64 - d).abs() < 1e-3, "{} vs {d}", h.score);
        }
    }
    let mean = total / queries.len() as f64;
    assert!(mean >= 0.95, "int8 exact Euclid recall@10 {mean}");
}

#[test]
fn float16_graph_keeps_recall() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    c.create("h", float16(128, Distance::Dot)).unwrap();
    let mut data = Clusters::new(128, 50, 64, 3);
    let points = fill(&c, "h", &mut data, 10_000);
    let queries: Vec<Vec<f32>> = (0..40).map(|_| data.sample().0).collect();
    let (r, err) = measure(
        &c,
        "h",
        Distance::Dot,
        &points,
        &queries,
        QuantizationSearch::default(),
    );
    println!("float16: recall@10 {r:.4}, worst score error {err:.2e}");
    assert!(r >= 0.95, "float16 recall@10 {r}");
    // float16 keeps about three significant digits of each component.
    let scale = points[0].1.iter().map(|x| x * x).sum::<f32>() as f64;
    assert!(
        err < 1e-2 * scale,
        "float16 score error {err} at |v|² {scale}"
    );
}

#[test]
fn a_quantile_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    let mut p = int8(8, Distance::Cosine);
    if let Some(Quantization::Scalar(s)) = &mut p.quantization {
        s.quantile = Some(0.2);
    }
    let e = c.create("bad", p).unwrap_err();
    assert!(e.is_client_error(), "{e}");
    assert!(e.to_string().contains("quantile"), "{e}");
    assert!(!c.exists("bad"));
}
