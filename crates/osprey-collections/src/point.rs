//! Points, their ids and payloads, and the shapes of requests and answers.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::filter::Filter;

/// How vectors are compared. Serialized as Qdrant spells it.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Distance {
    /// Cosine similarity: vectors are stored normalized, the score is their dot
    /// product (higher is closer).
    Cosine,
    /// Raw dot product (higher is closer).
    Dot,
    /// Euclidean distance (lower is closer; results ascend).
    Euclid,
}

impl Distance {
    /// Whether a larger score is a better match.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Self::Euclid)
    }
}

/// What a collection is created with. Unknown fields are ignored when reading
/// it, so a Qdrant vector config carrying options Osprey has no use for
/// (`on_disk`, `hnsw_config`, ...) still reads.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct CollectionParams {
    /// The vector size.
    pub size: usize,
    pub distance: Distance,
    /// The model whose embeddings this collection holds (for text queries).
    #[serde(default)]
    pub model: Option<String>,
    /// How the graph holds the vectors.
    #[serde(default)]
    pub datatype: Datatype,
    /// int8 codes in the graph instead of the vectors, rescored from the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

impl CollectionParams {
    /// Parameters with the default storage (float32, no quantization).
    pub fn new(size: usize, distance: Distance) -> Self {
        Self {
            size,
            distance,
            model: None,
            datatype: Datatype::default(),
            quantization: None,
        }
    }

    /// The quantile of int8 quantization, when the collection has it.
    pub fn int8_quantile(&self) -> Option<f32> {
        self.quantization
            .map(|Quantization::Scalar(s)| s.quantile())
    }
}

/// The element type of the vectors in the graph (Qdrant's `datatype`). float16
/// halves the memory and is faster to search; vectors come back rounded to it.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub enum Datatype {
    #[default]
    Float32,
    Float16,
}

/// Qdrant's `quantization_config`; only scalar quantization exists here.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    Scalar(ScalarQuantization),
}

/// Scalar quantization: each component becomes an int8 code, scaled so that the
/// `quantile` of the absolute values of the first vectors written maps to 127
/// (the rarer, larger values saturate).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
pub struct ScalarQuantization {
    #[serde(rename = "type")]
    pub kind: ScalarType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f32>,
    /// Accepted for Qdrant's clients; the codes are always in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
}

impl ScalarQuantization {
    /// Qdrant's default quantile.
    pub const DEFAULT_QUANTILE: f32 = 0.99;

    pub fn quantile(&self) -> f32 {
        self.quantile.unwrap_or(Self::DEFAULT_QUANTILE)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum ScalarType {
    Int8,
}

/// How a query uses a quantized collection (Qdrant's `params.quantization`).
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct QuantizationSearch {
    /// Rescore with every candidate the walk found, as exactly as the
    /// collection allows (the graph itself is int8).
    pub ignore: bool,
    /// Rescore the candidates with the original vectors from the store.
    pub rescore: bool,
    /// Candidates fetched per wanted result before rescoring.
    pub oversampling: f32,
}

impl QuantizationSearch {
    /// int8 codes confuse close neighbours, so more candidates than Qdrant's
    /// 1.0 are rescored by default (see BENCHMARKS.md for the recall it buys).
    pub const DEFAULT_OVERSAMPLING: f32 = 3.0;
}

impl Default for QuantizationSearch {
    fn default() -> Self {
        Self {
            ignore: false,
            rescore: true,
            oversampling: Self::DEFAULT_OVERSAMPLING,
        }
    }
}

/// A point id as Qdrant has them: an unsigned integer or a UUID. UUIDs are accepted
/// in any text form and written hyphenated in lower case. Integers order before
/// UUIDs.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum PointId {
    Num(u64),
    Uuid(uuid::Uuid),
}

impl PointId {
    /// The key bytes in the store, ordered as ids are (integers first, big-endian).
    pub(crate) fn to_key(&self) -> Vec<u8> {
        match self {
            Self::Num(n) => {
                let mut k = Vec::with_capacity(9);
                k.push(0);
                k.extend_from_slice(&n.to_be_bytes());
                k
            }
            Self::Uuid(u) => {
                let mut k = Vec::with_capacity(17);
                k.push(1);
                k.extend_from_slice(u.as_bytes());
                k
            }
        }
    }

    pub(crate) fn from_key(key: &[u8]) -> Option<Self> {
        match key.split_first()? {
            (0, rest) => Some(Self::Num(u64::from_be_bytes(rest.try_into().ok()?))),
            (1, rest) => Some(Self::Uuid(uuid::Uuid::from_bytes(rest.try_into().ok()?))),
            _ => None,
        }
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Uuid(u) => write!(f, "{}", u.hyphenated()),
        }
    }
}

impl From<u64> for PointId {
    fn from(n: u64) -> Self {
        Self::Num(n)
    }
}

impl From<uuid::Uuid> for PointId {
    fn from(u: uuid::Uuid) -> Self {
        Self::Uuid(u)
    }
}

impl std::str::FromStr for PointId {
    type Err = String;

    /// An unsigned integer or a UUID in any of its text forms.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Self::Num(n));
        }
        uuid::Uuid::parse_str(s)
            .map(Self::Uuid)
            .map_err(|_| format!("`{s}` is neither an unsigned integer nor a UUID"))
    }
}

impl Serialize for PointId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Num(n) => s.serialize_u64(*n),
            Self::Uuid(u) => s.collect_str(&u.hyphenated()),
        }
    }
}

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = PointId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a point id: an unsigned integer or a UUID string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PointId, E> {
                Ok(PointId::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PointId, E> {
                u64::try_from(v)
                    .map(PointId::Num)
                    .map_err(|_| E::custom(format!("point id {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PointId, E> {
                uuid::Uuid::parse_str(v)
                    .map(PointId::Uuid)
                    .map_err(|_| E::custom(format!("point id `{v}` is not a UUID")))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// A point's payload: a JSON object.
pub type Payload = serde_json::Map<String, serde_json::Value>;

/// A point to upsert.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct Point {
    pub id: PointId,
    pub vector: Vec<f32>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub payload: Payload,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
    Ok(Option::<Payload>::deserialize(d)?.unwrap_or_default())
}

/// A stored point as retrieve and scroll return it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct Record {
    pub id: PointId,
    pub payload: Option<Payload>,
    pub vector: Option<Vec<f32>>,
}

/// A search hit. `score` is a similarity for Cosine and Dot (higher is better) and
/// a distance for Euclid (lower is better).
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct ScoredPoint {
    pub id: PointId,
    /// The id of the operation that last wrote this point.
    pub version: u64,
    pub score: f32,
    pub payload: Option<Payload>,
    pub vector: Option<Vec<f32>>,
}

/// A nearest-neighbour search.
#[derive(Clone, PartialEq, Debug)]
pub struct SearchRequest {
    pub vector: Vec<f32>,
    pub limit: usize,
    pub offset: usize,
    pub filter: Option<Filter>,
    pub with_payload: bool,
    pub with_vector: bool,
    /// Cosine, Dot: keep scores `>=` this. Euclid: keep distances `<=` this.
    pub score_threshold: Option<f32>,
    /// The HNSW search breadth for this query (the collection's default if none).
    pub ef: Option<usize>,
    /// Compare with every (matching) point instead of walking the graph.
    pub exact: bool,
    /// Rescoring in a quantized collection.
    pub quantization: QuantizationSearch,
}

impl Default for SearchRequest {
    fn default() -> Self {
        Self {
            vector: Vec::new(),
            limit: 10,
            offset: 0,
            filter: None,
            with_payload: false,
            with_vector: false,
            score_threshold: None,
            ef: None,
            exact: false,
            quantization: QuantizationSearch::default(),
        }
    }
}

/// Which points a delete names.
#[derive(Clone, PartialEq, Debug)]
pub enum Selector {
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// The outcome of a write. Writes are durable when they return, so the status is
/// always "completed".
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct UpdateResult {
    pub operation_id: u64,
}

/// What `GET /collections/{c}` reports.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct CollectionInfo {
    pub params: CollectionParams,
    pub points_count: u64,
    pub indexed_vectors_count: u64,
    pub segments_count: u64,
}
