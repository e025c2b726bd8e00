pub mod admin;
pub mod alerts;
mod caller;
pub mod chat;
pub mod collections;
pub mod control;
pub mod dashboard;
pub mod embed;
pub mod health;
pub mod info;
pub mod metrics;
pub mod models;
pub mod openai;
pub mod profile;
pub mod scoring;
pub mod stats;
pub mod tokenize;
pub mod v2;

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use osprey_engine::{CacheStatus, EmbedOptions, Embedded, Served, Task, TextInput};

use crate::observe::{Stage, Timing};
use crate::protect::Caller;
use crate::{ApiError, AppState};

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("{method} {}", uri.path()))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The model a request of `task` and `items` inputs asked for in its body (or
/// the first of that task), its A/B key taken from the `x-osprey-ab-key` header.
/// The items are charged to the caller's rate limit first, whatever the model.
pub(crate) fn model(
    state: &AppState,
    call: &Call,
    asked: Option<&str>,
    task: Task,
    items: usize,
) -> Result<Arc<Served>, ApiError> {
    // A malformed deadline is the client's mistake whatever the model.
    crate::deadline::asked(&call.headers)?;
    state
        .protection
        .load()
        .charge_items(call.caller.as_ref(), items)?;
    let ab_key = call.headers.get(&AB_KEY).and_then(|v| v.to_str().ok());
    Ok(state.models.resolve(asked, task, ab_key)?)
}

/// The shared part of every text-model route, after the inputs passed their
/// limits and were charged: the model's admission control, then the pipeline
/// (cache, tokenizer, batcher, model).
pub(crate) async fn run<I: TextInput>(
    state: &AppState,
    call: &Call,
    served: &Served,
    inputs: &[I],
    opts: EmbedOptions,
) -> Result<(Embedded, Timing), ApiError> {
    let asked = crate::deadline::asked(&call.headers)?;
    let pipeline = served.pipeline()?;
    let validate = call.started.elapsed();
    if state.observe.config.log_request_text {
        tracing::debug!(inputs = ?inputs.iter().map(TextInput::describe).collect::<Vec<_>>(), "request texts");
    }
    let permit = pipeline.engine().admission().enter(asked)?;
    // Only a cache that keeps credentials apart needs to know whose they are.
    let caller = pipeline
        .cache()
        .is_some_and(|c| !c.shares_across_keys())
        .then(|| caller::identity(&call.headers))
        .flatten()
        .filter(|_| state.protection.load().auth_enabled());
    let mut out = pipeline
        .embed_permitted_for(inputs, opts, &permit, caller.as_ref().map(|c| &c[..]))
        .await?;
    served.answered(inputs.len());
    let timing = stages(state, validate, &mut out);
    Ok((out, timing))
}

/// [`run`] for texts embedded whole however long (`long_inputs = "chunk"`); also
/// returns how many windows each text took.
pub(crate) async fn run_chunked(
    state: &AppState,
    call: &Call,
    served: &Served,
    texts: &[String],
    opts: EmbedOptions,
) -> Result<(Embedded, Timing, Vec<usize>), ApiError> {
    let asked = crate::deadline::asked(&call.headers)?;
    let pipeline = served.pipeline()?;
    let validate = call.started.elapsed();
    let permit = pipeline.engine().admission().enter(asked)?;
    let (mut out, chunks) = pipeline.embed_chunked(texts, opts, &permit).await?;
    served.answered(texts.len());
    let timing = stages(state, validate, &mut out);
    Ok((out, timing, chunks))
}

/// The request's time in each stage, and its items counted. With
/// `telemetry.expose_cache_status` off, the response will not say how the cache
/// answered.
fn stages(state: &AppState, validate: std::time::Duration, out: &mut Embedded) -> Timing {
    let metrics = state.observe.config.metrics;
    let items = out.entries.len();
    if metrics {
        crate::observe::embedded_items(items);
    }
    let t = out.timings;
    let mut timing = Timing::new(metrics, items);
    timing.set(Stage::Validate, validate);
    timing.set(Stage::Cache, t.cache);
    timing.set(Stage::Tokenize, t.tokenize);
    timing.set(Stage::Queue, t.queue);
    timing.set(Stage::Inference, t.inference);
    timing.set(Stage::Postprocess, t.postprocess);
    if !state.expose_cache_status {
        timing.conceal_cache();
        out.cache = CacheStatus::Off;
    }
    timing
}

/// Embeds `texts` on an embedding model: whole when the request turned
/// truncation off and the server chunks long inputs, else as usual. The chunk
/// counts come back only for the former.
pub(crate) async fn embed_texts(
    state: &AppState,
    call: &Call,
    served: &Served,
    texts: &[String],
    opts: EmbedOptions,
) -> Result<(Embedded, Timing, Option<Vec<usize>>), ApiError> {
    if !opts.truncate && state.config.long_inputs == crate::config::LongInputs::Chunk {
        let (out, timing, chunks) = run_chunked(state, call, served, texts, opts).await?;
        return Ok((out, timing, Some(chunks)));
    }
    let (out, timing) = run(state, call, served, texts, opts).await?;
    Ok((out, timing, None))
}

static X_CHUNKS: HeaderName = HeaderName::from_static("x-osprey-chunks");

/// How many windows each input took, as `x-osprey-chunks: 1,3,1`.
pub(crate) fn name_chunks(resp: &mut Response, chunks: Option<&[usize]>) {
    let Some(chunks) = chunks else { return };
    let list: Vec<String> = chunks.iter().map(usize::to_string).collect();
    if let Ok(v) = HeaderValue::from_str(&list.join(",")) {
        resp.headers_mut().insert(&X_CHUNKS, v);
    }
}

/// What an inference handler knows of its request besides the body.
pub(crate) struct Call {
    pub headers: HeaderMap,
    pub caller: Option<Caller>,
    /// When validation started: the request's arrival at the handler.
    pub started: Instant,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            started: Instant::now(),
            caller: parts.extensions.remove::<Caller>(),
            // The handler reads the body's headers from here; nothing after the
            // extractors needs the request's own.
            headers: std::mem::take(&mut parts.headers),
        })
    }
}

// Names parsed once, not per response.
static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static X_MODEL: HeaderName = HeaderName::from_static("x-osprey-model");
static AB_KEY: HeaderName = HeaderName::from_static("x-osprey-ab-key");

/// Names the model that answered, as `name@version`.
pub(crate) fn name_model(resp: &mut Response, served: &Served) {
    if let Ok(v) = HeaderValue::from_str(&served.label) {
        resp.headers_mut().insert(&X_MODEL, v);
    }
}

/// A JSON body already serialized, with its Server-Timing and x-cache headers.
pub(crate) fn json_response(
    body: Vec<u8>,
    mut timing: Timing,
    serialize_started: Instant,
    cache: CacheStatus,
    served: &Served,
) -> Response {
    timing.set(Stage::Serialize, serialize_started.elapsed());
    let mut resp = body.into_response();
    name_model(&mut resp, served);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(v) = timing.header() {
        h.insert(&SERVER_TIMING, v);
    }
    if let Some(c) = cache.header() {
        h.insert(&X_CACHE, HeaderValue::from_static(c));
    }
    // The request middleware reports the stages and item count.
    resp.extensions_mut().insert(timing);
    resp
}
