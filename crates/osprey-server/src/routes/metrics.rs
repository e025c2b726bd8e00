//! `GET /metrics` in Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    // Size gauges (entries, bytes per tier) and lookup durations are read when
    // scraped.
    let cache = state
        .engine
        .get()
        .and_then(|p| p.cache())
        .map(|c| c.stats());
    crate::observe::refresh_gauges(&state);
    let mut resp = crate::observe::render(&state, cache.as_ref()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
