//! What survives a reopen: points, payloads, vectors, deletes, versions, the
//! snapshot (used when current, ignored when stale or damaged), and the
//! directory layout after interrupted creates and deletes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use osprey_collections::{Collections, Distance, Filter, Point, PointId, SearchRequest, Selector};
use serde_json::json;
use support::*;

fn uuid_id(i: u64) -> PointId {
    PointId::Uuid(uuid::Uuid::from_u64_pair(0x5c56_c793_69f3_4fbf, i))
}

fn mixed_points(n: u64, data: &mut Clusters) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            id: if i % 3 == 0 {
                uuid_id(i)
            } else {
                PointId::Num(i * 11)
            },
            vector: data.sample().0,
            payload: payload_for(i, 0),
        })
        .collect()
}

fn all_ids(c: &Collections, name: &str, filter: Option<&Filter>, page: usize) -> Vec<PointId> {
    let mut out = Vec::new();
    let mut offset = None;
    loop {
        let (recs, next) = c
            .scroll(name, filter, page, offset.as_ref(), false, false)
            .unwrap();
        assert!(recs.len() <= page);
        out.extend(recs.into_iter().map(|r| r.id));
        match next {
            Some(n) => offset = Some(n),
            None => return out,
        }
    }
}

#[test]
fn points_survive_an_unclean_stop_with_vectors_and_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut data = Clusters::new(16, 4, 4, 1);
    let points = mixed_points(300, &mut data);
    {
        let c = Collections::open(&cfg).unwrap();
        c.create("docs", params(16, Distance::Dot)).unwrap();
        for chunk in points.chunks(70) {
            c.upsert("docs", chunk.to_vec()).unwrap();
        }
        // No flush: as after kill -9.
    }
    let c = Collections::open(&cfg).unwrap();
    assert_eq!(c.info("docs").unwrap().points_count, 300);
    let ids: Vec<PointId> = points.iter().map(|p| p.id.clone()).collect();
    let recs = c.retrieve("docs", &ids, true, true).unwrap();
    assert_eq!(recs.len(), 300);
    for (r, p) in recs.iter().zip(&points) {
        assert_eq!(r.id, p.id);
        assert_eq!(
            r.vector.as_ref(),
            Some(&p.vector),
            "Dot vectors are stored as given"
        );
        assert_eq!(r.payload.as_ref(), Some(&p.payload));
    }
    // Each point is its own nearest neighbour.
    for p in points.iter().step_by(17) {
        let hits = c
            .search(
                "docs",
                &SearchRequest {
                    vector: p.vector.clone(),
                    limit: 1,
                    exact: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(hits.len(), 1);
    }
}

#[test]
fn scroll_pages_are_complete_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    c.create("s", params(16, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(16, 4, 4, 2);
    let points = mixed_points(250, &mut data);
    c.upsert("s", points.clone()).unwrap();

    let mut expected: Vec<PointId> = points.iter().map(|p| p.id.clone()).collect();
    expected.sort();
    // Integers first, ascending, then UUIDs.
    let first_uuid = expected
        .iter()
        .position(|id| matches!(id, PointId::Uuid(_)))
        .unwrap();
    assert!(
        expected[..first_uuid]
            .iter()
            .all(|id| matches!(id, PointId::Num(_)))
    );
    for page in [1, 7, 100, 250, 1000] {
        assert_eq!(all_ids(&c, "s", None, page), expected, "page size {page}");
    }
    let f =
        Filter::from_value(&json!({"must": [{"key": "group", "match": {"value": 4}}]})).unwrap();
    let want: Vec<PointId> = {
        let keep: HashSet<PointId> = points
            .iter()
            .filter(|p| p.payload["group"] == 4)
            .map(|p| p.id.clone())
            .collect();
        expected
            .iter()
            .filter(|id| keep.contains(id))
            .cloned()
            .collect()
    };
    assert_eq!(all_ids(&c, "s", Some(&f), 6), want);
    assert_eq!(c.count("s", Some(&f)).unwrap(), want.len() as u64);
    // An offset that is not a point starts at the next id.
    let (recs, _) = c
        .scroll("s", None, 1, Some(&PointId::Num(12)), false, false)
        .unwrap();
    assert_eq!(recs[0].id, PointId::Num(22));
    // with_payload / with_vector.
    let (recs, _) = c.scroll("s", None, 1, None, true, true).unwrap();
    assert!(recs[0].payload.is_some() && recs[0].vector.as_ref().is_some_and(|v| v.len() == 16));
    let (recs, _) = c.scroll("s", None, 1, None, false, false).unwrap();
    assert!(recs[0].payload.is_none() && recs[0].vector.is_none());
}

#[test]
fn updates_and_deletes_persist_with_versions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut data = Clusters::new(8, 2, 2, 3);
    {
        let c = Collections::open(&cfg).unwrap();
        c.create("u", params(8, Distance::Euclid)).unwrap();
        let points = mixed_points(100, &mut data);
        assert_eq!(c.upsert("u", points).unwrap().operation_id, 1);
        // Overwrite one point twice in one request: the last wins.
        let v1 = vec![1.0; 8];
        let v2 = vec![2.0; 8];
        let r = c
            .upsert(
                "u",
                vec![
                    Point {
                        id: PointId::Num(11),
                        vector: v1,
                        payload: json!({"x": 1}).as_object().cloned().unwrap(),
                    },
                    Point {
                        id: PointId::Num(11),
                        vector: v2.clone(),
                        payload: json!({"x": 2}).as_object().cloned().unwrap(),
                    },
                ],
            )
            .unwrap();
        assert_eq!(r.operation_id, 2);
        // Delete by filter and by id.
        let f = Filter::from_value(&json!({"must": [{"key": "group", "match": {"value": 5}}]}))
            .unwrap();
        assert_eq!(
            c.delete_points("u", &Selector::Filter(f))
                .unwrap()
                .operation_id,
            3
        );
        assert_eq!(
            c.delete_points("u", &Selector::Ids(vec![uuid_id(0), PointId::Num(999_999)]))
                .unwrap()
                .operation_id,
            4
        );
        let hits = c
            .search(
                "u",
                &SearchRequest {
                    vector: vec![2.0; 8],
                    limit: 1,
                    with_payload: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(hits[0].id, PointId::Num(11));
        assert_eq!(hits[0].score, 0.0);
        assert_eq!(hits[0].version, 2);
        c.flush().unwrap();
        // A write after the snapshot makes it stale.
        c.delete_points("u", &Selector::Ids(vec![PointId::Num(22)]))
            .unwrap();
    }
    let c = Collections::open(&cfg).unwrap();
    // 100 points, group 5 = i % 10 == 5 (10 points), uuid_id(0), then id 22.
    assert_eq!(c.count("u", None).unwrap(), 100 - 10 - 1 - 1);
    let recs = c
        .retrieve(
            "u",
            &[PointId::Num(11), PointId::Num(22), uuid_id(0)],
            true,
            true,
        )
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].vector.as_deref(), Some(&[2.0; 8][..]));
    assert_eq!(recs[0].payload.as_ref().unwrap()["x"], 2);
    let hits = c
        .search(
            "u",
            &SearchRequest {
                vector: vec![2.0; 8],
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((hits[0].id.clone(), hits[0].version), (PointId::Num(11), 2));
    // The next operation continues the counter.
    let r = c
        .delete_points("u", &Selector::Ids(vec![PointId::Num(11)]))
        .unwrap();
    assert_eq!(r.operation_id, 6);
}

#[test]
fn snapshots_are_used_when_current_and_ignored_when_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut data = Clusters::new(32, 8, 8, 4);
    let queries: Vec<Vec<f32>> = (0..20).map(|_| data.sample().0).collect();
    let answers = |c: &Collections| -> Vec<Vec<PointId>> {
        queries
            .iter()
            .map(|q| {
                c.search(
                    "s",
                    &SearchRequest {
                        vector: q.clone(),
                        limit: 5,
                        ..Default::default()
                    },
                )
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect()
            })
            .collect()
    };
    let before;
    {
        let c = Collections::open(&cfg).unwrap();
        c.create("s", params(32, Distance::Cosine)).unwrap();
        fill(&c, "s", &mut data, 3_000);
        c.delete_points(
            "s",
            &Selector::Ids((0..3_000).step_by(3).map(PointId::Num).collect()),
        )
        .unwrap();
        before = answers(&c);
        c.flush().unwrap();
        c.flush().unwrap();
    }
    let col_dir = fs::read_dir(&cfg.path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(col_dir.join("index.graph").is_file() && col_dir.join("index.meta").is_file());
    {
        // The snapshot is current: the same graph, the same answers.
        let c = Collections::open(&cfg).unwrap();
        // A rebuild would have removed the snapshot files.
        assert!(col_dir.join("index.meta").is_file());
        assert_eq!(answers(&c), before);
        assert_eq!(c.count("s", None).unwrap(), 2_000);
        // Slots freed by the deletes are reused after a snapshot load.
        fill(&c, "s", &mut Clusters::new(32, 8, 8, 5), 10);
        // Ids 0..10 overwrite 6 points and bring back 0, 3, 6 and 9.
        assert_eq!(c.count("s", None).unwrap(), 2_000 + 4);
        c.flush().unwrap();
    }
    // A save interrupted by a crash leaves temporary files; they are removed.
    fs::write(col_dir.join("index.graph.tmp"), b"partial").unwrap();
    fs::write(col_dir.join("index.meta.tmp"), b"partial").unwrap();
    drop(Collections::open(&cfg).unwrap());
    assert!(!col_dir.join("index.graph.tmp").exists());
    assert!(!col_dir.join("index.meta.tmp").exists());
    // A damaged graph file: rebuilt from the store, nothing lost.
    let bytes = fs::read(col_dir.join("index.graph")).unwrap();
    fs::write(col_dir.join("index.graph"), &bytes[..bytes.len() / 2]).unwrap();
    {
        let c = Collections::open(&cfg).unwrap();
        assert_eq!(c.count("s", None).unwrap(), 2_004);
        let exact: Vec<PointId> = c
            .search(
                "s",
                &SearchRequest {
                    vector: queries[0].clone(),
                    limit: 5,
                    exact: true,
                    ..Default::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(exact.len(), 5);
        // The rebuild removed the damaged snapshot.
        assert!(!col_dir.join("index.meta").exists());
        // Rebuilt in the background: a snapshot is saved once it is indexed.
        assert!(c.wait_indexed("s", Duration::from_secs(60)).unwrap());
        c.flush().unwrap();
    }
    // A damaged metadata file likewise.
    let mut meta = fs::read(col_dir.join("index.meta")).unwrap();
    let mid = meta.len() / 2;
    meta[mid] ^= 0xff;
    fs::write(col_dir.join("index.meta"), &meta).unwrap();
    let c = Collections::open(&cfg).unwrap();
    assert_eq!(c.count("s", None).unwrap(), 2_004);
}

#[test]
fn collections_come_and_go_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let c = Collections::open(&cfg).unwrap();
    let odd = "odd name: é/../x".replace('/', "|");
    for name in ["a", "b", odd.as_str(), ".hidden", "..."] {
        c.create(name, params(4, Distance::Cosine)).unwrap();
    }
    c.upsert(
        "a",
        vec![Point {
            id: PointId::Num(1),
            vector: vec![1.0; 4],
            payload: Default::default(),
        }],
    )
    .unwrap();
    assert!(c.delete("a").unwrap());
    c.create("a", params(4, Distance::Dot)).unwrap();
    assert_eq!(c.count("a", None).unwrap(), 0);
    assert_eq!(c.info("a").unwrap().params.distance, Distance::Dot);
    drop(c);
    // Leftovers of an interrupted create and delete are removed on open; they
    // never show up as collections.
    fs::create_dir(cfg.path.join(".tmp-1-2-3")).unwrap();
    fs::create_dir(cfg.path.join(".trash-1-2-3")).unwrap();
    fs::write(cfg.path.join(".trash-1-2-3").join("points.redb"), b"junk").unwrap();
    let c = Collections::open(&cfg).unwrap();
    let mut want = vec!["...", ".hidden", "a", "b", odd.as_str()];
    want.sort();
    assert_eq!(c.list(), want);
    assert!(!cfg.path.join(".tmp-1-2-3").exists());
    assert!(!cfg.path.join(".trash-1-2-3").exists());
    for name in c.list() {
        assert!(c.exists(&name));
        assert!(c.delete(&name).unwrap());
    }
    assert_eq!(fs::read_dir(&cfg.path).unwrap().count(), 0);
}

#[test]
fn concurrent_readers_and_writers() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&config(&dir)).unwrap();
    c.create("c", params(16, Distance::Cosine)).unwrap();
    let mut data = Clusters::new(16, 4, 4, 6);
    fill(&c, "c", &mut data, 2_000);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let c = &c;
            s.spawn(move || {
                let mut data = Clusters::new(16, 4, 4, 100 + t);
                for i in 0..50u64 {
                    if t % 2 == 0 {
                        c.upsert(
                            "c",
                            vec![Point {
                                id: PointId::Num(10_000 + t * 100 + i),
                                vector: data.sample().0,
                                payload: Default::default(),
                            }],
                        )
                        .unwrap();
                    } else {
                        // More searches at once than the index has scratch contexts.
                        let hits = c
                            .search(
                                "c",
                                &SearchRequest {
                                    vector: data.sample().0,
                                    limit: 5,
                                    ..Default::default()
                                },
                            )
                            .unwrap();
                        assert_eq!(hits.len(), 5);
                    }
                }
            });
        }
        // A large batch (inserted from several threads) while searches run.
        let c2 = &c;
        s.spawn(move || {
            let mut data = Clusters::new(16, 4, 4, 8);
            let batch: Vec<Point> = (0..3_000u64)
                .map(|i| Point {
                    id: PointId::Num(50_000 + i),
                    vector: data.sample().0,
                    payload: payload_for(i, 0),
                })
                .collect();
            c2.upsert("c", batch).unwrap();
        });
        for _ in 0..24 {
            let c = &c;
            s.spawn(move || {
                let mut data = Clusters::new(16, 4, 4, 7);
                for _ in 0..20 {
                    let hits = c
                        .search(
                            "c",
                            &SearchRequest {
                                vector: data.sample().0,
                                limit: 3,
                                ..Default::default()
                            },
                        )
                        .unwrap();
                    assert_eq!(hits.len(), 3);
                }
            });
        }
    });
    assert_eq!(c.count("c", None).unwrap(), 5_100);
    assert!(c.wait_indexed("c", Duration::from_secs(120)).unwrap());
    assert_eq!(c.info("c").unwrap().indexed_vectors_count, 5_100);
}

#[test]
fn writes_after_a_snapshot_are_replayed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let mut data = Clusters::new(16, 4, 4, 9);
    let moved = vec![9.0f32; 16];
    let fresh = vec![-9.0f32; 16];
    {
        let c = Collections::open(&cfg).unwrap();
        c.create("r", params(16, Distance::Euclid)).unwrap();
        fill(&c, "r", &mut data, 1_000);
        c.flush().unwrap();
        // After the snapshot: overwrite, delete, delete then re-add, add new.
        c.upsert(
            "r",
            vec![Point {
                id: PointId::Num(5),
                vector: moved.clone(),
                payload: Default::default(),
            }],
        )
        .unwrap();
        c.delete_points("r", &Selector::Ids((100..200).map(PointId::Num).collect()))
            .unwrap();
        c.upsert(
            "r",
            vec![Point {
                id: PointId::Num(150),
                vector: fresh.clone(),
                payload: Default::default(),
            }],
        )
        .unwrap();
        c.upsert(
            "r",
            vec![Point {
                id: uuid_id(1),
                vector: vec![0.5; 16],
                payload: Default::default(),
            }],
        )
        .unwrap();
        // No flush.
    }
    let col_dir = fs::read_dir(&cfg.path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let c = Collections::open(&cfg).unwrap();
    assert!(
        col_dir.join("index.meta").is_file(),
        "the snapshot was used"
    );
    assert_eq!(c.count("r", None).unwrap(), 1_000 - 100 + 1 + 1);
    assert!(c.wait_indexed("r", Duration::from_secs(60)).unwrap());
    assert_eq!(c.info("r").unwrap().indexed_vectors_count, 902);
    let nearest = |v: &[f32]| {
        c.search(
            "r",
            &SearchRequest {
                vector: v.to_vec(),
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap()[0]
            .clone()
    };
    let h = nearest(&moved);
    assert_eq!((h.id, h.score, h.version), (PointId::Num(5), 0.0, 2));
    assert_eq!(nearest(&fresh).id, PointId::Num(150));
    assert_eq!(nearest(&[0.5; 16]).id, uuid_id(1));
    let gone: Vec<PointId> = (100..200).filter(|i| *i != 150).map(PointId::Num).collect();
    assert!(
        c.retrieve("r", &gone[..10], false, false)
            .unwrap()
            .is_empty()
    );
    // Every point is found as its own nearest neighbour through the graph.
    let (all, _) = c.scroll("r", None, 1_000, None, false, true).unwrap();
    for r in all.iter().step_by(7) {
        assert_eq!(nearest(r.vector.as_ref().unwrap()).id, r.id);
    }
    // A new snapshot, then writes again; each reopen replays what came after.
    c.flush().unwrap();
    c.delete_points("r", &Selector::Ids(vec![PointId::Num(5)]))
        .unwrap();
    drop(c);
    let c = Collections::open(&cfg).unwrap();
    assert_eq!(c.count("r", None).unwrap(), 901);
    assert!(
        c.retrieve("r", &[PointId::Num(5)], false, false)
            .unwrap()
            .is_empty()
    );
}
