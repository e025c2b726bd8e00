//! `GET /dashboard`: one self-contained page (its charts are drawn by its own
//! canvas code), and `GET /dashboard/data?since=T`, the per-second series it polls.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use osprey_observe::{DASHBOARD_PAGE, DashboardData};
use serde::Deserialize;

use crate::{ApiError, AppState};

pub async fn page() -> Response {
    let mut resp = DASHBOARD_PAGE.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The query string: only `since`.
#[derive(Debug, Deserialize)]
pub struct DataQuery {
    since: Option<String>,
}

fn since(query: Result<Query<DataQuery>, QueryRejection>) -> Result<Option<u64>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    query
        .since
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::Invalid(format!("since must be a unix time in seconds, got `{v}`"))
            })
        })
        .transpose()
}

pub async fn data(
    State(state): State<AppState>,
    query: Result<Query<DataQuery>, QueryRejection>,
) -> Result<Json<DashboardData>, ApiError> {
    let since = since(query)?;
    Ok(Json(state.observe.dashboard(since)))
}
