//! The one error type of the crate. Client mistakes and server faults are told
//! apart by [`CollectionError::is_client_error`], so the HTTP layer maps them to
//! 4xx and 5xx in one place.

/// What can go wrong with a collection operation.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    #[error("collection `{0}` not found")]
    NotFound(String),
    #[error("collection `{0}` already exists")]
    AlreadyExists(String),
    #[error("invalid collection name: {0}")]
    InvalidName(String),
    #[error("too many collections (at most {max})")]
    TooMany { max: usize },
    #[error("wrong vector size: expected {expected}, got {got}")]
    WrongVectorSize { expected: usize, got: usize },
    #[error("vectors must hold finite numbers only (no NaN or infinity)")]
    NonFinite,
    #[error("too many points in one request: {got} (at most {max})")]
    TooManyPoints { max: usize, got: usize },
    #[error("payload too large: {got} bytes (at most {max})")]
    PayloadTooLarge { max: usize, got: usize },
    #[error("bad filter: {0}")]
    BadFilter(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("index error: {0}")]
    Index(String),
    /// Too much waits to be indexed; the client should retry shortly.
    #[error("busy: {0}")]
    Busy(String),
}

impl CollectionError {
    /// True when the request was at fault (a 4xx), false for a server fault (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Storage(_) | Self::Index(_) | Self::Busy(_))
    }

    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        Self::Storage(e.to_string())
    }

    pub(crate) fn index(e: impl std::fmt::Display) -> Self {
        Self::Index(e.to_string())
    }
}

impl From<std::io::Error> for CollectionError {
    fn from(e: std::io::Error) -> Self {
        Self::storage(e)
    }
}

pub type Result<T, E = CollectionError> = std::result::Result<T, E>;
