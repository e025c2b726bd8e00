//! The client's own deadline, asked for in a request header. Admission control and
//! the deadline it enforces live in the engine (`osprey_engine::Admission`).

use std::time::Duration;

use axum::http::HeaderMap;

use crate::ApiError;

/// Request header asking for a deadline shorter than the configured one (ms).
pub const DEADLINE_HEADER: &str = "x-osprey-deadline-ms";

/// The deadline the request asks for, if any. A header that is not a positive
/// whole number of milliseconds is a 400.
pub fn asked(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(v) = headers.get(DEADLINE_HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{DEADLINE_HEADER} must be a positive whole number of milliseconds"
            ))
        })
}
