//! `GET /admin/profile?seconds=N`: a CPU flame graph (SVG) of the running server,
//! sampled with pprof. N is bounded and one profile runs at a time.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::{ApiError, AppState};

pub const MAX_SECONDS: u64 = 60;
const DEFAULT_SECONDS: u64 = 5;
/// Samples per second: odd, so it does not beat with periodic work.
const FREQUENCY: i32 = 99;

/// The query string: only `seconds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileQuery {
    seconds: Option<String>,
}

fn seconds(query: Result<Query<ProfileQuery>, QueryRejection>) -> Result<u64, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::Invalid(format!("{} (only `seconds`)", e.body_text())))?;
    let Some(v) = query.seconds else {
        return Ok(DEFAULT_SECONDS);
    };
    v.parse()
        .ok()
        .filter(|n| (1..=MAX_SECONDS).contains(n))
        .ok_or_else(|| {
            ApiError::Invalid(format!(
                "seconds must be a whole number from 1 to {MAX_SECONDS}, got `{v}`"
            ))
        })
}

/// An error in the API's shape for the cases `ApiError` has no variant for.
fn error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = json!({"error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

fn busy() -> Response {
    let mut resp = error(
        StatusCode::CONFLICT,
        "conflict",
        "another profile is running; try again when it ends".into(),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

pub async fn flamegraph(
    State(state): State<AppState>,
    query: Result<Query<ProfileQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let n = seconds(query)?;
    let Some(slot) = state.observe.begin_profile() else {
        return Ok(busy());
    };
    let guard = match pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
    {
        Ok(g) => g,
        Err(e) => {
            let msg = format!("the profiler could not start: {e}");
            return Ok(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                msg,
            ));
        }
    };
    tokio::time::sleep(Duration::from_secs(n)).await;
    // Symbolizing takes a while: off the async workers.
    let built = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let report = guard.report().build().map_err(|e| e.to_string())?;
        if report.data.is_empty() {
            // An idle server leaves no samples, and an empty flame graph is an error
            // to the renderer: say so in the picture instead.
            return Ok(format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40"><text x="10" y="25">osprey CPU, {n} s: no samples (the server was idle)</text></svg>"#
            )
            .into_bytes());
        }
        let mut svg = Vec::new();
        let mut options = pprof::flamegraph::Options::default();
        options.title = format!("osprey CPU, {n} s");
        report
            .flamegraph_with_options(&mut svg, &mut options)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(svg)
    })
    .await;
    let svg = match built {
        Ok(Ok(svg)) => svg,
        Ok(Err(e)) => {
            let msg = format!("profiling failed: {e}");
            return Ok(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                msg,
            ));
        }
        Err(e) => {
            let msg = format!("profiling failed: {e}");
            return Ok(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                msg,
            ));
        }
    };
    let mut resp = svg.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the handler gets for `/admin/profile?QUERY`.
    fn seconds_of(query: &str) -> Result<u64, ApiError> {
        let uri: axum::http::Uri = format!("/admin/profile{query}")
            .parse()
            .map_err(|_| ApiError::Invalid("bad test uri".into()))?;
        seconds(Query::try_from_uri(&uri))
    }

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(seconds_of("").ok(), Some(DEFAULT_SECONDS));
        assert_eq!(seconds_of("?").ok(), Some(DEFAULT_SECONDS));
        assert_eq!(seconds_of("?seconds=2").ok(), Some(2));
        for bad in [
            "?seconds=0",
            "?seconds=61",
            "?seconds=x",
            "?seconds=",
            "?secs=2",
        ] {
            assert!(seconds_of(bad).is_err(), "{bad}");
        }
        let Err(ApiError::Invalid(m)) = seconds_of("?secs=2") else {
            panic!("an unknown parameter is refused");
        };
        assert!(m.contains("secs") && m.contains("only `seconds`"), "{m}");
    }
}
