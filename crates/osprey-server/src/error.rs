//! One error type for every route and the one place that maps it to a status code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use osprey_engine::{EngineError, ResolveError};
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
    #[error("{0}")]
    BadRequest(String),
    /// A query string the route does not take.
    #[error("{0}")]
    BadQuery(String),
    #[error("unsupported content encoding `{0}`: send `gzip` or none")]
    UnsupportedEncoding(String),
    #[error("{message}")]
    Unauthorized { message: String, missing: bool },
    #[error("{0}")]
    Forbidden(String),
    /// The resource is busy with another operation of the same kind.
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cache: {0}")]
    Cache(#[from] osprey_engine::cache::CacheError),
    #[error(transparent)]
    Model(#[from] osprey_engine::ResolveError),
    #[error(transparent)]
    Manage(#[from] crate::ManageError),
    #[error(transparent)]
    Generate(#[from] osprey_engine::generate::GenerateError),
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
            Self::BadRequest(_) | Self::BadQuery(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // A tier the operator asked for (clear, stats) is unreachable.
            Self::Cache(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Engine(e) => match e {
                EngineError::InputTooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                EngineError::Tokenize { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                EngineError::BadTensor(_) => StatusCode::BAD_REQUEST,
                EngineError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
                EngineError::Busy { .. }
                | EngineError::DeadlineUnreachable { .. }
                | EngineError::QueueTooLong { .. }
                | EngineError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                EngineError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
                EngineError::Backend(_) | EngineError::Model(_) | EngineError::Spawn(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            Self::Model(e) | Self::Manage(crate::ManageError::Resolve(e)) => match e {
                ResolveError::Unknown(_) | ResolveError::NoModel(_) => StatusCode::NOT_FOUND,
                ResolveError::WrongTask { .. } | ResolveError::NotText(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ResolveError::Loading(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::Generate(e) => {
                use osprey_engine::generate::GenerateError as G;
                match e {
                    G::Invalid(_) => StatusCode::BAD_REQUEST,
                    G::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
                    G::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                    G::Config(_) | G::Load(_) | G::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }
            Self::Manage(e) => match e {
                crate::ManageError::Invalid(_) | crate::ManageError::Load { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                crate::ManageError::Exists(_) => StatusCode::CONFLICT,
                crate::ManageError::Resolve(_) => StatusCode::NOT_FOUND,
            },
        }
    }

    /// The OpenAI-style error type.
    fn kind(&self) -> &'static str {
        match self.status() {
            _ if matches!(self, Self::RateLimited { .. }) => "rate_limit_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
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
            Self::NotReady | Self::Model(ResolveError::Loading(_)) => Some("not_ready"),
            Self::BadRequest(_) => Some("bad_encoding"),
            Self::BadQuery(_) => Some("bad_query"),
            Self::UnsupportedEncoding(_) => Some("unsupported_encoding"),
            Self::Unauthorized { missing: true, .. } => Some("missing_credentials"),
            Self::Unauthorized { missing: false, .. } => Some("invalid_credentials"),
            Self::Forbidden(_) => Some("insufficient_scope"),
            Self::RateLimited { .. } => Some("rate_limited"),
            Self::Engine(EngineError::Busy { .. }) => Some("too_many_in_flight"),
            Self::Engine(EngineError::DeadlineExceeded { .. }) => Some("deadline_exceeded"),
            Self::Engine(EngineError::DeadlineUnreachable { .. }) => Some("deadline_unreachable"),
            Self::Engine(EngineError::QueueTooLong { .. }) => Some("queue_too_long"),
            Self::Model(ResolveError::Unknown(_)) => Some("model_not_found"),
            Self::Engine(EngineError::BadTensor(_)) => Some("invalid_tensor"),
            Self::Model(ResolveError::WrongTask { .. }) => Some("wrong_task"),
            Self::Manage(crate::ManageError::Exists(_)) => Some("model_exists"),
            Self::Manage(crate::ManageError::Load { .. }) => Some("model_load_failed"),
            Self::Generate(osprey_engine::generate::GenerateError::Busy { .. }) => {
                Some("kv_budget_full")
            }
            Self::Generate(osprey_engine::generate::GenerateError::Invalid(_)) => {
                Some("invalid_value")
            }
            _ => None,
        }
    }
}

impl ApiError {
    /// RFC 6750's `WWW-Authenticate` challenge for authentication failures.
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::Unauthorized { missing: true, .. } => Some(r#"Bearer realm="osprey""#),
            Self::Unauthorized { missing: false, .. } => {
                Some(r#"Bearer realm="osprey", error="invalid_token""#)
            }
            Self::Forbidden(_) => Some(r#"Bearer realm="osprey", error="insufficient_scope""#),
            _ => None,
        }
    }
}

impl From<osprey_wire::WireError> for ApiError {
    fn from(e: osprey_wire::WireError) -> Self {
        use osprey_wire::WireError as W;
        match e {
            W::MalformedJson(m) => Self::MalformedJson(m),
            W::Invalid(m) => Self::Invalid(m),
            W::TooLarge(m) => Self::TooLarge(m),
            W::UnsupportedEncoding(m) => Self::UnsupportedEncoding(m),
            e @ W::BadEncoding(_) => Self::BadRequest(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // 503 and 504 are the server protecting itself, not failures.
        if status.is_server_error()
            && !matches!(
                status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
            )
        {
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
        let h = resp.headers_mut();
        if let Self::RateLimited {
            retry_after_secs, ..
        }
        | Self::Engine(
            EngineError::DeadlineUnreachable {
                retry_after_secs, ..
            }
            | EngineError::QueueTooLong {
                retry_after_secs, ..
            },
        ) = &self
        {
            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        } else if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(challenge) = self.challenge() {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        resp
    }
}
