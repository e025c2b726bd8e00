//! `GET /admin/stats` (rolling windows of 1 min, 5 min and 1 h with percentiles)
//! and `GET /admin/stats.csv?window=1h` (the history, for spreadsheets: a row a
//! second up to an hour, a row a minute beyond, up to 24 h).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use osprey_observe::{StatsReport, parse_window};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

pub async fn json(State(state): State<AppState>) -> Json<StatsReport> {
    Json(state.observe.report(state.started.elapsed().as_secs_f64()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvQuery {
    window: Option<String>,
}

pub async fn csv(
    State(state): State<AppState>,
    query: Result<Query<CsvQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let secs = match query.window.as_deref() {
        None => HOUR,
        Some(w) => parse_window(w).map_err(ApiError::BadQuery)?,
    };
    let body = if secs <= HOUR {
        state.observe.stats.csv(secs)
    } else {
        let rows = state.observe.day_rows(secs.div_ceil(60) as usize);
        osprey_observe::csv(rows.iter())
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"osprey-stats.csv\""),
    );
    Ok(resp)
}

/// Up to this window the CSV has a row a second.
const HOUR: u64 = 3600;
