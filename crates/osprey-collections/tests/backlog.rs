//! Writes are acknowledged before their vectors are in the graph: the points
//! waiting for the indexer must be found (exactly) from the moment the write
//! returns, replaced and deleted points must never show their old vectors, the
//! bound on what waits must hold, and a restart must pick up where indexing was.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Duration;

use osprey_collections::{
    Collections, CollectionsConfig, Distance, Point, PointId, SearchRequest, Selector,
};
use support::*;

const DIMS: usize = 32;

fn points(data: &mut Clusters, ids: std::ops::Range<u64>) -> Vec<Point> {
    ids.map(|i| {
        let (v, cluster) = data.sample();
        Point {
            id: PointId::Num(i),
            vector: v,
            payload: payload_for(i, cluster),
        }
    })
    .collect()
}

fn top(c: &Collections, name: &str, v: &[f32], limit: usize) -> Vec<(PointId, f32)> {
    c.search(
        name,
        &SearchRequest {
            vector: v.to_vec(),
            limit,
            // A broad walk: what is checked is which vectors are searched, not
            // the graph's recall at the default breadth.
            ef: Some(4_096),
            ..Default::default()
        },
    )
    .unwrap()
    .into_iter()
    .map(|h| (h.id, h.score))
    .collect()
}

/// Each point is its own nearest neighbour (cosine 1).
fn assert_found(c: &Collections, batch: &[Point]) {
    for p in batch.iter().step_by(97) {
        let hits = top(c, "b", &p.vector, 3);
        assert_eq!(
            hits[0].0, p.id,
            "point {} is not found first: {hits:?}",
            p.id
        );
        assert!((hits[0].1 - 1.0).abs() < 1e-4, "score {}", hits[0].1);
    }
}

#[test]
fn points_are_searchable_before_they_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    c.create("b", params(DIMS, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(DIMS, 64, 0, 11);
    let first = points(&mut data, 0..12_000);
    for chunk in first.chunks(4_000) {
        c.upsert("b", chunk.to_vec()).unwrap();
    }
    let info = c.info("b").unwrap();
    assert_eq!(info.points_count, 12_000);
    assert!(
        info.indexed_vectors_count < 12_000,
        "the write waited for the graph"
    );
    // Found while the indexer works: from the backlog, the batch being
    // inserted, or the graph.
    assert_found(&c, &first);

    // Replace and delete points in every stage: waiting, being inserted,
    // already in the graph.
    let far = |i: u64| {
        let mut v = vec![0.0f32; DIMS];
        v[(i as usize) % DIMS] = if i.is_multiple_of(2) { 1.0 } else { -1.0 };
        v
    };
    let mut replaced = Vec::new();
    for round in 0..6u64 {
        let ids: Vec<u64> = (0..20).map(|k| round * 1_000 + k * 37).collect();
        let moved: Vec<Point> = ids
            .iter()
            .map(|&i| Point {
                id: PointId::Num(i),
                vector: far(i),
                payload: Default::default(),
            })
            .collect();
        c.upsert("b", moved).unwrap();
        replaced.extend(ids.iter().copied());
        let gone: Vec<PointId> = (0..20)
            .map(|k| PointId::Num(round * 1_000 + 500 + k * 11))
            .collect();
        c.delete_points("b", &Selector::Ids(gone)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let check = |c: &Collections| {
        for &i in &replaced {
            let old = &first[i as usize].vector;
            // The old vector is hidden: the point does not score 1 against it.
            let hits = top(c, "b", old, 10);
            assert!(
                hits.iter()
                    .all(|(id, s)| *id != PointId::Num(i) || *s < 0.999),
                "point {i} still answers for its old vector"
            );
        }
        for round in 0..6u64 {
            for k in 0..20 {
                let i = round * 1_000 + 500 + k * 11;
                let hits = top(c, "b", &first[i as usize].vector, 10);
                assert!(
                    hits.iter().all(|(id, _)| *id != PointId::Num(i)),
                    "deleted point {i} was found"
                );
            }
        }
        assert_eq!(c.count("b", None).unwrap(), 12_000 - 120);
        // Exact search agrees with the default one on a point's own vector.
        let p = &first[7_001];
        let exact = c
            .search(
                "b",
                &SearchRequest {
                    vector: p.vector.clone(),
                    limit: 1,
                    exact: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(exact[0].id, p.id);
    };
    check(&c);
    assert!(c.wait_indexed("b", Duration::from_secs(300)).unwrap());
    assert_eq!(c.info("b").unwrap().indexed_vectors_count, 12_000 - 120);
    check(&c);
    let deleted = |i: u64| {
        let r = i % 1_000;
        (500..720).contains(&r) && (r - 500).is_multiple_of(11)
    };
    let survivors: Vec<Point> = first
        .into_iter()
        .filter(|p| matches!(p.id, PointId::Num(i) if !replaced.contains(&i) && !deleted(i)))
        .collect();
    assert_found(&c, &survivors);
}

#[test]
fn a_write_waits_for_room_in_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = 64 * DIMS * 4;
    let c = Collections::open(&CollectionsConfig {
        max_unindexed_bytes: 1_024,
        ..config(&dir)
    })
    .unwrap();
    c.create("b", params(DIMS, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(DIMS, 64, 0, 12);
    for round in 0..20u64 {
        let batch = points(&mut data, round * 64..(round + 1) * 64);
        c.upsert("b", batch.clone()).unwrap();
        // A batch over the bound is taken only into an empty backlog.
        assert!(
            c.unindexed_bytes() <= batch_bytes,
            "{}",
            c.unindexed_bytes()
        );
        assert_found(&c, &batch);
    }
    assert!(c.wait_indexed("b", Duration::from_secs(60)).unwrap());
    assert_eq!(c.unindexed_bytes(), 0);
}

#[test]
fn indexing_goes_on_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut data = Clusters::new(DIMS, 64, 0, 13);
    let all = points(&mut data, 0..9_000);
    {
        let c = Collections::open(&cfg).unwrap();
        c.create("b", params(DIMS, Distance::Cosine)).unwrap();
        c.upsert("b", all[..3_000].to_vec()).unwrap();
        assert!(c.wait_indexed("b", Duration::from_secs(120)).unwrap());
        c.upsert("b", all[3_000..6_000].to_vec()).unwrap();
        // Saved with part of the writes still waiting: the snapshot covers
        // what was indexed.
        c.flush().unwrap();
        c.upsert("b", all[6_000..].to_vec()).unwrap();
        // Dropped without a flush, most likely mid-indexing.
    }
    let c = Collections::open(&cfg).unwrap();
    assert_eq!(c.count("b", None).unwrap(), 9_000);
    assert_found(&c, &all);
    assert!(c.wait_indexed("b", Duration::from_secs(300)).unwrap());
    assert_eq!(c.info("b").unwrap().indexed_vectors_count, 9_000);
    assert_found(&c, &all);
    c.flush().unwrap();
    drop(c);
    let c = Collections::open(&cfg).unwrap();
    assert_eq!(c.info("b").unwrap().indexed_vectors_count, 9_000);
    assert_found(&c, &all);
}

#[test]
fn a_restart_backlog_does_not_hold_up_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Clusters::new(DIMS, 64, 0, 14);
    let old = points(&mut data, 0..9_000);
    {
        let c = Collections::open(&config(&dir)).unwrap();
        c.create("b", params(DIMS, Distance::Cosine)).unwrap();
        c.upsert("b", old.clone()).unwrap();
        // Dropped without a flush: no snapshot, so every point waits again.
    }
    // The restart's backlog (9,000 × 128 bytes) is far over this bound.
    let c = Collections::open(&CollectionsConfig {
        max_unindexed_bytes: 64 << 10,
        ..config(&dir)
    })
    .unwrap();
    assert!(c.info("b").unwrap().indexed_vectors_count < 9_000);
    assert_eq!(c.unindexed_bytes(), 0);
    // Five writes of 8 KiB fit under the bound at once, behind the restart.
    for round in 0..5u64 {
        let batch = points(&mut data, 10_000 + round * 64..10_000 + (round + 1) * 64);
        c.upsert("b", batch.clone()).unwrap();
        assert_found(&c, &batch);
    }
    assert!(c.unindexed_bytes() <= 5 * 64 * DIMS * 4);
    assert!(c.wait_indexed("b", Duration::from_secs(120)).unwrap());
    assert_eq!(c.unindexed_bytes(), 0);
    assert_found(&c, &old);
}

/// The first insert into a new graph publishes its node count before the node
/// itself; a search walking the graph meanwhile must not see the half-made
/// node (it crashed the process before inserts into an empty graph were made
/// exclusive).
#[test]
fn searches_race_the_first_insert_into_a_graph() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    let v = vec![0.5f32; 4];
    for round in 0..300 {
        let name = format!("r{round}");
        c.create(&name, params(4, Distance::Cosine)).unwrap();
        let indexed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let req = SearchRequest {
                    vector: v.clone(),
                    ..Default::default()
                };
                while !indexed.load(std::sync::atomic::Ordering::Acquire) {
                    let hits = c.search(&name, &req).unwrap();
                    assert!(hits.len() <= 1, "{hits:?}");
                }
            });
            c.upsert(
                &name,
                vec![Point {
                    id: PointId::Num(1),
                    vector: v.clone(),
                    payload: Default::default(),
                }],
            )
            .unwrap();
            assert!(c.wait_indexed(&name, Duration::from_secs(30)).unwrap());
            indexed.store(true, std::sync::atomic::Ordering::Release);
        });
        let hits = top(&c, &name, &v, 10);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].0, PointId::Num(1));
        assert!(c.delete(&name).unwrap());
    }
}

#[test]
fn replaced_vectors_leave_the_graph_once_they_outnumber_the_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let c = Collections::open(&cfg).unwrap();
    c.create("b", params(DIMS, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(DIMS, 64, 0, 21);
    let mut last = Vec::new();
    // The same 5,000 ids written three times with new vectors: each round's
    // old vectors are removed from the graph, and past 4,096 of them, more
    // than the live ones, the graph is rebuilt without them.
    for _ in 0..3 {
        last = points(&mut data, 0..5_000);
        for chunk in last.chunks(2_500) {
            c.upsert("b", chunk.to_vec()).unwrap();
        }
        assert!(c.wait_indexed("b", Duration::from_secs(300)).unwrap());
    }
    assert_eq!(c.info("b").unwrap().indexed_vectors_count, 5_000);
    assert_found(&c, &last);
    c.flush().unwrap();
    let col_dir = std::fs::read_dir(&cfg.path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // A node costs its vector, its links (33 + 17 per upper level, 4 bytes
    // each) and 10 bytes of key and flags: the saved graph holds far fewer
    // than the 15,000 nodes written.
    let per_node = DIMS * 4 + 33 * 4 + 10;
    let bytes = std::fs::metadata(col_dir.join("index.graph"))
        .unwrap()
        .len() as usize;
    assert!(
        bytes < 9_000 * per_node,
        "{bytes} bytes: {} nodes or more",
        bytes / per_node
    );
}
