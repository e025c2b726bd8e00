/// Why a request body was refused. Each variant maps to one HTTP status in the
/// server: 400, 422, 413 and 415 in that order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("unsupported content encoding `{0}`: send `gzip` or none")]
    UnsupportedEncoding(String),
    #[error("the gzip body could not be decompressed: {0}")]
    BadEncoding(String),
}
