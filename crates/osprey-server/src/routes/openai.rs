//! `POST /v1/embeddings`, compatible with OpenAI's embeddings API.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use osprey_engine::cache::Entry;
use osprey_engine::{EmbedOptions, Task};
use osprey_wire::{EmbeddingsRequest, EncodingFormat};
use serde::Serialize;

use super::Call;
use crate::input::read_json;
use crate::{ApiError, AppState};

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: String,
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
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let req: EmbeddingsRequest = read_json(&state, &call.headers, body).await?;
    crate::input::check_inputs(&state.config, &req.input.0)?;
    let served = super::model(
        &state,
        &call,
        req.model.as_deref(),
        Task::Embed,
        req.input.0.len(),
    )?;
    let dims = served.pipeline()?.info().dims;
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
    let (out, stages, chunks) =
        super::embed_texts(&state, &call, &served, &req.input.0, opts).await?;
    let t = Instant::now();
    let model = req.model.as_deref().unwrap_or(served.name.as_str());
    let body = match req.encoding_format {
        EncodingFormat::Float => float_body(&out.entries, model, out.tokens),
        EncodingFormat::Base64 => {
            let resp = EmbeddingsResponse {
                object: "list",
                data: out
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(index, e)| Item {
                        object: "embedding",
                        index,
                        embedding: base64_f32(&e.vector),
                    })
                    .collect(),
                model,
                usage: Usage {
                    prompt_tokens: out.tokens,
                    total_tokens: out.tokens,
                },
            };
            serde_json::to_vec(&resp).map_err(|e| ApiError::Invalid(e.to_string()))?
        }
    };
    let mut resp = super::json_response(body, stages, t, out.cache, &served);
    super::name_chunks(&mut resp, chunks.as_deref());
    Ok(resp)
}

/// The float response written around each entry's pre-rendered JSON array (the
/// same bytes serde_json would write, without formatting every float again).
fn float_body(entries: &[Entry], model: &str, tokens: usize) -> Vec<u8> {
    let size: usize = entries.iter().map(|e| e.json().len() + 48).sum();
    let mut b = Vec::with_capacity(size + 128 + model.len());
    b.extend_from_slice(br#"{"object":"list","data":["#);
    for (index, e) in entries.iter().enumerate() {
        if index > 0 {
            b.push(b',');
        }
        b.extend_from_slice(br#"{"object":"embedding","index":"#);
        b.extend_from_slice(index.to_string().as_bytes());
        b.extend_from_slice(br#","embedding":"#);
        b.extend_from_slice(e.json());
        b.push(b'}');
    }
    b.extend_from_slice(br#"],"model":"#);
    // A string always serializes; escaping is serde_json's.
    let _ = serde_json::to_writer(&mut b, model);
    b.extend_from_slice(
        format!(r#","usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#).as_bytes(),
    );
    b
}

/// Little-endian f32 bytes, base64: what OpenAI clients decode.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
