//! Qdrant's response envelope, `{"result": ..., "status": "ok", "time": seconds}`,
//! and its error shape, `{"status": {"error": "..."}, "time": seconds}`, with the
//! status code Qdrant gives each kind of mistake.

use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use osprey_collections::CollectionError;
use serde::Serialize;

use crate::ApiError;

#[derive(Serialize)]
struct Envelope<T> {
    result: T,
    status: &'static str,
    time: f64,
}

/// A successful answer, timed from `started`.
pub fn ok<T: Serialize>(started: Instant, result: T) -> Response {
    let body = Envelope {
        result,
        status: "ok",
        time: started.elapsed().as_secs_f64(),
    };
    axum::Json(body).into_response()
}

/// An error in Qdrant's shape.
#[derive(Debug)]
pub struct QdrantError {
    status: StatusCode,
    message: String,
    /// Osprey's own refusals (overload, rate limits) keep their headers.
    headers: Option<Box<axum::http::HeaderMap>>,
}

impl QdrantError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

#[derive(Serialize)]
struct ErrorBody {
    status: ErrorStatus,
    time: f64,
}

#[derive(Serialize)]
struct ErrorStatus {
    error: String,
}

impl IntoResponse for QdrantError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self.message, "collection request failed");
        }
        let body = ErrorBody {
            status: ErrorStatus {
                error: self.message,
            },
            time: 0.0,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(headers) = self.headers {
            for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
                if let Some(v) = headers.get(&name) {
                    resp.headers_mut().insert(name, v.clone());
                }
            }
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl From<CollectionError> for QdrantError {
    fn from(e: CollectionError) -> Self {
        let status = match &e {
            CollectionError::NotFound(_) => StatusCode::NOT_FOUND,
            CollectionError::AlreadyExists(_) => StatusCode::CONFLICT,
            CollectionError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            CollectionError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &e {
            CollectionError::NotFound(name) => {
                format!("Not found: Collection `{name}` doesn't exist!")
            }
            CollectionError::Busy(_) => format!("Service unavailable: {e}"),
            _ if e.is_client_error() => format!("Wrong input: {e}"),
            _ => format!("Service internal error: {e}"),
        };
        let mut err = Self::new(status, message);
        if matches!(e, CollectionError::Busy(_)) {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            err.headers = Some(Box::new(headers));
        }
        err
    }
}

/// Osprey's own errors (body limits, auth, overload, the embedding pipeline) keep
/// their status code and message, in Qdrant's shape.
impl From<ApiError> for QdrantError {
    fn from(e: ApiError) -> Self {
        let message = e.to_string();
        let resp = e.into_response();
        Self {
            status: resp.status(),
            message,
            headers: Some(Box::new(resp.headers().clone())),
        }
    }
}

/// A blocking call that panicked or was cancelled.
impl From<tokio::task::JoinError> for QdrantError {
    fn from(_: tokio::task::JoinError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Service internal error: the operation did not complete",
        )
    }
}
