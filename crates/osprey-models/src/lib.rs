//! Model directories in Hugging Face layout, the tokenization rules Osprey applies
//! on top of a shipped `tokenizer.json`, and the [`Backend`] trait with its backends.

mod backend;
mod candle_bert;
mod error;
mod gelu;
mod memory;
mod model_dir;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "onnx")]
mod onnx_cache;
#[cfg(feature = "onnx")]
mod onnx_graph;
#[cfg(feature = "onnx")]
pub mod onnx_tensor;
mod pooling;
mod revision;
mod task;
mod tensor;
#[cfg(feature = "test-support")]
pub mod testkit;
mod tokenize;

pub use backend::{Backend, BackendKind, BackendOptions, Precision, load_backends, weights_file};
pub use error::{ModelError, Result};
pub use memory::{low_memory, prefer_low_memory, release_freed_memory};
pub use model_dir::{ModelDir, Pooling, TransformerConfig};
pub use pooling::{l2_normalize, pool};
pub use revision::revision_of;
pub use task::{Task, infer_task};
pub use tensor::{
    DataType, NamedTensor, TensorBackend, TensorData, TensorModel, TensorSpec, load_tensor_model,
};
pub use tokenize::{Encoded, TextTokenizer, Token, TokenizeError};
