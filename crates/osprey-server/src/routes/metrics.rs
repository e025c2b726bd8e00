//! `GET /metrics` in Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    // Size gauges (entries, bytes per tier) are read when scraped.
    if let Some(cache) = state.engine.get().and_then(|p| p.cache()) {
        let _ = cache.stats();
    }
    crate::observe::refresh_gauges(&state);
    let mut resp = crate::observe::render(&state).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
