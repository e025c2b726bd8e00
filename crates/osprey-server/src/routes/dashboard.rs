//! `GET /dashboard`: one self-contained page (its charts are drawn by its own
//! canvas code), and `GET /dashboard/data?since=T`, the per-second series it polls.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use osprey_observe::{DASHBOARD_PAGE, DashboardData};

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

fn since(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if let Some(v) = pair.strip_prefix("since=") {
            return v.parse().map(Some).map_err(|_| {
                ApiError::Invalid(format!("since must be a unix time in seconds, got `{v}`"))
            });
        }
    }
    Ok(None)
}

pub async fn data(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<DashboardData>, ApiError> {
    let since = since(query.as_deref())?;
    Ok(Json(state.observe.dashboard(since)))
}
