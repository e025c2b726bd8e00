//! `GET /admin/cache` (statistics per tier) and `DELETE /admin/cache` (empty every tier).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn cache_stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let pipeline = state.engine()?;
    Ok(Json(match pipeline.cache() {
        Some(cache) => json!({
            "enabled": true,
            "in_flight": pipeline.in_flight(),
            "tiers": cache.stats().tiers,
        }),
        None => json!({"enabled": false, "in_flight": pipeline.in_flight(), "tiers": []}),
    }))
}

pub async fn cache_clear(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let pipeline = state.engine()?;
    let Some(cache) = pipeline.cache() else {
        return Ok(Json(json!({"enabled": false, "cleared": {}})));
    };
    let cleared = cache.clear().await?;
    tracing::info!(?cleared, "cache cleared");
    Ok(Json(json!({"enabled": true, "cleared": cleared})))
}
