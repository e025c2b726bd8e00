//! Test seams shared by Osprey's crates. A fake backend stands in for a model where
//! a test checks queueing, admission, scaling or alert logic, never numbers: its
//! vectors are a deterministic function of the token ids, its per-batch latency
//! and failures are scripted, and a gate holds batches until the test lets them go.

mod backend;
mod tokenizer;

pub use backend::{FakeBackend, Script};
pub use tokenizer::fake_tokenizer;

use std::sync::Arc;

use osprey_engine::{
    AdmissionConfig, BatchingConfig, Engine, EngineError, ModelParts, Pooling, Task,
};

/// Dimensions of the fake model's vectors.
pub const FAKE_DIMS: usize = 8;

/// Most tokens the fake model takes per input.
pub const FAKE_MAX_TOKENS: usize = 128;

/// An engine on `batching.replicas` fake replicas sharing one script. The warm-up
/// runs before the script can hold anything, so it is never gated.
pub fn fake_engine(
    batching: &BatchingConfig,
    admission: AdmissionConfig,
    script: &Arc<Script>,
) -> Result<Engine, EngineError> {
    fake_engine_for(Task::Embed, batching, admission, script)
}

/// The same, claiming to do `task` (its outputs stay the fake vectors), for
/// routing and repository logic.
pub fn fake_engine_for(
    task: Task,
    batching: &BatchingConfig,
    admission: AdmissionConfig,
    script: &Arc<Script>,
) -> Result<Engine, EngineError> {
    let replicas = batching.replicas_or_cores();
    let parts = ModelParts {
        id: "osprey/fake".into(),
        revision: "fake-0".into(),
        task,
        labels: Vec::new(),
        dims: FAKE_DIMS,
        pooling: Pooling::Mean,
        normalizes: true,
        tokenizer: fake_tokenizer(FAKE_MAX_TOKENS)?,
        backends: (0..replicas)
            .map(|_| Box::new(FakeBackend::new(script.clone())) as Box<dyn osprey_engine::Backend>)
            .collect(),
        pads: false,
        threads_per_replica: 1,
        profile: String::new(),
        thread_pool: osprey_engine::ThreadPool::Replica,
        precision: osprey_engine::Precision::Fp32,
        accuracy: None,
        factory: Some({
            let script = script.clone();
            Arc::new(move |_threads| {
                Ok(Box::new(FakeBackend::new(script.clone())) as Box<dyn osprey_engine::Backend>)
            })
        }),
    };
    Engine::launch(parts, batching, admission)
}
