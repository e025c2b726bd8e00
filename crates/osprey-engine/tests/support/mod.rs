//! What the engine's tests share: the model and a one-replica engine on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use osprey_engine::{AdmissionConfig, BackendKind, BatchingConfig, Engine, EngineConfig};

/// The default model, or `OSPREY_TEST_MODEL`.
pub fn model_dir() -> PathBuf {
    std::env::var_os("OSPREY_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
}

/// candle, one replica of one thread: batches and timings are easy to reason about.
pub fn engine_at(dir: &Path) -> Arc<Engine> {
    let config = EngineConfig {
        model_path: dir.to_path_buf(),
        backend: BackendKind::Candle,
        onnxruntime_lib: None,
        batching: BatchingConfig {
            replicas: 1,
            threads: 1,
            ..BatchingConfig::default()
        },
        admission: AdmissionConfig::default(),
    };
    Arc::new(Engine::start(&config).expect("engine starts (run `make model`)"))
}
