use std::path::PathBuf;

use osprey_models::BackendKind;
use serde::{Deserialize, Serialize};

/// How requests are grouped into batches and how many replicas run them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingConfig {
    /// Most tokens one batch may hold (counting padding on padding backends).
    pub max_batch_tokens: usize,
    /// Most inputs one batch may hold.
    pub max_batch_requests: usize,
    /// Most tokens waiting in the queue; beyond it new requests are refused at once.
    pub max_queue_tokens: usize,
    /// Model replicas, each on its own OS thread.
    pub replicas: usize,
    /// Intra-op threads per replica (0 = all cores divided among the replicas).
    pub threads: usize,
    /// On padding backends (onnx), most computed tokens per real token in a batch;
    /// inputs of other lengths wait for a batch of their own.
    pub max_padding_ratio: f64,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_batch_tokens: 4096,
            max_batch_requests: 32,
            max_queue_tokens: 32_768,
            // Two single-threaded replicas beat one two-threaded replica by 25-30% in
            // throughput on two cores (no intra-op synchronisation).
            replicas: 2,
            threads: 0,
            max_padding_ratio: 1.25,
        }
    }
}

impl BatchingConfig {
    /// Threads per replica once `0` is resolved against the machine.
    pub fn threads_per_replica(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / self.replicas.max(1)).max(1)
    }
}

/// Everything the engine needs to start.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub backend: BackendKind,
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime repacks the weights of matrix products for its kernels in each
    /// replica: about 4% more throughput, for about half the model's size again
    /// per replica. Off, replicas read one copy of the weights.
    pub onnx_prepack: bool,
    pub batching: BatchingConfig,
    pub admission: crate::AdmissionConfig,
}
