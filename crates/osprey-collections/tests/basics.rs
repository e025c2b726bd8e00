//! The manager's API on real files: create, upsert, search, retrieve, scroll,
//! count, delete, reopen.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use osprey_collections::{
    CollectionError, CollectionParams, Collections, CollectionsConfig, Distance, Filter, Point,
    PointId, SearchRequest, Selector,
};
use serde_json::json;
use std::time::Duration;

fn config(dir: &tempfile::TempDir) -> CollectionsConfig {
    CollectionsConfig {
        path: dir.path().join("collections"),
        ..CollectionsConfig::default()
    }
}

fn params(size: usize, distance: Distance) -> CollectionParams {
    CollectionParams::new(size, distance)
}

fn point(id: impl Into<PointId>, vector: Vec<f32>, payload: serde_json::Value) -> Point {
    Point {
        id: id.into(),
        vector,
        payload: payload.as_object().cloned().unwrap_or_default(),
    }
}

#[test]
fn create_upsert_search_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let uuid = uuid::Uuid::parse_str("5C56C793-69F3-4FBF-87E6-C4BF54C28C26").unwrap();
    {
        let c = Collections::open(&cfg).unwrap();
        c.create("docs", params(3, Distance::Cosine)).unwrap();
        assert!(matches!(
            c.create("docs", params(3, Distance::Cosine)),
            Err(CollectionError::AlreadyExists(_))
        ));
        let r = c
            .upsert(
                "docs",
                vec![
                    point(1, vec![1.0, 0.0, 0.0], json!({"city": "London"})),
                    point(2, vec![0.0, 2.0, 0.0], json!({"city": "Berlin"})),
                    point(uuid, vec![0.0, 0.0, 3.0], json!({"city": "Paris"})),
                ],
            )
            .unwrap();
        assert_eq!(r.operation_id, 1);
        let hits = c
            .search(
                "docs",
                &SearchRequest {
                    vector: vec![0.0, 1.0, 0.1],
                    limit: 2,
                    with_payload: true,
                    with_vector: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].id, PointId::Num(2));
        assert!(
            (hits[0].score - 0.995_037).abs() < 1e-4,
            "{}",
            hits[0].score
        );
        assert_eq!(hits[0].payload.as_ref().unwrap()["city"], json!("Berlin"));
        // Cosine vectors are stored normalized.
        assert_eq!(hits[0].vector.as_deref(), Some(&[0.0, 1.0, 0.0][..]));
        assert_eq!(hits[0].version, 1);
        // Dropped without flush: an unclean stop.
    }
    let c = Collections::open(&cfg).unwrap();
    assert_eq!(c.list(), vec!["docs".to_string()]);
    let info = c.info("docs").unwrap();
    assert_eq!(info.points_count, 3);
    assert!(c.wait_indexed("docs", Duration::from_secs(30)).unwrap());
    assert_eq!(c.info("docs").unwrap().indexed_vectors_count, 3);
    let recs = c
        .retrieve("docs", &[PointId::Uuid(uuid), PointId::Num(9)], true, false)
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        serde_json::to_value(&recs[0].id).unwrap(),
        json!("5c56c793-69f3-4fbf-87e6-c4bf54c28c26")
    );
    let f = Filter::from_value(
        &json!({"must": [{"key": "city", "match": {"any": ["London", "Paris"]}}]}),
    )
    .unwrap();
    assert_eq!(c.count("docs", Some(&f)).unwrap(), 2);
    let (page, next) = c.scroll("docs", None, 2, None, false, false).unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![PointId::Num(1), PointId::Num(2)]
    );
    assert_eq!(next, Some(PointId::Uuid(uuid)));
    let d = c
        .delete_points("docs", &Selector::Ids(vec![PointId::Num(1)]))
        .unwrap();
    assert_eq!(d.operation_id, 2);
    assert_eq!(c.count("docs", None).unwrap(), 2);
    assert!(c.delete("docs").unwrap());
    assert!(!c.delete("docs").unwrap());
    assert!(c.list().is_empty());
    drop(c);
    let c = Collections::open(&cfg).unwrap();
    assert!(c.list().is_empty());
    assert!(matches!(c.info("docs"), Err(CollectionError::NotFound(_))));
}

#[test]
fn the_manager_is_shared_across_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Collections>();
    shared::<std::sync::Arc<Collections>>();
}
