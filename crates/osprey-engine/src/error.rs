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
    #[error("{max_in_flight} requests are in flight, the most this server admits; retry shortly")]
    Busy { max_in_flight: usize },
    #[error("the request's deadline of {ms} ms passed before it finished")]
    DeadlineExceeded { ms: u64 },
    #[error(
        "the work queued and running would take about {wait_ms} ms to finish this request, more than its deadline of {deadline_ms} ms; retry shortly"
    )]
    DeadlineUnreachable {
        wait_ms: u64,
        deadline_ms: u64,
        retry_after_secs: u64,
    },
    #[error(
        "the work ahead would keep this request queued about {wait_ms} ms, more than the {max_queue_ms} ms this server lets a request queue; retry shortly"
    )]
    QueueTooLong {
        wait_ms: u64,
        max_queue_ms: u64,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    BadTensor(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("inference failed: {0}")]
    Backend(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("worker thread: {0}")]
    Spawn(#[from] std::io::Error),
}
