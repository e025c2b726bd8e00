use serde_json::json;

use super::*;

fn payload(v: Value) -> Payload {
    v.as_object().cloned().unwrap_or_default()
}

fn check(filter: Value, id: u64, p: Value) -> bool {
    let f = Filter::from_value(&filter).unwrap();
    Compiled::new(&f)
        .unwrap()
        .matches(&PointId::Num(id), &payload(p))
}

fn err(filter: Value) -> String {
    match Filter::from_value(&filter) {
        Err(CollectionError::BadFilter(m)) => m,
        other => panic!("expected a BadFilter error for {filter}, got {other:?}"),
    }
}

#[test]
fn qdrant_clauses() {
    let london_red = json!({"city": "London", "color": "red"});
    let must = json!({"must": [
        {"key": "city", "match": {"value": "London"}},
        {"key": "color", "match": {"value": "red"}}
    ]});
    assert!(check(must.clone(), 2, london_red.clone()));
    assert!(!check(must, 1, json!({"city": "London", "color": "green"})));

    let should = json!({"should": [
        {"key": "city", "match": {"value": "London"}},
        {"key": "color", "match": {"value": "red"}}
    ]});
    assert!(check(
        should.clone(),
        4,
        json!({"city": "Berlin", "color": "red"})
    ));
    assert!(!check(
        should,
        5,
        json!({"city": "Moscow", "color": "green"})
    ));

    let must_not = json!({"must_not": [{"key": "city", "match": {"value": "London"}}]});
    assert!(!check(must_not.clone(), 1, london_red.clone()));
    assert!(check(must_not, 4, json!({"city": "Berlin"})));

    let min_should = json!({"min_should": {"min_count": 2, "conditions": [
        {"key": "city", "match": {"value": "London"}},
        {"key": "color", "match": {"value": "red"}},
        {"key": "size", "range": {"gt": 3}}
    ]}});
    assert!(check(min_should.clone(), 1, london_red.clone()));
    assert!(!check(
        min_should,
        1,
        json!({"city": "London", "color": "blue"})
    ));

    // A nested filter as a condition; a single condition instead of an array.
    let nested = json!({"must": {"should": [
        {"key": "city", "match": {"value": "Berlin"}},
        {"must_not": {"key": "color", "match": {"value": "red"}}}
    ]}});
    assert!(check(
        nested.clone(),
        1,
        json!({"city": "London", "color": "green"})
    ));
    assert!(!check(nested, 1, london_red.clone()));

    // Empty filters and empty clauses match everything.
    assert!(check(json!({}), 1, json!({})));
    assert!(check(
        json!({"must": [], "should": [], "must_not": null}),
        1,
        json!({})
    ));
}

#[test]
fn matches_and_ranges() {
    let p = json!({"n": 5, "f": 2.5, "b": true, "s": "hello world", "tags": ["a", "b"],
                   "meta": {"city": "Paris", "ids": [1, 2, 3]}});
    let yes = |f: Value| assert!(check(f.clone(), 1, p.clone()), "{f}");
    let no = |f: Value| assert!(!check(f.clone(), 1, p.clone()), "{f}");
    yes(json!({"must": [{"key": "n", "match": {"value": 5}}]}));
    no(json!({"must": [{"key": "n", "match": {"value": 6}}]}));
    no(json!({"must": [{"key": "n", "match": {"value": "5"}}]}));
    yes(json!({"must": [{"key": "b", "match": {"value": true}}]}));
    no(json!({"must": [{"key": "b", "match": {"value": false}}]}));
    yes(json!({"must": [{"key": "s", "match": {"text": "lo wo"}}]}));
    // Arrays: any element.
    yes(json!({"must": [{"key": "tags", "match": {"value": "b"}}]}));
    yes(json!({"must": [{"key": "tags", "match": {"any": ["x", "a"]}}]}));
    no(json!({"must": [{"key": "tags", "match": {"any": ["x", "y"]}}]}));
    yes(json!({"must": [{"key": "tags[]", "match": {"value": "a"}}]}));
    yes(json!({"must": [{"key": "meta.ids", "match": {"any": [3, 4]}}]}));
    yes(json!({"must": [{"key": "meta.ids[1]", "match": {"value": 2}}]}));
    no(json!({"must": [{"key": "meta.ids[0]", "match": {"value": 2}}]}));
    // Except: some element outside the list; a missing field never matches.
    yes(json!({"must": [{"key": "tags", "match": {"except": ["a"]}}]}));
    no(json!({"must": [{"key": "tags", "match": {"except": ["a", "b"]}}]}));
    no(json!({"must": [{"key": "missing", "match": {"except": ["a"]}}]}));
    yes(json!({"must": [{"key": "n", "match": {"except": [1, 2]}}]}));
    // Dotted keys.
    yes(json!({"must": [{"key": "meta.city", "match": {"value": "Paris"}}]}));
    no(json!({"must": [{"key": "meta.town", "match": {"value": "Paris"}}]}));
    // Ranges on integers and floats, bounds exclusive and inclusive.
    yes(json!({"must": [{"key": "n", "range": {"gte": 5, "lt": 6}}]}));
    no(json!({"must": [{"key": "n", "range": {"gt": 5}}]}));
    yes(json!({"must": [{"key": "f", "range": {"gt": 2.0, "lte": 2.5}}]}));
    yes(json!({"must": [{"key": "meta.ids", "range": {"gte": 3}}]}));
    no(json!({"must": [{"key": "s", "range": {"gte": 0}}]}));
    no(json!({"must": [{"key": "missing", "range": {"gte": 0}}]}));
    // values_count.
    yes(json!({"must": [{"key": "tags", "values_count": {"gte": 2}}]}));
    no(json!({"must": [{"key": "tags", "values_count": {"gt": 2}}]}));
}

#[test]
fn ids_empty_null_and_nested_objects() {
    let f = json!({"must": [{"has_id": [1, 3, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]}]});
    assert!(check(f.clone(), 3, json!({})));
    assert!(!check(f, 2, json!({})));

    let empty = json!({"must": [{"is_empty": {"key": "tags"}}]});
    assert!(check(empty.clone(), 1, json!({})));
    assert!(check(empty.clone(), 1, json!({"tags": []})));
    assert!(check(empty.clone(), 1, json!({"tags": null})));
    assert!(!check(empty.clone(), 1, json!({"tags": ["a"]})));
    assert!(!check(empty, 1, json!({"tags": [null]})));

    let null = json!({"must": [{"is_null": {"key": "x"}}]});
    assert!(check(null.clone(), 1, json!({"x": null})));
    assert!(check(null.clone(), 1, json!({"x": [1, null]})));
    assert!(!check(null.clone(), 1, json!({})));
    assert!(!check(null, 1, json!({"x": 0})));

    // Field-condition forms of is_empty / is_null.
    assert!(check(
        json!({"must": [{"key": "x", "is_empty": true}]}),
        1,
        json!({})
    ));
    assert!(check(
        json!({"must": [{"key": "x", "is_empty": false}]}),
        1,
        json!({"x": 1})
    ));
    assert!(check(
        json!({"must": [{"key": "x", "is_null": false}]}),
        1,
        json!({"x": 1})
    ));

    // Arrays of objects: a dotted key looks into every element; `nested` needs
    // one element to satisfy the whole filter.
    let p = json!({"diet": [
        {"food": "meat", "likes": false},
        {"food": "leaves", "likes": true}
    ]});
    let flat = json!({"must": [
        {"key": "diet[].food", "match": {"value": "meat"}},
        {"key": "diet[].likes", "match": {"value": true}}
    ]});
    assert!(check(flat, 1, p.clone()));
    assert!(check(
        json!({"must": [{"key": "diet.food", "match": {"value": "leaves"}}]}),
        1,
        p.clone()
    ));
    let nested = json!({"must": [{"nested": {"key": "diet", "filter": {"must": [
        {"key": "food", "match": {"value": "meat"}},
        {"key": "likes", "match": {"value": true}}
    ]}}}]});
    assert!(!check(nested, 1, p.clone()));
    let nested = json!({"must": [{"nested": {"key": "diet", "filter": {"must": [
        {"key": "food", "match": {"value": "leaves"}},
        {"key": "likes", "match": {"value": true}}
    ]}}}]});
    assert!(check(nested, 1, p));
}

#[test]
fn malformed_filters_are_named() {
    assert!(err(json!([])).contains("object"));
    assert!(err(json!({"must": [{"key": "a"}]})).contains("nothing to check"));
    assert!(err(json!({"musts": []})).contains("unknown field `musts`"));
    assert!(err(json!({"must": 3})).contains("must"));
    assert!(err(json!({"must": [{"key": 1, "match": {"value": 1}}]})).contains("string"));
    assert!(err(json!({"must": [{"key": "a", "match": {"value": 1.5}}]})).contains("integer"));
    assert!(err(json!({"must": [{"key": "a", "match": {"value": [1]}}]})).contains("match.value"));
    assert!(err(json!({"must": [{"key": "a", "match": {"any": [1, "x"]}}]})).contains("only"));
    assert!(
        err(json!({"must": [{"key": "a", "match": {"value": 1, "any": [1]}}]}))
            .contains("exactly one")
    );
    assert!(err(json!({"must": [{"key": "a", "match": {"like": "x"}}]})).contains("unknown match"));
    assert!(err(json!({"must": [{"key": "a", "range": {"gte": "x"}}]})).contains("datetime"));
    assert!(err(json!({"must": [{"key": "a", "range": {"from": 1}}]})).contains("range"));
    assert!(
        err(json!({"must": [{"key": "a", "match": {"value": 1}, "extra": 1}]})).contains("extra")
    );
    assert!(err(json!({"must": [{"has_id": ["not-a-uuid"]}]})).contains("has_id"));
    assert!(err(json!({"must": [{"has_id": [-1]}]})).contains("has_id"));
    assert!(err(json!({"must": [{"key": "", "match": {"value": 1}}]})).contains("empty"));
    assert!(
        err(json!({"must": [{"key": "a..b", "match": {"value": 1}}]})).contains("empty segment")
    );
    assert!(err(json!({"must": [{"key": "a[x]", "match": {"value": 1}}]})).contains("index"));
    assert!(err(json!({"must": [{"key": "a[", "match": {"value": 1}}]})).contains("unclosed"));
    assert!(err(json!({"must": [{"key": "g", "geo_radius": {}}]})).contains("not supported"));
    assert!(err(json!({"must": [{"foo": 1}]})).contains("unknown condition"));
    assert!(err(json!({"min_should": {"conditions": []}})).contains("min_count"));
    assert!(err(json!({"must": [{"nested": {"key": "a"}}]})).contains("filter"));
    assert!(matches!(
        Filter::from_json("{\"must\": ["),
        Err(CollectionError::BadFilter(_))
    ));
    // Through serde, as a request body would be read.
    let e = serde_json::from_value::<Filter>(json!({"must": [{"key": "a"}]})).unwrap_err();
    assert!(e.to_string().contains("nothing to check"));
}

#[test]
fn filters_serialize_back_to_qdrant_json() {
    let v = json!({"must": [
        {"key": "a", "match": {"value": "x"}},
        {"key": "b", "range": {"gte": 1.0}},
        {"has_id": [1, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]},
        {"is_empty": {"key": "c"}},
        {"nested": {"key": "d", "filter": {"must": [{"key": "e", "match": {"any": [1, 2]}}]}}},
        {"should": [{"key": "f", "match": {"except": ["y"]}}]}
    ]});
    let f = Filter::from_value(&v).unwrap();
    assert_eq!(serde_json::to_value(&f).unwrap(), v);
}
