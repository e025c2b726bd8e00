//! `GET /info`: what is served and how it batches.

use axum::Json;
use axum::extract::State;
use osprey_engine::Pooling;
use serde::Serialize;

use crate::{ApiError, AppState};

/// The `/info` body. Fields stand in alphabetical order, the order clients have
/// always seen them in.
#[derive(Debug, Serialize)]
pub struct Info {
    /// For quantized weights, their cosine to fp32 on a fixed sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<osprey_engine::Accuracy>,
    backend: &'static str,
    cache_tiers: Vec<&'static str>,
    dims: usize,
    max_batch_requests: usize,
    max_batch_tokens: usize,
    max_body_bytes: usize,
    max_client_batch_size: usize,
    max_input_chars: usize,
    max_input_length: usize,
    max_queue_tokens: usize,
    model_id: String,
    model_revision: String,
    model_type: &'static str,
    normalizes: bool,
    pooling: Pooling,
    precision: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    profile: String,
    replicas: usize,
    thread_pool: &'static str,
    threads_per_replica: usize,
    version: &'static str,
}

pub async fn info(State(state): State<AppState>) -> Result<Json<Info>, ApiError> {
    let engine = state.engine()?;
    let m = engine.info();
    // Budgets change live; the rest is fixed at load.
    let b = engine.engine().budgets();
    let cache_tiers = engine
        .cache()
        .map(|c| c.stats().tiers.iter().map(|t| t.tier.label()).collect())
        .unwrap_or_default();
    Ok(Json(Info {
        accuracy: m.accuracy,
        backend: m.backend,
        cache_tiers,
        dims: m.dims,
        max_batch_requests: b.max_batch_requests,
        max_batch_tokens: b.max_batch_tokens,
        max_body_bytes: state.config.max_body_bytes,
        max_client_batch_size: state.config.max_inputs,
        max_input_chars: state.config.max_input_chars,
        max_input_length: m.max_input_tokens,
        max_queue_tokens: b.max_queue_tokens,
        model_id: m.id.clone(),
        model_revision: m.revision.clone(),
        model_type: "embedding",
        normalizes: m.normalizes,
        pooling: m.pooling,
        precision: m.precision,
        profile: m.profile.clone(),
        replicas: engine.engine().replica_count(),
        thread_pool: m.thread_pool,
        threads_per_replica: engine
            .engine()
            .layout()
            .first()
            .copied()
            .unwrap_or(m.threads_per_replica),
        version: env!("CARGO_PKG_VERSION"),
    }))
}
