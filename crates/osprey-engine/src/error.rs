use osprey_models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "input {index} has {tokens} tokens, more than the model's maximum of {max}; send `truncate: true` to cut it"
    )]
    InputTooLong {
        index: usize,
        tokens: usize,
        max: usize,
    },
    #[error("input {index} could not be tokenized: {message}")]
    Tokenize { index: usize, message: String },
    #[error("overloaded: {queued} tokens are queued (capacity {capacity}); retry shortly")]
    Overloaded { queued: usize, capacity: usize },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("inference failed: {0}")]
    Backend(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("worker thread: {0}")]
    Spawn(#[from] std::io::Error),
}
