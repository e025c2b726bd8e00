use std::path::PathBuf;

use osprey_models::{BackendKind, Precision};
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
    /// Model replicas, each on its own OS thread (0: one on a shared pool, else
    /// one per core).
    pub replicas: usize,
    /// Intra-op threads per replica (0 = all cores divided among the replicas).
    /// Unused with a shared pool.
    pub threads: usize,
    /// Where replicas run their intra-op work: `shared` (onnxruntime: one pool of
    /// as many threads as cores for all replicas, so a lone request uses every
    /// core) or `replica` (each replica its own `threads`).
    pub thread_pool: ThreadPool,
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
            // One replica on onnxruntime's shared pool: a lone request gets every
            // core, and batches keep them busy under load (BENCHMARKS.md). Without a
            // shared pool, single-threaded replicas, one per core, beat one replica
            // with all cores by 25-30% in throughput (no intra-op synchronisation).
            replicas: 0,
            threads: 0,
            thread_pool: ThreadPool::Shared,
            max_padding_ratio: 1.25,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadPool {
    #[default]
    Shared,
    Replica,
}

impl ThreadPool {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Replica => "replica",
        }
    }
}

impl BatchingConfig {
    /// Threads per replica once `0` is resolved against the machine.
    pub fn threads_per_replica(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        (cores() / self.replicas_or_cores()).max(1)
    }

    /// Replicas on `backend` once `0` is resolved: one on a shared pool.
    pub fn replicas_for(&self, backend: BackendKind) -> usize {
        if self.replicas == 0 && self.shares_threads(backend) {
            1
        } else {
            self.replicas_or_cores()
        }
    }

    /// Replicas with their own threads once `0` is resolved: one per core.
    pub fn replicas_or_cores(&self) -> usize {
        if self.replicas > 0 {
            self.replicas
        } else {
            cores()
        }
    }

    /// The threads one replica may use on `backend`: all cores with a shared pool.
    pub fn threads_for(&self, backend: BackendKind) -> usize {
        if self.shares_threads(backend) {
            cores()
        } else {
            self.threads_per_replica()
        }
    }

    /// Whether replicas run on one shared pool (onnxruntime only).
    pub fn shares_threads(&self, backend: BackendKind) -> bool {
        self.thread_pool == ThreadPool::Shared && backend == BackendKind::Onnx
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Everything the engine needs to start.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub backend: BackendKind,
    /// The optimization profile these settings came from, for `/info`.
    pub profile: String,
    /// fp32, or int8 weights (onnx only), whose accuracy is measured at start-up.
    pub precision: Precision,
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime repacks the weights of matrix products for its kernels in each
    /// replica: about 4% more throughput, for about half the model's size again
    /// per replica. Off, replicas read one copy of the weights.
    pub onnx_prepack: bool,
    pub batching: BatchingConfig,
    pub admission: crate::AdmissionConfig,
}
