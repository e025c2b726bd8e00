//! `POST /v1/embeddings`, compatible with OpenAI's embeddings API.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use osprey_engine::EmbedOptions;
use serde::{Deserialize, Serialize};

use crate::input::{Inputs, read_json};
use crate::{ApiError, AppState};

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

#[derive(Deserialize)]
pub struct EmbeddingsRequest {
    input: Inputs,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: EncodingFormat,
    #[serde(default)]
    dimensions: Option<i64>,
    /// Not in OpenAI's API: refuse over-long inputs instead of cutting them.
    #[serde(default = "crate::input::yes")]
    truncate: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Float(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct EmbeddingsResponse<'a> {
    object: &'static str,
    data: Vec<Item<'a>>,
    model: &'a str,
    usage: Usage,
}

pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: EmbeddingsRequest = read_json(&state.config, &headers, body).await?;
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
        .iter()
        .enumerate()
        .map(|(index, v)| Item {
            object: "embedding",
            index,
            embedding: match req.encoding_format {
                EncodingFormat::Float => Vector::Float(&v[..]),
                EncodingFormat::Base64 => Vector::Base64(base64_f32(v)),
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
    Ok(super::json_response(body, stages, t, out.cache))
}

/// Little-endian f32 bytes, base64: what OpenAI clients decode.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
