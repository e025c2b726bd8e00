//! 100k × 384 clustered vectors: the default search breadth's recall@10, and how
//! long opening takes with and without the index snapshot. Slow (minutes), so
//! ignored by default:
//! `cargo test -p osprey-collections --test large -- --ignored --nocapture`

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Instant;

use osprey_collections::{Collections, DEFAULT_EF, Distance, PointId, SearchRequest};
use support::*;

#[test]
#[ignore = "slow: 100k x 384 vectors"]
fn default_ef_recall_and_open_times_at_100k() {
    let n = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let c = Collections::open(&cfg).unwrap();
    c.create("c", params(384, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(384, 100, 64, 42);
    let t = Instant::now();
    let points = fill(&c, "c", &mut data, n);
    println!(
        "upsert of {n} points in requests of 5000: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let queries: Vec<Vec<f32>> = (0..100).map(|_| data.sample().0).collect();
    let truth: Vec<_> = queries
        .iter()
        .map(|q| exact_top(Distance::Cosine, &points, q, 10, |_, _| true))
        .collect();
    drop(points);
    let measure = |c: &Collections, ef: Option<usize>| {
        let t = Instant::now();
        let mut total = 0.0;
        for (q, truth) in queries.iter().zip(&truth) {
            let found: Vec<PointId> = c
                .search(
                    "c",
                    &SearchRequest {
                        vector: q.clone(),
                        limit: 10,
                        ef,
                        ..Default::default()
                    },
                )
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect();
            total += recall(&found, truth);
        }
        (
            total / queries.len() as f64,
            t.elapsed().as_secs_f64() * 1000.0 / queries.len() as f64,
        )
    };
    for ef in [16, 32, 64, 100, 128, 200] {
        let (r, ms) = measure(&c, Some(ef));
        println!("ef={ef}: recall@10 {r:.4}, {ms:.2} ms/query");
    }
    let (default_recall, _) = measure(&c, None);
    println!("default ef={DEFAULT_EF}: recall@10 {default_recall:.4}");

    let t = Instant::now();
    c.flush().unwrap();
    println!("flush (snapshot save): {:.2} s", t.elapsed().as_secs_f64());
    drop(c);

    let t = Instant::now();
    let c = Collections::open(&cfg).unwrap();
    println!("open from the snapshot: {:.2} s", t.elapsed().as_secs_f64());
    let (r, _) = measure(&c, None);
    println!("  recall@10 after it: {r:.4}");
    assert!(
        (r - default_recall).abs() < 1e-9,
        "the snapshot changed the answers"
    );
    drop(c);

    let col_dir = std::fs::read_dir(&cfg.path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(col_dir.join("index.meta")).unwrap();
    let t = Instant::now();
    let c = Collections::open(&cfg).unwrap();
    println!("open with a rebuild: {:.2} s", t.elapsed().as_secs_f64());
    let (r, _) = measure(&c, None);
    println!("  recall@10 after it: {r:.4}");
    assert_eq!(c.info("c").unwrap().points_count, n);
    assert!(default_recall >= 0.95, "default recall@10 {default_recall}");
    assert!(r >= 0.95, "recall@10 after a rebuild {r}");
}
