#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache entry is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("cache entry cannot be this model's output: {0}")]
    Invalid(&'static str),
    #[error("cache entry was written by format version {0}, this build reads version {1}")]
    Version(u8, u8),
    #[error("disk cache: {0}")]
    Disk(String),
    #[error("disk cache {path} is in use by another process (a running server?)")]
    DiskInUse { path: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0} ms")]
    RedisTimeout(u64),
    #[error("invalid cache configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CacheError {
    pub(crate) fn disk(e: impl std::fmt::Display) -> Self {
        Self::Disk(e.to_string())
    }
}
