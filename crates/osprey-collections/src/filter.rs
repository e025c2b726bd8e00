//! Payload filters in Qdrant's JSON: `must`, `should`, `must_not` and `min_should`
//! clauses over field conditions (`match`, `range`, `values_count`, `is_empty`,
//! `is_null`), `has_id`, `is_empty`, `is_null`, `nested` and nested filters.
//!
//! Semantics follow Qdrant's: a key is a dotted path (`meta.city`, `tags[]`,
//! `items[0].name`), arrays met on the way are walked through, and a field
//! condition holds when any value found (or any element of an array value)
//! satisfies it; a missing field satisfies no `match` or `range`.
//!
//! Parsing goes through [`Filter::from_value`], which names what is wrong; the
//! `Deserialize` impl uses it, so a filter inside a request body is checked the
//! same way.

use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::CollectionError;
use crate::point::{Payload, PointId};

/// A boolean combination of conditions. An empty filter matches every point.
#[derive(Serialize, Clone, PartialEq, Debug, Default)]
pub struct Filter {
    /// All must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub must: Option<Vec<Condition>>,
    /// At least one must hold (when the list is not empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub should: Option<Vec<Condition>>,
    /// None may hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub must_not: Option<Vec<Condition>>,
    /// At least `min_count` of `conditions` must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_should: Option<MinShould>,
}

#[derive(Serialize, Clone, PartialEq, Debug)]
pub struct MinShould {
    pub conditions: Vec<Condition>,
    pub min_count: usize,
}

/// One condition of a clause.
#[derive(Serialize, Clone, PartialEq, Debug)]
#[serde(untagged)]
pub enum Condition {
    Field(FieldCondition),
    HasId(HasIdCondition),
    IsEmpty(IsEmptyCondition),
    IsNull(IsNullCondition),
    Nested(NestedCondition),
    Filter(Filter),
}

/// A condition on the values at `key`. When several tests are given, a value
/// satisfies the condition if it passes any of them (as in Qdrant).
#[derive(Serialize, Clone, PartialEq, Debug)]
pub struct FieldCondition {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Match>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_count: Option<ValuesCount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_empty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_null: Option<bool>,
}

/// Matches points whose id is one of these.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct HasIdCondition {
    pub has_id: Vec<PointId>,
}

/// Matches points where `key` is missing, null or an empty array.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct IsEmptyCondition {
    pub is_empty: PayloadField,
}

/// Matches points where `key` is null (or an array holding a null).
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct IsNullCondition {
    pub is_null: PayloadField,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct PayloadField {
    pub key: String,
}

/// Matches points where one element of the array of objects at `key` satisfies
/// the whole `filter` (keys in it are relative to the element).
#[derive(Serialize, Clone, PartialEq, Debug)]
pub struct NestedCondition {
    pub nested: Nested,
}

#[derive(Serialize, Clone, PartialEq, Debug)]
pub struct Nested {
    pub key: String,
    pub filter: Filter,
}

/// A match on a value: `{"value": ..}`, `{"any": [..]}`, `{"except": [..]}`,
/// `{"text": ".."}` (substring).
#[derive(Serialize, Clone, PartialEq, Debug)]
#[serde(untagged)]
pub enum Match {
    Value { value: MatchValue },
    Any { any: AnyVariants },
    Except { except: AnyVariants },
    Text { text: String },
}

/// The value a `match` compares with: a keyword, an integer or a boolean.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
#[serde(untagged)]
pub enum MatchValue {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

/// The list of `any` or `except`: keywords or integers, not mixed.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
#[serde(untagged)]
pub enum AnyVariants {
    Keywords(Vec<String>),
    Integers(Vec<i64>),
}

/// Bounds on a number (integers and floats alike).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

/// Bounds on how many values a field holds (an array's length; 1 for a scalar).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ValuesCount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<usize>,
}

// ---------------------------------------------------------------------------
// Parsing

fn bad(msg: impl Into<String>) -> CollectionError {
    CollectionError::BadFilter(msg.into())
}

fn as_object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, CollectionError> {
    v.as_object()
        .ok_or_else(|| bad(format!("{what} must be an object")))
}

impl Filter {
    /// Parses a filter from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, CollectionError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        Self::from_value(&v)
    }

    /// Parses a filter from a JSON value, naming what is wrong.
    pub fn from_value(v: &Value) -> Result<Self, CollectionError> {
        let obj = as_object(v, "a filter")?;
        let mut filter = Filter::default();
        for (k, v) in obj {
            match k.as_str() {
                "must" => filter.must = conditions(v, "must")?,
                "should" => filter.should = conditions(v, "should")?,
                "must_not" => filter.must_not = conditions(v, "must_not")?,
                "min_should" => {
                    if v.is_null() {
                        continue;
                    }
                    let o = as_object(v, "min_should")?;
                    let mut conds = None;
                    let mut min_count = None;
                    for (k, v) in o {
                        match k.as_str() {
                            "conditions" => conds = conditions(v, "min_should.conditions")?,
                            "min_count" => {
                                min_count = Some(
                                    v.as_u64()
                                        .and_then(|n| usize::try_from(n).ok())
                                        .ok_or_else(|| {
                                            bad("min_should.min_count must be an unsigned integer")
                                        })?,
                                )
                            }
                            other => {
                                return Err(bad(format!("unknown field `{other}` in min_should")));
                            }
                        }
                    }
                    filter.min_should = Some(MinShould {
                        conditions: conds.ok_or_else(|| bad("min_should needs `conditions`"))?,
                        min_count: min_count.ok_or_else(|| bad("min_should needs `min_count`"))?,
                    });
                }
                other => {
                    return Err(bad(format!(
                        "unknown field `{other}` in filter (expected must, should, must_not, min_should)"
                    )));
                }
            }
        }
        Ok(filter)
    }
}

/// A clause: null, one condition or an array of them.
fn conditions(v: &Value, what: &str) -> Result<Option<Vec<Condition>>, CollectionError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(Condition::from_value)
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Value::Object(_) => Ok(Some(vec![Condition::from_value(v)?])),
        _ => Err(bad(format!(
            "`{what}` must be a condition or an array of conditions"
        ))),
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T, CollectionError> {
    T::deserialize(v).map_err(|e| bad(format!("{what}: {e}")))
}

impl Condition {
    /// Parses one condition, telling its kind by its fields.
    pub fn from_value(v: &Value) -> Result<Self, CollectionError> {
        let obj = as_object(v, "a condition")?;
        if obj.contains_key("key") {
            return field_condition(obj).map(Condition::Field);
        }
        if obj.contains_key("has_id") {
            return typed(v, "has_id condition").map(Condition::HasId);
        }
        if obj.contains_key("is_empty") {
            return typed(v, "is_empty condition").map(Condition::IsEmpty);
        }
        if obj.contains_key("is_null") {
            return typed(v, "is_null condition").map(Condition::IsNull);
        }
        if let Some(nested) = obj.get("nested") {
            if obj.len() != 1 {
                return Err(bad("a nested condition has only the field `nested`"));
            }
            let n = as_object(nested, "nested")?;
            let mut key = None;
            let mut filter = None;
            for (k, v) in n {
                match k.as_str() {
                    "key" => {
                        key = Some(
                            v.as_str()
                                .ok_or_else(|| bad("nested.key must be a string"))?
                                .to_string(),
                        )
                    }
                    "filter" => filter = Some(Filter::from_value(v)?),
                    other => return Err(bad(format!("unknown field `{other}` in nested"))),
                }
            }
            let key = key.ok_or_else(|| bad("nested needs `key`"))?;
            parse_path(&key)?;
            return Ok(Condition::Nested(NestedCondition {
                nested: Nested {
                    key,
                    filter: filter.ok_or_else(|| bad("nested needs `filter`"))?,
                },
            }));
        }
        if obj.contains_key("has_vector") {
            return Err(bad(
                "has_vector conditions are not supported (collections have one vector)",
            ));
        }
        if obj.is_empty()
            || obj
                .keys()
                .all(|k| matches!(k.as_str(), "must" | "should" | "must_not" | "min_should"))
        {
            return Filter::from_value(v).map(Condition::Filter);
        }
        let names: Vec<&str> = obj.keys().map(String::as_str).collect();
        Err(bad(format!("unknown condition with fields {names:?}")))
    }
}

fn field_condition(obj: &Map<String, Value>) -> Result<FieldCondition, CollectionError> {
    let mut cond = FieldCondition {
        key: String::new(),
        r#match: None,
        range: None,
        values_count: None,
        is_empty: None,
        is_null: None,
    };
    let mut has_key = false;
    for (k, v) in obj {
        match k.as_str() {
            "key" => {
                cond.key = v
                    .as_str()
                    .ok_or_else(|| bad("a condition's `key` must be a string"))?
                    .to_string();
                has_key = true;
            }
            "match" => {
                cond.r#match = if v.is_null() {
                    None
                } else {
                    Some(parse_match(v)?)
                }
            }
            "range" => {
                if let Some(o) = v.as_object()
                    && o.values().any(Value::is_string)
                {
                    return Err(bad("datetime ranges are not supported; use numbers"));
                }
                cond.range = typed(v, "range")?;
            }
            "values_count" => cond.values_count = typed(v, "values_count")?,
            "is_empty" => cond.is_empty = typed(v, "is_empty")?,
            "is_null" => cond.is_null = typed(v, "is_null")?,
            "geo_bounding_box" | "geo_radius" | "geo_polygon" => {
                return Err(bad(format!("`{k}` conditions are not supported")));
            }
            other => return Err(bad(format!("unknown field `{other}` in a field condition"))),
        }
    }
    if !has_key {
        return Err(bad("a field condition needs `key`"));
    }
    parse_path(&cond.key)?;
    if cond.r#match.is_none()
        && cond.range.is_none()
        && cond.values_count.is_none()
        && cond.is_empty.is_none()
        && cond.is_null.is_none()
    {
        return Err(bad(format!(
            "the condition on `{}` has nothing to check (match, range, values_count, is_empty or is_null)",
            cond.key
        )));
    }
    Ok(cond)
}

fn parse_match(v: &Value) -> Result<Match, CollectionError> {
    let obj = as_object(v, "match")?;
    if obj.len() != 1 {
        return Err(bad(
            "match takes exactly one of `value`, `any`, `except`, `text`",
        ));
    }
    let Some((k, v)) = obj.iter().next() else {
        return Err(bad("empty match"));
    };
    match k.as_str() {
        "value" => {
            Ok(Match::Value {
                value: match v {
                    Value::String(s) => MatchValue::Keyword(s.clone()),
                    Value::Bool(b) => MatchValue::Bool(*b),
                    Value::Number(n) => MatchValue::Integer(n.as_i64().ok_or_else(|| {
                        bad("match.value must be a string, an integer or a boolean")
                    })?),
                    _ => return Err(bad("match.value must be a string, an integer or a boolean")),
                },
            })
        }
        "any" => Ok(Match::Any {
            any: any_variants(v, "any")?,
        }),
        "except" => Ok(Match::Except {
            except: any_variants(v, "except")?,
        }),
        "text" => Ok(Match::Text {
            text: v
                .as_str()
                .ok_or_else(|| bad("match.text must be a string"))?
                .to_string(),
        }),
        other => Err(bad(format!("unknown match `{other}`"))),
    }
}

fn any_variants(v: &Value, what: &str) -> Result<AnyVariants, CollectionError> {
    let items = v
        .as_array()
        .ok_or_else(|| bad(format!("match.{what} must be an array")))?;
    if items.iter().all(Value::is_string) {
        return Ok(AnyVariants::Keywords(
            items
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ));
    }
    items
        .iter()
        .map(|x| x.as_i64())
        .collect::<Option<Vec<i64>>>()
        .map(AnyVariants::Integers)
        .ok_or_else(|| {
            bad(format!(
                "match.{what} must hold only strings or only integers"
            ))
        })
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Filter::from_value(&v).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Condition::from_value(&v).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Paths

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    /// `[]`: the elements of an array.
    All,
}

fn parse_path(key: &str) -> Result<Vec<Segment>, CollectionError> {
    if key.is_empty() {
        return Err(bad("an empty key"));
    }
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() && (out.is_empty() || rest.is_empty()) {
            return Err(bad(format!("bad key `{key}`: empty segment")));
        }
        if !name.is_empty() {
            out.push(Segment::Key(name.to_string()));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| bad(format!("bad key `{key}`: unclosed `[`")))?;
            let inner = &rest[1..close];
            if inner.is_empty() {
                out.push(Segment::All);
            } else {
                let i = inner
                    .parse::<usize>()
                    .map_err(|_| bad(format!("bad key `{key}`: `[{inner}]` is not an index")))?;
                out.push(Segment::Index(i));
            }
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(bad(format!("bad key `{key}`: text after `]`")));
            }
        }
    }
    Ok(out)
}

/// Calls `f` with each value at `path` in `root` (walking through arrays of
/// objects on the way) until it returns true; returns whether it did. No
/// allocation: this runs for every point a filtered search looks at.
fn any_at(root: &Map<String, Value>, path: &[Segment], f: &mut dyn FnMut(&Value) -> bool) -> bool {
    let Some((Segment::Key(k), rest)) = path.split_first() else {
        return false;
    };
    root.get(k).is_some_and(|v| descend(v, rest, f))
}

fn descend(v: &Value, path: &[Segment], f: &mut dyn FnMut(&Value) -> bool) -> bool {
    let Some((seg, rest)) = path.split_first() else {
        return f(v);
    };
    match (seg, v) {
        (Segment::Key(k), Value::Object(o)) => o.get(k).is_some_and(|x| descend(x, rest, f)),
        (Segment::Key(_), Value::Array(items)) => {
            items.iter().any(|x| x.is_object() && descend(x, path, f))
        }
        (Segment::Index(i), Value::Array(items)) => {
            items.get(*i).is_some_and(|x| descend(x, rest, f))
        }
        (Segment::All, Value::Array(items)) => items.iter().any(|x| descend(x, rest, f)),
        _ => false,
    }
}

fn is_emptyish(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Evaluation: a filter compiled once per request (paths split, lists hashed).

/// A filter ready to test points with.
#[derive(Debug)]
pub(crate) struct Compiled {
    must: Vec<Check>,
    should: Vec<Check>,
    must_not: Vec<Check>,
    min_should: Option<(Vec<Check>, usize)>,
}

#[derive(Debug)]
enum Check {
    Field {
        path: Vec<Segment>,
        matcher: Option<Matcher>,
        range: Option<Range>,
        values_count: Option<ValuesCount>,
        is_empty: Option<bool>,
        is_null: Option<bool>,
    },
    HasId(HashSet<PointId>),
    IsEmpty(Vec<Segment>),
    IsNull(Vec<Segment>),
    Nested(Vec<Segment>, Box<Compiled>),
    Filter(Box<Compiled>),
}

#[derive(Debug)]
enum Matcher {
    Keyword(String),
    Integer(i64),
    Bool(bool),
    AnyKeywords(HashSet<String>),
    AnyIntegers(HashSet<i64>),
    ExceptKeywords(HashSet<String>),
    ExceptIntegers(HashSet<i64>),
    Text(String),
}

impl Compiled {
    pub(crate) fn new(filter: &Filter) -> Result<Self, CollectionError> {
        let list = |c: &Option<Vec<Condition>>| -> Result<Vec<Check>, CollectionError> {
            c.iter().flatten().map(Check::new).collect()
        };
        Ok(Self {
            must: list(&filter.must)?,
            should: list(&filter.should)?,
            must_not: list(&filter.must_not)?,
            min_should: match &filter.min_should {
                Some(m) => Some((
                    m.conditions
                        .iter()
                        .map(Check::new)
                        .collect::<Result<_, _>>()?,
                    m.min_count,
                )),
                None => None,
            },
        })
    }

    /// Whether the point with this id and payload passes.
    pub(crate) fn matches(&self, id: &PointId, payload: &Payload) -> bool {
        self.must.iter().all(|c| c.holds(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.holds(id, payload)))
            && !self.must_not.iter().any(|c| c.holds(id, payload))
            && self.min_should.as_ref().is_none_or(|(conds, min)| {
                conds
                    .iter()
                    .filter(|c| c.holds(id, payload))
                    .take(*min)
                    .count()
                    >= *min
            })
    }

    /// True when the filter has no condition at all (every point passes).
    pub(crate) fn is_empty(&self) -> bool {
        self.must.is_empty()
            && self.should.is_empty()
            && self.must_not.is_empty()
            && self.min_should.is_none()
    }
}

impl Check {
    fn new(c: &Condition) -> Result<Self, CollectionError> {
        Ok(match c {
            Condition::Field(f) => Check::Field {
                path: parse_path(&f.key)?,
                matcher: f.r#match.as_ref().map(Matcher::new),
                range: f.range,
                values_count: f.values_count,
                is_empty: f.is_empty,
                is_null: f.is_null,
            },
            Condition::HasId(h) => Check::HasId(h.has_id.iter().cloned().collect()),
            Condition::IsEmpty(e) => Check::IsEmpty(parse_path(&e.is_empty.key)?),
            Condition::IsNull(n) => Check::IsNull(parse_path(&n.is_null.key)?),
            Condition::Nested(n) => Check::Nested(
                parse_path(&n.nested.key)?,
                Box::new(Compiled::new(&n.nested.filter)?),
            ),
            Condition::Filter(f) => Check::Filter(Box::new(Compiled::new(f)?)),
        })
    }

    fn holds(&self, id: &PointId, payload: &Payload) -> bool {
        match self {
            Check::HasId(ids) => ids.contains(id),
            Check::Filter(f) => f.matches(id, payload),
            // Missing, null or empty everywhere.
            Check::IsEmpty(path) => !any_at(payload, path, &mut |v| !is_emptyish(v)),
            Check::IsNull(path) => any_at(payload, path, &mut is_null_value),
            Check::Nested(path, filter) => any_at(payload, path, &mut |v| match v {
                Value::Object(o) => filter.matches(id, o),
                Value::Array(items) => items.iter().any(|x| match x {
                    Value::Object(o) => filter.matches(id, o),
                    _ => false,
                }),
                _ => false,
            }),
            Check::Field {
                path,
                matcher,
                range,
                values_count,
                is_empty,
                is_null,
            } => {
                if let Some(vc) = values_count {
                    let mut n = 0usize;
                    any_at(payload, path, &mut |v| {
                        n += match v {
                            Value::Array(a) => a.len(),
                            Value::Null => 0,
                            _ => 1,
                        };
                        false
                    });
                    return vc.holds(n);
                }
                if let Some(want_empty) = is_empty {
                    let empty = !any_at(payload, path, &mut |v| !is_emptyish(v));
                    return empty == *want_empty;
                }
                if let Some(want_null) = is_null {
                    let (mut seen, mut null) = (false, false);
                    any_at(payload, path, &mut |v| {
                        seen = true;
                        null = is_null_value(v);
                        null
                    });
                    // A missing field is not null (Qdrant's check on no value).
                    return if seen {
                        null == *want_null
                    } else {
                        !*want_null
                    };
                }
                let one = |v: &Value| {
                    matcher.as_ref().is_some_and(|m| m.holds(v))
                        || range.as_ref().is_some_and(|r| range_holds(r, v))
                };
                any_at(payload, path, &mut |v| match v {
                    Value::Array(items) => items.iter().any(one),
                    _ => one(v),
                })
            }
        }
    }
}

fn is_null_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(Value::is_null),
        _ => false,
    }
}

fn range_holds(r: &Range, v: &Value) -> bool {
    let Some(x) = v.as_f64() else {
        return false;
    };
    r.lt.is_none_or(|b| x < b)
        && r.gt.is_none_or(|b| x > b)
        && r.lte.is_none_or(|b| x <= b)
        && r.gte.is_none_or(|b| x >= b)
}

impl ValuesCount {
    fn holds(&self, n: usize) -> bool {
        self.lt.is_none_or(|b| n < b)
            && self.gt.is_none_or(|b| n > b)
            && self.lte.is_none_or(|b| n <= b)
            && self.gte.is_none_or(|b| n >= b)
    }
}

impl Matcher {
    fn new(m: &Match) -> Self {
        match m {
            Match::Value {
                value: MatchValue::Keyword(s),
            } => Matcher::Keyword(s.clone()),
            Match::Value {
                value: MatchValue::Integer(i),
            } => Matcher::Integer(*i),
            Match::Value {
                value: MatchValue::Bool(b),
            } => Matcher::Bool(*b),
            Match::Any {
                any: AnyVariants::Keywords(k),
            } => Matcher::AnyKeywords(k.iter().cloned().collect()),
            Match::Any {
                any: AnyVariants::Integers(i),
            } => Matcher::AnyIntegers(i.iter().copied().collect()),
            Match::Except {
                except: AnyVariants::Keywords(k),
            } => Matcher::ExceptKeywords(k.iter().cloned().collect()),
            Match::Except {
                except: AnyVariants::Integers(i),
            } => Matcher::ExceptIntegers(i.iter().copied().collect()),
            Match::Text { text } => Matcher::Text(text.clone()),
        }
    }

    /// One (non-array) value against the match, as Qdrant's checker does.
    fn holds(&self, v: &Value) -> bool {
        match (self, v) {
            (Matcher::Keyword(want), Value::String(s)) => s == want,
            (Matcher::Integer(want), Value::Number(n)) => n.as_i64() == Some(*want),
            (Matcher::Bool(want), Value::Bool(b)) => b == want,
            (Matcher::AnyKeywords(set), Value::String(s)) => set.contains(s.as_str()),
            (Matcher::AnyIntegers(set), Value::Number(n)) => {
                n.as_i64().is_some_and(|i| set.contains(&i))
            }
            (Matcher::ExceptKeywords(set), Value::String(s)) => !set.contains(s.as_str()),
            (Matcher::ExceptIntegers(set), Value::Number(n)) => {
                n.as_i64().is_none_or(|i| !set.contains(&i))
            }
            (Matcher::ExceptKeywords(_) | Matcher::ExceptIntegers(_), Value::Null) => false,
            (Matcher::ExceptKeywords(_) | Matcher::ExceptIntegers(_), _) => true,
            (Matcher::Text(t), Value::String(s)) => s.contains(t.as_str()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
