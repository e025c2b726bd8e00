//! Collections over Qdrant's REST API: create, inspect and delete collections;
//! upsert, query, count, retrieve, scroll and delete points. Points and queries may
//! carry `text` instead of a vector when the collection names an embedding model:
//! the texts go through that model's pipeline (result cache, coalescing, batches).
//! The store and index work is blocking, so it runs on the blocking pool.

mod reply;
mod shapes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use osprey_collections::{CollectionParams, Collections, Point, PointId, SearchRequest, Selector};
use osprey_engine::{EmbedOptions, Task};
use osprey_metrics::event::{CollectionSearched, Event};
use serde::Serialize;
use serde_json::json;

use self::reply::{QdrantError, ok};
use self::shapes::{
    CountIn, CreateCollection, DeleteIn, QuantizationParams, QueryIn, QueryInput, RecordOut,
    RetrieveIn, ScoredOut, ScrollIn, Upsert, VectorIn, WithPayload,
};
use super::Call;
use crate::AppState;

type Reply = Result<Response, QdrantError>;

/// Bodies of collection writes may be this large (Qdrant's default): thousands of
/// vectors per request.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Qdrant's default page and result sizes.
const DEFAULT_LIMIT: usize = 10;

fn collections(state: &AppState) -> Result<Arc<Collections>, QdrantError> {
    use axum::http::StatusCode;
    let slot = state.collections.as_ref().ok_or_else(|| {
        QdrantError::new(
            StatusCode::NOT_FOUND,
            "collections are turned off on this server ([collections] path is empty)",
        )
    })?;
    match slot.get() {
        Some(Ok(c)) => Ok(c.clone()),
        Some(Err(e)) => Err(QdrantError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Service internal error: the collections could not be opened: {e}"),
        )),
        None => Err(QdrantError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "collections are still loading; retry shortly",
        )),
    }
}

/// Runs blocking store and index work off the async workers.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Collections) -> Result<T, osprey_collections::CollectionError> + Send + 'static,
) -> Result<T, QdrantError> {
    let c = collections(state)?;
    Ok(tokio::task::spawn_blocking(move || work(&c)).await??)
}

/// Runs a search: on this worker's own thread when the runtime can hand its
/// other tasks to another worker meanwhile (`block_in_place`), so the walk
/// starts at once on the core that parsed the request, with its caches;
/// otherwise off the async workers, as [`blocking`] does.
async fn searching<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Collections) -> Result<T, osprey_collections::CollectionError> + Send + 'static,
) -> Result<T, QdrantError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        let c = collections(state)?;
        Ok(tokio::task::block_in_place(move || work(&c))?)
    } else {
        blocking(state, work).await
    }
}

async fn read<T: serde::de::DeserializeOwned + Send + 'static>(
    state: &AppState,
    call: &Call,
    body: Body,
) -> Result<T, QdrantError> {
    crate::input::read_json_up_to(state, &call.headers, body, MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            // Qdrant answers a body of the wrong shape with 400, as malformed JSON.
            crate::ApiError::Invalid(m) | crate::ApiError::MalformedJson(m) => {
                QdrantError::bad_request(format!("Format error in JSON body: {m}"))
            }
            other => other.into(),
        })
}

pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Reply {
    let req: CreateCollection = read(&state, &call, body).await?;
    let vectors = req
        .vectors
        .ok_or_else(|| QdrantError::bad_request("Wrong input: `vectors` is required"))?;
    let model = req.model.filter(|m| !m.is_empty());
    let size = match (vectors.size, &model) {
        (Some(size), _) => size,
        // With a model named, the size is the model's.
        (None, Some(m)) => model_dims(&state, m)?,
        (None, None) => {
            return Err(QdrantError::bad_request(
                "Wrong input: `vectors.size` is required for a collection without a `model`",
            ));
        }
    };
    if let Some(m) = &model {
        let dims = model_dims(&state, m)?;
        if dims != size {
            return Err(QdrantError::bad_request(format!(
                "Wrong input: model `{m}` makes vectors of {dims} dimensions, not {size}"
            )));
        }
    }
    let quantization = match &vectors.quantization_config {
        Some(q) if !q.is_null() => shapes::quantization(Some(q)),
        _ => shapes::quantization(req.quantization_config.as_ref()),
    }
    .map_err(|e| QdrantError::bad_request(format!("Wrong input: {e}")))?;
    let params = CollectionParams {
        model,
        datatype: vectors.datatype.unwrap_or_default(),
        quantization,
        ..CollectionParams::new(size, vectors.distance)
    };
    blocking(&state, move |c| c.create(&name, params)).await?;
    Ok(ok(call.started, true))
}

/// The vector size of an embedding model (`default`: the default model).
fn model_dims(state: &AppState, name: &str) -> Result<usize, QdrantError> {
    let asked = (name != "default").then_some(name);
    let served = state
        .models
        .resolve(asked, Task::Embed, None)
        .map_err(|e| QdrantError::bad_request(format!("Wrong input: {e}")))?;
    let pipeline = served
        .pipeline()
        .map_err(|e| QdrantError::from(crate::ApiError::from(e)))?;
    Ok(pipeline.info().dims)
}

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>, call: Call) -> Reply {
    let existed = blocking(&state, move |c| c.delete(&name)).await?;
    Ok(ok(call.started, existed))
}

pub async fn exists(State(state): State<AppState>, Path(name): Path<String>, call: Call) -> Reply {
    let c = collections(&state)?;
    Ok(ok(call.started, json!({ "exists": c.exists(&name) })))
}

pub async fn list(State(state): State<AppState>, call: Call) -> Reply {
    let c = collections(&state)?;
    let names: Vec<_> = c.list().into_iter().map(|n| json!({ "name": n })).collect();
    Ok(ok(call.started, json!({ "collections": names })))
}

pub async fn info(State(state): State<AppState>, Path(name): Path<String>, call: Call) -> Reply {
    let info = blocking(&state, move |c| c.info(&name)).await?;
    let p = &info.params;
    let mut vectors = json!({ "size": p.size, "distance": p.distance, "datatype": p.datatype });
    if let Some(m) = &p.model {
        vectors["model"] = json!(m);
    }
    // As in Qdrant: yellow while written points are still being indexed (they
    // are searched exhaustively meanwhile).
    let status = if info.indexed_vectors_count < info.points_count {
        "yellow"
    } else {
        "green"
    };
    Ok(ok(
        call.started,
        json!({
            "status": status,
            "optimizer_status": "ok",
            "points_count": info.points_count,
            "indexed_vectors_count": info.indexed_vectors_count,
            "segments_count": info.segments_count,
            "config": {
                "params": {
                    "vectors": vectors,
                    "shard_number": 1,
                    "replication_factor": 1,
                    "write_consistency_factor": 1,
                    "on_disk_payload": true,
                },
                "hnsw_config": {
                    "m": osprey_collections::CONNECTIVITY,
                    "ef_construct": osprey_collections::EF_CONSTRUCTION,
                    "full_scan_threshold": 10000,
                },
                "optimizer_config": { "default_segment_number": 1, "flush_interval_sec": 0 },
                "wal_config": { "wal_capacity_mb": 0, "wal_segments_ahead": 0 },
                "quantization_config": p.quantization,
            },
            "payload_schema": {},
        }),
    ))
}

#[derive(Serialize)]
struct UpdateOut {
    operation_id: u64,
    status: &'static str,
}

pub async fn upsert(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Reply {
    let req: Upsert = read(&state, &call, body).await?;
    if req.shard_key.is_some() {
        return Err(QdrantError::bad_request(
            "Wrong input: shard keys are not supported (one shard per collection)",
        ));
    }
    let mut incoming = match (req.points, req.batch) {
        (Some(points), None) => points
            .into_iter()
            .map(|p| (p.id, p.vector, p.text, p.payload))
            .collect::<Vec<_>>(),
        (None, Some(b)) => from_batch(b)?,
        _ => {
            return Err(QdrantError::bad_request(
                "Wrong input: give either `points` or `batch`",
            ));
        }
    };
    let max = collections(&state)?.config().max_points_per_request;
    if incoming.len() > max {
        return Err(QdrantError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Wrong input: {} points in one request; at most {max}",
                incoming.len()
            ),
        ));
    }
    // Texts are embedded together, through the collection's model, in its batches.
    let texts: Vec<(usize, String)> = incoming
        .iter_mut()
        .enumerate()
        .filter_map(|(i, p)| p.2.take().map(|t| (i, t)))
        .collect();
    let text_at: Vec<usize> = texts.iter().map(|(i, _)| *i).collect();
    let mut embedded = if texts.is_empty() {
        Vec::new()
    } else {
        let model = collection_model(&state, &name).await?;
        let only: Vec<String> = texts.into_iter().map(|(_, t)| t).collect();
        embed(&state, &call, &model, &only).await?.0
    }
    .into_iter();
    let mut points = Vec::with_capacity(incoming.len());
    let mut next_text = 0;
    for (i, (id, vector, _, payload)) in incoming.into_iter().enumerate() {
        let is_text = text_at.get(next_text) == Some(&i);
        let vector = match (vector, is_text) {
            (Some(_), true) => {
                return Err(QdrantError::bad_request(format!(
                    "Wrong input: point {} has both a `vector` and a `text`",
                    shown(&id)
                )));
            }
            (Some(VectorIn::Dense(v)), false) => v,
            (Some(VectorIn::Named(_)), false) => {
                return Err(QdrantError::bad_request(
                    "Wrong input: named vectors are not supported; give `vector` as a list",
                ));
            }
            (None, true) => {
                next_text += 1;
                embedded.next().ok_or_else(|| {
                    QdrantError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "Service internal error: fewer vectors than texts",
                    )
                })?
            }
            (None, false) => {
                return Err(QdrantError::bad_request(format!(
                    "Wrong input: point {} has neither a `vector` nor a `text`",
                    shown(&id)
                )));
            }
        };
        points.push(Point {
            id,
            vector,
            payload: payload.unwrap_or_default(),
        });
    }
    let started = Instant::now();
    let result = blocking(&state, move |c| c.upsert(&name, points)).await?;
    let mut resp = ok(
        call.started,
        UpdateOut {
            operation_id: result.operation_id,
            status: "completed",
        },
    );
    timing(&mut resp, &[("store", started.elapsed())]);
    Ok(resp)
}

type Incoming = (
    PointId,
    Option<VectorIn>,
    Option<String>,
    Option<osprey_collections::Payload>,
);

fn from_batch(b: shapes::Batch) -> Result<Vec<Incoming>, QdrantError> {
    let n = b.ids.len();
    let same = |len: Option<usize>| len.is_none_or(|l| l == n);
    if !same(b.vectors.as_ref().map(Vec::len))
        || !same(b.texts.as_ref().map(Vec::len))
        || !same(b.payloads.as_ref().map(Vec::len))
    {
        return Err(QdrantError::bad_request(
            "Wrong input: `batch` lists must all be as long as `ids`",
        ));
    }
    let mut vectors = b.vectors.map(Vec::into_iter);
    let mut texts = b.texts.map(Vec::into_iter);
    let mut payloads = b.payloads.map(Vec::into_iter);
    Ok(b.ids
        .into_iter()
        .map(|id| {
            (
                id,
                vectors.as_mut().and_then(Iterator::next),
                texts.as_mut().and_then(Iterator::next),
                payloads.as_mut().and_then(Iterator::next).flatten(),
            )
        })
        .collect())
}

fn shown(id: &PointId) -> String {
    match id {
        PointId::Num(n) => n.to_string(),
        PointId::Uuid(u) => u.to_string(),
    }
}

/// The model a collection embeds its texts with.
async fn collection_model(state: &AppState, name: &str) -> Result<String, QdrantError> {
    let n = name.to_owned();
    let info = blocking(state, move |c| c.info(&n)).await?;
    info.params.model.ok_or_else(|| {
        QdrantError::bad_request(format!(
            "Wrong input: collection `{name}` has no `model`, so its points need a `vector`"
        ))
    })
}

/// Embeds `texts` with `model` through its pipeline; the vectors, and the time.
async fn embed(
    state: &AppState,
    call: &Call,
    model: &str,
    texts: &[String],
) -> Result<(Vec<Vec<f32>>, Duration), QdrantError> {
    let started = Instant::now();
    let asked = (model != "default").then_some(model);
    let served = super::model(state, call, asked, Task::Embed, texts.len())?;
    let opts = EmbedOptions {
        normalize: true,
        truncate: true,
        dimensions: None,
    };
    let (out, _) = super::run(state, call, &served, texts, opts).await?;
    let vectors = out.entries.iter().map(|e| e.vector.to_vec()).collect();
    Ok((vectors, started.elapsed()))
}

pub async fn query(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Reply {
    let req: QueryIn = read(&state, &call, body).await?;
    if req.using.as_deref().is_some_and(|u| !u.is_empty()) {
        return Err(QdrantError::bad_request(
            "Wrong input: named vectors are not supported; leave `using` out",
        ));
    }
    let mut stages = Vec::new();
    let vector = match req.query {
        None => None,
        Some(q) => Some(query_vector(&state, &call, &name, q, &mut stages).await?),
    };
    let params = req.params.unwrap_or_default();
    let quantization = QuantizationParams::search(params.quantization.as_ref())
        .map_err(|e| QdrantError::bad_request(format!("Wrong input: {e}")))?;
    let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
    let with_payload = req.with_payload.clone();
    let wants_payload = WithPayload::wanted(with_payload.as_ref(), false);
    let with_vector = req.with_vector.unwrap_or(false);
    let started = Instant::now();
    let points = match vector {
        Some(vector) => {
            let search = SearchRequest {
                vector,
                limit,
                offset: req.offset.unwrap_or(0),
                filter: req.filter,
                with_payload: wants_payload,
                with_vector,
                score_threshold: req.score_threshold,
                ef: params.hnsw_ef,
                exact: params.exact,
                quantization,
            };
            let n = name.clone();
            let (found, inside) = searching(&state, move |c| {
                let started = Instant::now();
                c.search(&n, &search)
                    .map(|found| (found, started.elapsed()))
            })
            .await?;
            // The search itself, on the worker thread, apart from the hand-off
            // to it and back (what an in-process index would report).
            stages.push(("index", inside));
            found
                .into_iter()
                .map(|p| ScoredOut::from(p, with_payload.as_ref()))
                .collect::<Vec<_>>()
        }
        // Without a query, Qdrant lists points in id order (a scroll), scored 0.
        None => {
            let filter = req.filter;
            let n = name.clone();
            let (records, _) = blocking(&state, move |c| {
                c.scroll(&n, filter.as_ref(), limit, None, wants_payload, with_vector)
            })
            .await?;
            records
                .into_iter()
                .map(|r| ScoredOut {
                    id: r.id,
                    version: 0,
                    score: 0.0,
                    payload: r
                        .payload
                        .map(|pl| WithPayload::select(with_payload.as_ref(), pl)),
                    vector: r.vector,
                })
                .collect()
        }
    };
    let took = started.elapsed();
    stages.push(("search", took));
    CollectionSearched {
        collection: &name,
        took,
    }
    .emit();
    if let Some(slot) = &state.collections {
        slot.stats.record(&name, took);
    }
    let mut resp = ok(call.started, json!({ "points": points }));
    timing(&mut resp, &stages);
    Ok(resp)
}

/// The vector a query searches near.
async fn query_vector(
    state: &AppState,
    call: &Call,
    name: &str,
    q: QueryInput,
    stages: &mut Vec<(&'static str, Duration)>,
) -> Result<Vec<f32>, QdrantError> {
    match q {
        QueryInput::Vector(v) => Ok(v),
        QueryInput::Nearest { nearest } => {
            Box::pin(query_vector(state, call, name, *nearest, stages)).await
        }
        QueryInput::Text { text } => {
            let model = collection_model(state, name).await?;
            let (mut vectors, took) = embed(state, call, &model, &[text]).await?;
            stages.push(("embed", took));
            vectors.pop().ok_or_else(|| {
                QdrantError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "Service internal error: the model returned no vector",
                )
            })
        }
        QueryInput::Id(id) => {
            let n = name.to_owned();
            let shown_id = shown(&id);
            let found = blocking(state, move |c| c.retrieve(&n, &[id], false, true)).await?;
            found
                .into_iter()
                .next()
                .and_then(|r| r.vector)
                .ok_or_else(|| {
                    QdrantError::new(
                        axum::http::StatusCode::NOT_FOUND,
                        format!("Not found: no point with id {shown_id}"),
                    )
                })
        }
    }
}

static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// `Server-Timing` with each stage in milliseconds (`embed;dur=4.210, search;dur=0.310`).
fn timing(resp: &mut Response, stages: &[(&str, Duration)]) {
    let text: Vec<String> = stages
        .iter()
        .map(|(name, d)| format!("{name};dur={:.3}", d.as_secs_f64() * 1000.0))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&text.join(", ")) {
        resp.headers_mut().insert(&SERVER_TIMING, v);
    }
}

pub async fn count(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Reply {
    let req: CountIn = read(&state, &call, body).await?;
    let _exact = req.exact;
    let filter = req.filter;
    let n = blocking(&state, move |c| c.count(&name, filter.as_ref())).await?;
    Ok(ok(call.started, json!({ "count": n })))
}

pub async fn retrieve(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Reply {
    let req: RetrieveIn = read(&state, &call, body).await?;
    let with_payload = req.with_payload.clone();
    let wants = WithPayload::wanted(with_payload.as_ref(), true);
    let with_vector = req.with_vector.unwrap_or(false);
    let ids = req.ids;
    let records = blocking(&state, move |c| c.retrieve(&name, &ids, wants, with_vector)).await?;
    let out: Vec<RecordOut> = records
        .into_iter()
        .map(|r| RecordOut::from(r, with_payload.as_ref()))
        .collect();
    Ok(ok(call.started, out))
}

pub async fn delete_points(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Reply {
    let req: DeleteIn = read(&state, &call, body).await?;
    if req.shard_key.is_some() {
        return Err(QdrantError::bad_request(
            "Wrong input: shard keys are not supported (one shard per collection)",
        ));
    }
    let selector = match (req.points, req.filter) {
        (Some(ids), None) => Selector::Ids(ids),
        (None, Some(filter)) => Selector::Filter(filter),
        _ => {
            return Err(QdrantError::bad_request(
                "Wrong input: give either `points` (ids) or `filter`",
            ));
        }
    };
    let result = blocking(&state, move |c| c.delete_points(&name, &selector)).await?;
    Ok(ok(
        call.started,
        UpdateOut {
            operation_id: result.operation_id,
            status: "completed",
        },
    ))
}

pub async fn scroll(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Reply {
    let req: ScrollIn = read(&state, &call, body).await?;
    let with_payload = req.with_payload.clone();
    let wants = WithPayload::wanted(with_payload.as_ref(), true);
    let with_vector = req.with_vector.unwrap_or(false);
    let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
    let (filter, offset) = (req.filter, req.offset);
    let (records, next) = blocking(&state, move |c| {
        c.scroll(
            &name,
            filter.as_ref(),
            limit,
            offset.as_ref(),
            wants,
            with_vector,
        )
    })
    .await?;
    let points: Vec<RecordOut> = records
        .into_iter()
        .map(|r| RecordOut::from(r, with_payload.as_ref()))
        .collect();
    Ok(ok(
        call.started,
        json!({ "points": points, "next_page_offset": next }),
    ))
}
