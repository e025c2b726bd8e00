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
            let load = queued as f64 / capacity.max(1) as f64;
            // Busy warns before the queue starts refusing work.
            let queue_status = match load {
                l if l >= 1.0 => "saturated",
                l if l >= 0.8 => "busy",
                _ => "ok",
            };
            let mut components = json!({
                "model": {
                    "status": "ready",
                    "reason": format!("{} loaded and warmed up on {}", info.id, info.backend),
                    "id": info.id, "revision": info.revision, "backend": info.backend,
                },
                "queue": {
                    "status": queue_status,
                    "reason": format!("{queued} of {capacity} tokens queued ({:.0}%)", load * 100.0),
                    "queued_tokens": queued,
                    "capacity_tokens": capacity,
                    "saturation": load,
                },
            });
            let mut degraded = false;
            if let Some(cache) = engine.cache() {
                for (tier, health) in cache.health() {
                    degraded |= health.status != "ok";
                    let mut h = json!(health);
                    if h.get("reason").is_none() {
                        h["reason"] = json!("answering");
                    }
                    components[format!("cache_{}", tier.label())] = h;
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
