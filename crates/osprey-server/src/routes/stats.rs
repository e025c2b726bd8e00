//! `GET /admin/stats` (rolling windows of 1 min, 5 min and 1 h with percentiles)
//! and `GET /admin/stats.csv` (the per-second history, for spreadsheets).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use osprey_observe::StatsReport;

use crate::AppState;

pub async fn json(State(state): State<AppState>) -> Json<StatsReport> {
    Json(state.observe.report(state.started.elapsed().as_secs_f64()))
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
