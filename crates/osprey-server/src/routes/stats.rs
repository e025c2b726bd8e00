//! `GET /admin/stats` (rolling windows of 1 min, 5 min and 1 h with percentiles)
//! and `GET /admin/stats.csv` (the per-second history, for spreadsheets).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;

pub async fn json(State(state): State<AppState>) -> Json<Value> {
    let obs = &state.observe;
    let (active, _) = obs.alerts();
    Json(json!({
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "metrics_enabled": obs.config.metrics,
        "windows": {
            "1m": obs.stats.summary(60),
            "5m": obs.stats.summary(300),
            "1h": obs.stats.summary(3600),
        },
        "slo": obs.slo(),
        "alerts_active": active.len(),
    }))
}

pub async fn csv(State(state): State<AppState>) -> Response {
    let mut resp = state.observe.stats.csv().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"osprey-stats.csv\""),
    );
    resp
}
