//! `GET /info`: what is served and how it batches.

use axum::Json;
use axum::extract::State;

use crate::{ApiError, AppState};

pub async fn info(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = state.engine()?;
    let m = engine.info();
    Ok(Json(serde_json::json!({
        "model_id": m.id,
        "model_revision": m.revision,
        "model_type": "embedding",
        "dims": m.dims,
        "max_input_length": m.max_input_tokens,
        "pooling": m.pooling,
        "normalizes": m.normalizes,
        "backend": m.backend,
        "replicas": m.replicas,
        "threads_per_replica": m.threads_per_replica,
        "max_batch_tokens": m.max_batch_tokens,
        "max_batch_requests": m.max_batch_requests,
        "max_queue_tokens": m.max_queue_tokens,
        "max_client_batch_size": state.config.max_inputs,
        "max_input_chars": state.config.max_input_chars,
        "max_body_bytes": state.config.max_body_bytes,
        "cache_tiers": engine.cache().map(|c| c.stats().tiers.iter().map(|t| t.tier.label()).collect::<Vec<_>>()).unwrap_or_default(),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}
