//! Qdrant's REST request and response bodies, as far as Osprey speaks them, with
//! Osprey's two extensions: a collection's `model`, and `text` in place of a
//! vector (in points and in queries).

use osprey_collections::{
    Datatype, Distance, Filter, Payload, PointId, Quantization, QuantizationSearch, Record,
    ScoredPoint,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `PUT /collections/{name}`. Qdrant's other tuning options (shards,
/// replication, WAL, optimizers, HNSW) are accepted and left to Osprey's defaults.
#[derive(Debug, Deserialize)]
pub struct CreateCollection {
    pub vectors: Option<VectorsConfig>,
    pub model: Option<String>,
    pub quantization_config: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct VectorsConfig {
    pub size: Option<usize>,
    pub distance: Distance,
    pub datatype: Option<Datatype>,
    /// Qdrant also takes the quantization per vector; it wins over the
    /// collection's.
    pub quantization_config: Option<Value>,
}

/// Qdrant's `quantization_config`: `{"scalar": {"type": "int8", ...}}`, or null.
/// Product and binary quantization are refused by name.
pub fn quantization(v: Option<&Value>) -> Result<Option<Quantization>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) if m.contains_key("product") || m.contains_key("binary") => Err(
            "only scalar int8 quantization is supported (`{\"scalar\": {\"type\": \"int8\"}}`)"
                .into(),
        ),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("quantization_config: {e}")),
    }
}

/// `PUT /collections/{name}/points`: a list of points, or Qdrant's column batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upsert {
    pub points: Option<Vec<PointIn>>,
    pub batch: Option<Batch>,
    /// Qdrant's shard key selector: one shard here, so only its absence makes sense.
    pub shard_key: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    pub id: PointId,
    pub vector: Option<VectorIn>,
    pub text: Option<String>,
    pub payload: Option<Payload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub ids: Vec<PointId>,
    pub vectors: Option<Vec<VectorIn>>,
    pub texts: Option<Vec<String>>,
    pub payloads: Option<Vec<Option<Payload>>>,
}

/// A point's vector: a plain list. Named vectors (`{"name": [...]}`) are Qdrant
/// collections with several vectors per point, which Osprey's do not have.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VectorIn {
    Dense(Vec<f32>),
    Named(#[allow(dead_code)] serde_json::Map<String, Value>),
}

/// `POST /collections/{name}/points/query`.
#[derive(Debug, Deserialize)]
pub struct QueryIn {
    pub query: Option<QueryInput>,
    pub filter: Option<Filter>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub with_payload: Option<WithPayload>,
    pub with_vector: Option<bool>,
    pub score_threshold: Option<f32>,
    pub params: Option<SearchParams>,
    /// Qdrant's vector name; only the unnamed default exists here.
    pub using: Option<String>,
}

/// What to search near: a vector, `{"nearest": ...}` (what qdrant-client sends),
/// a text to embed with the collection's model, or a stored point's id.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum QueryInput {
    Vector(Vec<f32>),
    Nearest { nearest: Box<QueryInput> },
    Text { text: String },
    Id(PointId),
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    pub hnsw_ef: Option<usize>,
    #[serde(default)]
    pub exact: bool,
    pub quantization: Option<QuantizationParams>,
}

/// Qdrant's `params.quantization`.
#[derive(Debug, Default, Deserialize)]
pub struct QuantizationParams {
    pub ignore: Option<bool>,
    pub rescore: Option<bool>,
    pub oversampling: Option<f32>,
}

impl QuantizationParams {
    pub fn search(opt: Option<&Self>) -> Result<QuantizationSearch, String> {
        let d = QuantizationSearch::default();
        let Some(p) = opt else { return Ok(d) };
        let oversampling = match p.oversampling {
            None => d.oversampling,
            Some(o) if o.is_finite() && o >= 1.0 => o,
            Some(o) => return Err(format!("oversampling must be at least 1, got {o}")),
        };
        Ok(QuantizationSearch {
            ignore: p.ignore.unwrap_or(d.ignore),
            rescore: p.rescore.unwrap_or(d.rescore),
            oversampling,
        })
    }
}

/// `with_payload`: a flag, the keys to include, or `{"include"|"exclude": keys}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WithPayload {
    Flag(bool),
    Keys(Vec<String>),
    Selector {
        include: Option<Vec<String>>,
        exclude: Option<Vec<String>>,
    },
}

impl WithPayload {
    /// Whether payloads are sent; `default` when the request does not say
    /// (Qdrant: not for queries, yes for retrieve and scroll).
    pub fn wanted(opt: Option<&Self>, default: bool) -> bool {
        match opt {
            None => default,
            Some(Self::Flag(b)) => *b,
            Some(_) => true,
        }
    }

    /// Keeps the keys asked for.
    pub fn select(opt: Option<&Self>, payload: Payload) -> Payload {
        match opt {
            Some(Self::Keys(keys))
            | Some(Self::Selector {
                include: Some(keys),
                exclude: None,
            }) => payload
                .into_iter()
                .filter(|(k, _)| keys.contains(k))
                .collect(),
            Some(Self::Selector {
                include: None,
                exclude: Some(keys),
            }) => payload
                .into_iter()
                .filter(|(k, _)| !keys.contains(k))
                .collect(),
            _ => payload,
        }
    }
}

/// `POST /collections/{name}/points/count`.
#[derive(Debug, Deserialize)]
pub struct CountIn {
    pub filter: Option<Filter>,
    /// Counts are always exact here.
    pub exact: Option<bool>,
}

/// `POST /collections/{name}/points` (retrieve by ids).
#[derive(Debug, Deserialize)]
pub struct RetrieveIn {
    pub ids: Vec<PointId>,
    pub with_payload: Option<WithPayload>,
    pub with_vector: Option<bool>,
}

/// `POST /collections/{name}/points/delete`: ids or a filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteIn {
    pub points: Option<Vec<PointId>>,
    pub filter: Option<Filter>,
    pub shard_key: Option<Value>,
}

/// `POST /collections/{name}/points/scroll`.
#[derive(Debug, Deserialize)]
pub struct ScrollIn {
    pub filter: Option<Filter>,
    pub limit: Option<usize>,
    pub offset: Option<PointId>,
    pub with_payload: Option<WithPayload>,
    pub with_vector: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct ScoredOut {
    pub id: PointId,
    pub version: u64,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl ScoredOut {
    pub fn from(p: ScoredPoint, with_payload: Option<&WithPayload>) -> Self {
        Self {
            id: p.id,
            version: p.version,
            score: p.score,
            payload: p.payload.map(|pl| WithPayload::select(with_payload, pl)),
            vector: p.vector,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RecordOut {
    pub id: PointId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl RecordOut {
    pub fn from(r: Record, with_payload: Option<&WithPayload>) -> Self {
        Self {
            id: r.id,
            payload: r.payload.map(|pl| WithPayload::select(with_payload, pl)),
            vector: r.vector,
        }
    }
}
