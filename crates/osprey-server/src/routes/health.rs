//! Liveness and readiness. Ready means the model is loaded and warmed up.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::AppState;

pub async fn live(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"status": "live", "uptime_seconds": state.started.elapsed().as_secs_f64()}))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.engine.get() {
        Some(engine) => {
            let info = engine.info();
            let queued = engine.engine().queued_tokens();
            let capacity = info.max_queue_tokens;
            let saturated = queued >= capacity;
            let mut components = json!({
                "model": {"status": "ready", "id": info.id, "revision": info.revision, "backend": info.backend},
                "queue": {
                    "status": if saturated { "saturated" } else { "ok" },
                    "queued_tokens": queued,
                    "capacity_tokens": capacity,
                },
            });
            let mut degraded = false;
            if let Some(cache) = engine.cache() {
                for (tier, health) in cache.health() {
                    degraded |= health.status != "ok";
                    components[format!("cache_{}", tier.label())] = json!(health);
                }
            }
            // A degraded cache tier slows nothing down and loses nothing: still ready.
            (
                StatusCode::OK,
                Json(json!({
                    "status": if degraded { "degraded" } else { "ready" },
                    "components": components,
                })),
            )
        }
        None => {
            let (status, reason) = match state.engine.failure() {
                Some(f) => ("failed", f.to_owned()),
                None => ("loading", "loading and warming up the model".to_owned()),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not_ready",
                    "components": {"model": {"status": status, "reason": reason}}
                })),
            )
        }
    }
}
