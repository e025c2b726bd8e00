//! One error type for every route and the one place that maps it to a status code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use osprey_engine::EngineError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("unsupported content type `{0}`: send `content-type: application/json`")]
    UnsupportedMediaType(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the model is still loading")]
    NotReady,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cache: {0}")]
    Cache(#[from] osprey_engine::cache::CacheError),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: String,
    code: Option<&'a str>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            // A tier the operator asked for (clear, stats) is unreachable.
            Self::Cache(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Engine(e) => match e {
                EngineError::InputTooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                EngineError::Tokenize { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                EngineError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
                EngineError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                EngineError::Backend(_) | EngineError::Model(_) | EngineError::Spawn(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }

    /// The OpenAI-style error type.
    fn kind(&self) -> &'static str {
        match self.status() {
            StatusCode::TOO_MANY_REQUESTS => "overloaded",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::NOT_FOUND => "not_found",
            s if s.is_server_error() => "internal_error",
            _ => "invalid_request_error",
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Self::MalformedJson(_) => Some("malformed_json"),
            Self::TooLarge(_) | Self::Engine(EngineError::InputTooLong { .. }) => Some("too_large"),
            Self::UnsupportedMediaType(_) => Some("unsupported_media_type"),
            Self::Engine(EngineError::Overloaded { .. }) => Some("queue_full"),
            Self::NotReady => Some("not_ready"),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "request failed");
        }
        let body = Body {
            error: Detail {
                kind: self.kind(),
                message: self.to_string(),
                code: self.code(),
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
