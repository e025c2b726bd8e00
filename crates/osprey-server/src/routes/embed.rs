//! `POST /embed`, compatible with text-embeddings-inference.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use osprey_engine::{EmbedOptions, Task};
use osprey_wire::EmbedRequest;

use super::Call;
use crate::input::read_json;
use crate::{ApiError, AppState};

pub async fn tei(
    State(state): State<AppState>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let req: EmbedRequest = read_json(&state, &call.headers, body).await?;
    let opts = EmbedOptions {
        normalize: req.normalize,
        truncate: req.truncate,
        dimensions: None,
    };
    crate::input::check_inputs(&state.config, &req.inputs.0)?;
    let served = super::model(
        &state,
        &call,
        req.model.as_deref(),
        Task::Embed,
        req.inputs.0.len(),
    )?;
    let (out, stages, chunks) =
        super::embed_texts(&state, &call, &served, &req.inputs.0, opts).await?;
    let t = Instant::now();
    // Each entry carries its vector already rendered as JSON: join them.
    let size: usize = out.entries.iter().map(|e| e.json().len() + 1).sum();
    let mut body = Vec::with_capacity(size + 2);
    body.push(b'[');
    for (i, e) in out.entries.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e.json());
    }
    body.push(b']');
    let mut resp = super::json_response(body, stages, t, out.cache, &served);
    super::name_chunks(&mut resp, chunks.as_deref());
    Ok(resp)
}
