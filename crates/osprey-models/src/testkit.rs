//! For the workspace's tests (feature `test-support`): where the test model is.

use std::path::PathBuf;

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
