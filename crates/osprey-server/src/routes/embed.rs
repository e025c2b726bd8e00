//! `POST /embed`, compatible with text-embeddings-inference.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use osprey_engine::EmbedOptions;
use osprey_wire::EmbedRequest;

use crate::input::read_json;
use crate::{ApiError, AppState};

pub async fn tei(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: EmbedRequest = read_json(&state, &headers, body).await?;
    let opts = EmbedOptions {
        normalize: req.normalize,
        truncate: req.truncate,
        dimensions: None,
    };
    let (out, stages) = super::run(&state, &req.inputs.0, opts, started).await?;
    let t = Instant::now();
    let body = serde_json::to_vec(&out.vectors).map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(super::json_response(body, stages, t))
}
