//! For the workspace's tests (feature `test-support`): where the test model is.

use std::path::PathBuf;

use crate::{BackendKind, BackendOptions};

/// The model the tests load: `OSPREY_TEST_MODEL` when set, else
/// `models/all-MiniLM-L6-v2` at the workspace root (`make model` fetches it).
pub fn model_dir() -> PathBuf {
    std::env::var_os("OSPREY_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
}

/// The generation model the tests load: `OSPREY_TEST_GGUF` when set, else
/// gemma-3-270m Q4_K_M under `models/` (`make gguf` fetches it).
pub fn gguf_path() -> PathBuf {
    std::env::var_os("OSPREY_TEST_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf")
        })
}

/// One replica of `kind` on two threads of its own, fp32, weights not repacked:
/// the plainest set-up, which tests vary with struct update syntax.
pub fn backend_options(kind: BackendKind) -> BackendOptions {
    BackendOptions {
        kind,
        precision: Default::default(),
        replicas: 1,
        threads: 2,
        onnxruntime_lib: None,
        onnx_prepack: false,
        shared_threads: false,
    }
}
