//! What the engine's tests share: the model and a one-replica engine on it.

use std::path::Path;
use std::sync::Arc;

use osprey_engine::{AdmissionConfig, BackendKind, BatchingConfig, Engine, EngineConfig};

/// The default model, or `OSPREY_TEST_MODEL`.
pub use osprey_models::testkit::model_dir;

/// candle, one replica of one thread: batches and timings are easy to reason about.
pub fn engine_at(dir: &Path) -> Arc<Engine> {
    let config = EngineConfig {
        model_path: dir.to_path_buf(),
        backend: BackendKind::Candle,
        precision: Default::default(),
        profile: String::new(),
        onnxruntime_lib: None,
        onnx_prepack: false,
        batching: BatchingConfig {
            replicas: 1,
            threads: 1,
            ..BatchingConfig::default()
        },
        admission: AdmissionConfig::default(),
    };
    Arc::new(Engine::start(&config).expect("engine starts (run `make model`)"))
}
