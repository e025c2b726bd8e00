pub mod admin;
pub mod alerts;
pub mod dashboard;
pub mod embed;
pub mod health;
pub mod info;
pub mod metrics;
pub mod openai;
pub mod profile;
pub mod stats;

use std::time::Instant;

use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use osprey_engine::{CacheStatus, EmbedOptions, Embedded};

use crate::observe::{Timing, server_timing};
use crate::{ApiError, AppState};

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("{method} {}", uri.path()))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The shared part of every embedding route: limits, then the engine.
pub(crate) async fn run(
    state: &AppState,
    inputs: &[String],
    opts: EmbedOptions,
    validate_started: Instant,
) -> Result<(Embedded, Timing), ApiError> {
    crate::input::check_inputs(&state.config, inputs)?;
    state.protection.charge_items(inputs.len())?;
    let engine = state.engine()?;
    let validate = validate_started.elapsed();
    if state.observe.config.log_request_text {
        tracing::debug!(?inputs, "request texts");
    }
    // Admission control sees only what the cache lacks: hits are never refused.
    // The ticket counts this request as outstanding until it returns.
    let (out, _outstanding) = engine
        .embed_admitted(inputs, opts, |missing| {
            state.protection.check_queue(
                &engine.engine().load(),
                engine.info().max_input_tokens,
                missing,
            )
        })
        .await?;
    ::metrics::counter!("osprey_embedded_items_total").increment(inputs.len() as u64);
    let t = out.timings;
    let mut timing = Timing::new(state.observe.config.metrics, inputs.len());
    timing.push("validate", validate);
    timing.push("cache", t.cache);
    timing.push("tokenize", t.tokenize);
    timing.push("queue", t.queue);
    timing.push("inference", t.inference);
    timing.push("postprocess", t.postprocess);
    Ok((out, timing))
}

/// A JSON body already serialized, with its Server-Timing and x-cache headers.
pub(crate) fn json_response(
    body: Vec<u8>,
    mut timing: Timing,
    serialize_started: Instant,
    cache: CacheStatus,
) -> Response {
    timing.push("serialize", serialize_started.elapsed());
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if timing.enabled
        && let Ok(v) = HeaderValue::from_str(&server_timing(&timing.stages))
    {
        h.insert("server-timing", v);
    }
    if let Some(c) = cache.header() {
        h.insert("x-cache", HeaderValue::from_static(c));
    }
    // The request middleware reports the stages and item count.
    resp.extensions_mut().insert(timing);
    resp
}
