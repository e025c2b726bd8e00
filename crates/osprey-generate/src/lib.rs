//! Text generation on GGUF models through llama.cpp: a decode loop that batches
//! concurrent sequences continuously under a KV token budget, chat templates,
//! and stop sequences.

mod budget;
mod config;
mod engine;
mod error;
mod generator;
mod kept;
mod request;
mod sampler;
mod stats;
mod template;
mod text;

pub use budget::Budget;
pub use config::GenerationConfig;
pub use error::GenerateError;
pub use generator::{Generator, GeneratorInfo};
pub use request::{Event, Finish, Job, Sampling};
pub use sampler::argmax;
pub use stats::Stats;
pub use template::{Message, check_role};
pub use text::{Step, TextStream};
