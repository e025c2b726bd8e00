//! What a client can get wrong is refused with the right client error, and
//! leaves nothing behind.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use osprey_collections::{
    CollectionError, CollectionParams, Collections, CollectionsConfig, Distance, Filter, Point,
    PointId, SearchRequest, Selector,
};
use serde_json::json;
use support::*;

fn small_limits(dir: &tempfile::TempDir) -> CollectionsConfig {
    CollectionsConfig {
        path: dir.path().join("c"),
        max_collections: 3,
        max_points_per_request: 10,
        max_payload_bytes: 100,
        max_vector_size: 64,
        ..CollectionsConfig::default()
    }
}

fn p(id: u64, vector: Vec<f32>) -> Point {
    Point {
        id: PointId::Num(id),
        vector,
        payload: Default::default(),
    }
}

fn client_error<T: std::fmt::Debug>(r: Result<T, CollectionError>) -> CollectionError {
    let e = r.expect_err("expected an error");
    assert!(e.is_client_error(), "{e:?} should be a client error");
    e
}

#[test]
fn bad_points_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&small_limits(&dir)).unwrap();
    c.create("v", params(4, Distance::Cosine)).unwrap();

    let e = client_error(c.upsert("v", vec![p(1, vec![1.0; 4]), p(2, vec![1.0; 5])]));
    assert!(
        matches!(
            e,
            CollectionError::WrongVectorSize {
                expected: 4,
                got: 5
            }
        ),
        "{e:?}"
    );
    let e = client_error(c.upsert("v", vec![p(1, vec![])]));
    assert!(matches!(
        e,
        CollectionError::WrongVectorSize {
            expected: 4,
            got: 0
        }
    ));
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = client_error(c.upsert("v", vec![p(1, vec![1.0, bad, 0.0, 0.0])]));
        assert!(matches!(e, CollectionError::NonFinite), "{e:?}");
    }
    let many: Vec<Point> = (0..11).map(|i| p(i, vec![1.0; 4])).collect();
    let e = client_error(c.upsert("v", many));
    assert!(matches!(
        e,
        CollectionError::TooManyPoints { max: 10, got: 11 }
    ));
    let big = Point {
        id: PointId::Num(1),
        vector: vec![1.0; 4],
        payload: json!({"text": "x".repeat(200)})
            .as_object()
            .cloned()
            .unwrap(),
    };
    let e = client_error(c.upsert("v", vec![big]));
    assert!(
        matches!(e, CollectionError::PayloadTooLarge { max: 100, got } if got > 200),
        "{e:?}"
    );
    // None of the refused requests wrote anything.
    assert_eq!(c.count("v", None).unwrap(), 0);
    assert_eq!(
        c.upsert("v", vec![p(1, vec![1.0; 4])])
            .unwrap()
            .operation_id,
        1
    );

    // Searches.
    let search = |req: SearchRequest| c.search("v", &req);
    let e = client_error(search(SearchRequest {
        vector: vec![1.0; 3],
        ..Default::default()
    }));
    assert!(matches!(e, CollectionError::WrongVectorSize { .. }));
    let e = client_error(search(SearchRequest {
        vector: vec![f32::NAN; 4],
        ..Default::default()
    }));
    assert!(matches!(e, CollectionError::NonFinite));
    let e = client_error(search(SearchRequest {
        vector: vec![1.0; 4],
        limit: 0,
        ..Default::default()
    }));
    assert!(matches!(e, CollectionError::BadRequest(_)));
    let e = client_error(search(SearchRequest {
        vector: vec![1.0; 4],
        score_threshold: Some(f32::NAN),
        ..Default::default()
    }));
    assert!(matches!(e, CollectionError::BadRequest(_)));
    // Huge limit, offset and ef are fine: bounded by the collection.
    let hits = search(SearchRequest {
        vector: vec![1.0; 4],
        limit: usize::MAX,
        offset: 0,
        ef: Some(usize::MAX),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(hits.len(), 1);
    let hits = search(SearchRequest {
        vector: vec![1.0; 4],
        limit: 5,
        offset: usize::MAX,
        ..Default::default()
    })
    .unwrap();
    assert!(hits.is_empty());
    // A zero vector is accepted (its cosine scores are 0).
    let hits = search(SearchRequest {
        vector: vec![0.0; 4],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(hits[0].score, 0.0);

    let ids: Vec<PointId> = (0..11).map(PointId::Num).collect();
    let e = client_error(c.retrieve("v", &ids, true, true));
    assert!(matches!(e, CollectionError::TooManyPoints { .. }));
    let e = client_error(c.delete_points("v", &Selector::Ids(ids)));
    assert!(matches!(e, CollectionError::TooManyPoints { .. }));
    let e = client_error(c.scroll("v", None, 0, None, false, false));
    assert!(matches!(e, CollectionError::BadRequest(_)));
    // A scroll page larger than the request limit is cut, with the next offset.
    let many: Vec<Point> = (0..10).map(|i| p(i + 10, vec![1.0; 4])).collect();
    c.upsert("v", many).unwrap();
    let (page, next) = c.scroll("v", None, 1_000_000, None, false, false).unwrap();
    assert_eq!((page.len(), next), (10, Some(PointId::Num(19))));
}

#[test]
fn bad_collections_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_limits(&dir);
    let c = Collections::open(&cfg).unwrap();
    for name in [
        "",
        ".",
        "..",
        "a/b",
        "/",
        "tab\there",
        "nul\0",
        "new\nline",
        &"x".repeat(256),
    ] {
        let e = client_error(c.create(name, params(4, Distance::Dot)));
        assert!(
            matches!(e, CollectionError::InvalidName(_)),
            "{name:?}: {e:?}"
        );
    }
    for size in [0, 65] {
        let e = client_error(c.create("s", params(size, Distance::Dot)));
        assert!(matches!(e, CollectionError::BadRequest(_)), "{size}: {e:?}");
    }
    c.create(&"é".repeat(255), params(4, Distance::Dot))
        .unwrap();
    c.create("a", params(4, Distance::Dot)).unwrap();
    let e = client_error(c.create("a", params(4, Distance::Dot)));
    assert!(matches!(e, CollectionError::AlreadyExists(_)));
    c.create(
        "b",
        CollectionParams {
            model: Some("m@1".into()),
            ..CollectionParams::new(64, Distance::Euclid)
        },
    )
    .unwrap();
    let e = client_error(c.create("d", params(4, Distance::Dot)));
    assert!(matches!(e, CollectionError::TooMany { max: 3 }));
    assert_eq!(c.info("b").unwrap().params.model.as_deref(), Some("m@1"));

    let missing = "nope";
    assert!(matches!(
        client_error(c.info(missing)),
        CollectionError::NotFound(_)
    ));
    assert!(matches!(
        client_error(c.upsert(missing, vec![])),
        CollectionError::NotFound(_)
    ));
    assert!(matches!(
        client_error(c.search(
            missing,
            &SearchRequest {
                vector: vec![1.0; 4],
                ..Default::default()
            }
        )),
        CollectionError::NotFound(_)
    ));
    assert!(matches!(
        client_error(c.count(missing, None)),
        CollectionError::NotFound(_)
    ));
    assert!(!c.delete(missing).unwrap());
    // Only the three collections are on disk.
    drop(c);
    assert_eq!(std::fs::read_dir(&cfg.path).unwrap().count(), 3);
    let c = Collections::open(&cfg).unwrap();
    assert_eq!(c.list().len(), 3);
}

#[test]
fn malformed_filters_and_ids_are_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collections::open(&small_limits(&dir)).unwrap();
    c.create("f", params(2, Distance::Dot)).unwrap();
    for text in [
        "not json",
        "[]",
        r#"{"must": "x"}"#,
        r#"{"must": [{"key": "a", "match": {"value": null}}]}"#,
        r#"{"must": [{"key": "a", "match": {"any": [true]}}]}"#,
        r#"{"must": [{"key": "a", "range": {"gt": "2024-01-01"}}]}"#,
        r#"{"must": [{"key": "a", "range": 5}]}"#,
        r#"{"must": [{"has_id": "1"}]}"#,
        r#"{"must": [{"has_id": [1.5]}]}"#,
        r#"{"filter": {}}"#,
        r#"{"must": [{"key": "a", "match": {"value": 1}, "range": {"gt": 1}, "bogus": 1}]}"#,
    ] {
        let e = client_error(Filter::from_json(text));
        assert!(matches!(e, CollectionError::BadFilter(_)), "{text}: {e:?}");
        assert!(serde_json::from_str::<Filter>(text).is_err(), "{text}");
    }
    // Deep nesting is refused by the JSON parser, not by a stack overflow.
    let deep = format!("{}{}", r#"{"must": ["#.repeat(5_000), "]}".repeat(5_000));
    assert!(Filter::from_json(&deep).is_err());

    for bad in [
        "-1",
        "1.5",
        "\"abc\"",
        "\"5c56c793-69f3-4fbf-87e6\"",
        "null",
        "[1]",
        "18446744073709551616",
    ] {
        assert!(serde_json::from_str::<PointId>(bad).is_err(), "{bad}");
    }
    for (text, id) in [
        ("7", PointId::Num(7)),
        (
            "\"5C56C79369F34FBF87E6C4BF54C28C26\"",
            "5c56c793-69f3-4fbf-87e6-c4bf54c28c26".parse().unwrap(),
        ),
        (
            "\"{5c56c793-69f3-4fbf-87e6-c4bf54c28c26}\"",
            "5c56c793-69f3-4fbf-87e6-c4bf54c28c26".parse().unwrap(),
        ),
        (
            "\"urn:uuid:5c56c793-69f3-4fbf-87e6-c4bf54c28c26\"",
            "5c56c793-69f3-4fbf-87e6-c4bf54c28c26".parse().unwrap(),
        ),
    ] {
        let parsed: PointId = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, id);
    }
    assert_eq!(
        serde_json::to_string(&PointId::Uuid(uuid::Uuid::from_u128(0xABCD))).unwrap(),
        "\"00000000-0000-0000-0000-00000000abcd\""
    );
    // Points arrive as JSON too.
    let point: Point =
        serde_json::from_value(json!({"id": 3, "vector": [1.0, 2.0], "payload": null})).unwrap();
    assert!(point.payload.is_empty());
    assert!(serde_json::from_value::<Point>(json!({"id": 3, "vector": [1.0, "x"]})).is_err());
    assert!(
        serde_json::from_value::<Point>(json!({"id": 3, "vector": [1.0], "payload": [1]})).is_err()
    );
    c.upsert("f", vec![point]).unwrap();
}
