//! The request pipeline between the HTTP layer and the models: tokenization, a
//! batch queue bounded in tokens, and replica workers on dedicated OS threads.

mod config;
mod engine;
mod error;
mod queue;
mod worker;

pub use config::{BatchingConfig, EngineConfig};
pub use engine::{EmbedOptions, Embeddings, Engine, ModelInfo, Timings};
pub use error::EngineError;
pub use osprey_models::{BackendKind, ModelDir};
