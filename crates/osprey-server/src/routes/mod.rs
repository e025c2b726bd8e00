pub mod embed;
pub mod health;
pub mod info;
pub mod metrics;
pub mod openai;

use std::time::Instant;

use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use osprey_engine::{EmbedOptions, Embeddings};

use crate::observe::{server_timing, stage};
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
) -> Result<(Embeddings, Vec<(&'static str, f64)>), ApiError> {
    crate::input::check_inputs(&state.config, inputs)?;
    state.protection.charge_items(inputs.len())?;
    let engine = state.engine()?;
    let _outstanding = state.protection.check_queue(
        engine.queued_tokens(),
        engine.info().max_queue_tokens,
        inputs,
    )?;
    let validate = validate_started.elapsed();
    let out = engine.embed(inputs, opts).await?;
    state
        .protection
        .record_tokens(out.tokens, engine.queued_tokens() > 0);
    ::metrics::counter!("osprey_embedded_items_total").increment(inputs.len() as u64);
    let t = out.timings;
    let stages = vec![
        stage("validate", validate),
        stage("tokenize", t.tokenize),
        stage("queue", t.queue),
        stage("inference", t.inference),
        stage("postprocess", t.postprocess),
    ];
    Ok((out, stages))
}

/// A JSON body already serialized, with its Server-Timing header.
pub(crate) fn json_response(
    body: Vec<u8>,
    mut stages: Vec<(&'static str, f64)>,
    serialize_started: Instant,
) -> Response {
    stages.push(stage("serialize", serialize_started.elapsed()));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&server_timing(&stages)) {
        h.insert("server-timing", v);
    }
    resp
}
