//! The request pipeline between the HTTP layer and the models: per-item cache
//! lookup, single flight for identical inputs, tokenization, a batch queue bounded
//! in tokens, and replica workers on dedicated OS threads.

mod accuracy;
mod admission;
mod capacity;
mod chunked;
mod config;
mod engine;
mod error;
mod flight;
mod input;
mod pipeline;
mod queue;
mod queue_stats;
mod registry;
mod tensor_engine;
mod tuning;
mod worker;

pub use accuracy::Accuracy;
pub use admission::{Admission, AdmissionConfig, Deadline, Permit, Ticket, estimate_tokens};
pub use capacity::{Load, ReplicaLoad};
pub use config::{BatchingConfig, EngineConfig, ThreadPool};
pub use engine::{
    BackendFactory, Budgets, EmbedOptions, Embeddings, Engine, ModelInfo, ModelParts, Timings,
};
pub use error::EngineError;
pub use input::{Text, TextInput};
pub use osprey_cache as cache;
pub use osprey_generate as generate;
pub use osprey_models::{
    Backend, BackendKind, ModelDir, Pooling, Precision, Task, TextTokenizer, Token, TokenizeError,
    infer_task,
};
pub use osprey_models::{
    DataType, NamedTensor, TensorData, TensorSpec, prefer_low_memory, release_freed_memory,
};
pub use pipeline::{CacheStatus, Embedded, Pipeline};
pub use queue_stats::QueueStats;
pub use registry::{Backing, Registry, ResolveError, Served};
pub use tensor_engine::{TensorEngine, TensorInfo};
pub use tuning::{BoundTotals, ClimbSettings, Climber, Direction, Knob, Step, Window};
