//! `POST /v1/embeddings`, compatible with OpenAI's embeddings API.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use osprey_engine::EmbedOptions;
use osprey_wire::{EmbeddingsRequest, EncodingFormat};
use serde::Serialize;

use crate::input::read_json;
use crate::{ApiError, AppState};

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct EmbeddingsResponse<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
}

pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: EmbeddingsRequest = read_json(&state, &headers, body).await?;
    let engine = state.engine()?;
    let dims = engine.info().dims;
    let dimensions = match req.dimensions {
        None => None,
        Some(d) if d >= 1 && d as u64 <= dims as u64 => Some(d as usize),
        Some(d) => {
            return Err(ApiError::Invalid(format!(
                "dimensions must be between 1 and {dims}, got {d}"
            )));
        }
    };
    let opts = EmbedOptions {
        normalize: true,
        truncate: req.truncate,
        dimensions,
    };
    let (out, stages) = super::run(&state, &req.input.0, opts, started).await?;
    let t = Instant::now();
    let model = req.model.as_deref().unwrap_or(engine.info().id.as_str());
    let data = out
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Item {
            object: "embedding",
            index,
            embedding: match req.encoding_format {
                EncodingFormat::Float => Vector::Float(v),
                EncodingFormat::Base64 => Vector::Base64(base64_f32(&v)),
            },
        })
        .collect();
    let resp = EmbeddingsResponse {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens: out.tokens,
            total_tokens: out.tokens,
        },
    };
    let body = serde_json::to_vec(&resp).map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(super::json_response(body, stages, t))
}

/// Little-endian f32 bytes, base64: what OpenAI clients decode.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
