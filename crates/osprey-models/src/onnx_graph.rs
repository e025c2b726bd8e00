//! Replicas of one ONNX graph that hold its weights once.
//!
//! onnxruntime gives every session its own copy of the graph's initializers, so a
//! second replica costs about the model's size again. Here the graph is optimised
//! once and saved in onnxruntime's own format; every replica then reads that buffer
//! in place (`session.use_ort_model_bytes_for_initializers`).

use std::path::Path;
use std::sync::Arc;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{AutoDevicePolicy, GraphOptimizationLevel, SessionBuilder};

use crate::onnx::ort_err;
use crate::onnx_cache::{self, GraphBytes};
use crate::{ModelError, Result};

/// Where a session's intra-op work runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Threads {
    /// The environment's pool, shared by every session built this way.
    Shared,
    /// A pool of its own with this many threads.
    Own(usize),
}

impl Threads {
    pub fn of(opts: &crate::BackendOptions) -> Self {
        if opts.shared_threads {
            Self::Shared
        } else {
            Self::Own(opts.threads)
        }
    }
}

/// A session and the optimised graph it reads its weights from.
pub(crate) struct GraphSession {
    // Declared before `_graph` so that it drops first: the session reads the
    // graph's bytes until it is gone.
    pub session: Session,
    _graph: Option<Arc<GraphBytes>>,
}

/// `replicas` sessions of the graph in `file`, running on `threads`, sharing the
/// graph's weights (with each other and with any other session of the same graph
/// in the process, such as a replica added later). A graph that cannot be saved in
/// onnxruntime's format (a custom operator, say) falls back to a copy per session.
///
/// With `prepack`, each session also repacks the weights of its matrix products
/// for its kernels: faster, but a copy per session, since onnxruntime shares
/// repacked weights only for initializers handed to it one by one.
pub(crate) fn sessions(
    env: &Environment,
    file: &Path,
    threads: Threads,
    replicas: usize,
    prepack: bool,
) -> Result<Vec<GraphSession>> {
    let cached = crate::onnx::library().and_then(|lib| onnx_cache::path_for(file, lib));
    if let Some(path) = &cached
        && let Some(bytes) = onnx_cache::read(path)
    {
        match replicas_of(env, file, threads, replicas, prepack, Some(bytes)) {
            Ok(sessions) => return Ok(sessions),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cached optimised graph unusable; optimising again");
                onnx_cache::forget(path);
            }
        }
    }
    let graph = match optimised(env, file, threads) {
        Ok(bytes) => Some(match &cached {
            Some(path) => onnx_cache::keep(path, bytes),
            None => Arc::new(GraphBytes::Made(bytes)),
        }),
        Err(e) => {
            tracing::warn!(
                file = %file.display(),
                error = %e,
                "graph not saved in onnxruntime's format; each replica holds its own weights"
            );
            None
        }
    };
    replicas_of(env, file, threads, replicas, prepack, graph)
}

/// `replicas` sessions reading `graph` (the optimised graph in onnxruntime's
/// format) in place, or each optimising `file` itself when there is none.
fn replicas_of(
    env: &Environment,
    file: &Path,
    threads: Threads,
    replicas: usize,
    prepack: bool,
    graph: Option<Arc<GraphBytes>>,
) -> Result<Vec<GraphSession>> {
    let one = || -> Result<GraphSession> {
        let mut builder = builder(env, threads)?;
        if !prepack {
            builder = entry(builder, "session.disable_prepacking", "1")?;
        }
        let session = match &graph {
            Some(bytes) => {
                builder = builder
                    .with_optimization_level(GraphOptimizationLevel::Disable)
                    .map_err(ort_err)?;
                // Initializers are read in place: `GraphSession` keeps the bytes
                // alive for as long as the session.
                builder = entry(builder, "session.use_ort_model_bytes_directly", "1")?;
                builder = entry(builder, "session.use_ort_model_bytes_for_initializers", "1")?;
                builder.commit_from_memory(bytes)
            }
            None => builder
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(ort_err)?
                .commit_from_file(file),
        }
        .map_err(ort_err)?;
        Ok(GraphSession {
            session,
            _graph: graph.clone(),
        })
    };
    // Sessions do their set-up work on creation; build the replicas side by side.
    let built: Result<Vec<GraphSession>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..replicas.max(1)).map(|_| scope.spawn(one)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ModelError::Onnx("session creation panicked".into())))
            })
            .collect()
    });
    if prepack
        && built.is_ok()
        && let Some(graph) = &graph
    {
        graph.release_resident();
    }
    built
}

/// The graph in `file` optimised for this machine, in onnxruntime's format.
fn optimised(env: &Environment, file: &Path, threads: Threads) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir().map_err(|source| ModelError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let saved = dir.path().join("optimised.ort");
    let builder = builder(env, threads)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(ort_err)?
        .with_optimized_model_path(&saved)
        .map_err(ort_err)?;
    entry(builder, "session.save_model_format", "ORT")?
        .commit_from_file(file)
        .map_err(ort_err)?;
    std::fs::read(&saved).map_err(|source| ModelError::Io {
        path: saved.clone(),
        source,
    })
}

/// A session builder on the shared environment with Osprey's settings.
fn builder(env: &Environment, threads: Threads) -> Result<SessionBuilder> {
    let mut builder = Session::builder(env)
        .map_err(ort_err)?
        .with_auto_device(AutoDevicePolicy::PreferCPU)
        .map_err(ort_err)?
        // Without onnxruntime's arena, a batch's activations go back to the
        // allocator when it ends, instead of staying reserved at their peak.
        .with_execution_providers([ort::ep::CPU::default()
            .with_arena_allocator(!crate::low_memory())
            .build()])
        .map_err(ort_err)?;
    if let Threads::Own(n) = threads {
        builder = builder
            .with_independent_thread_pool()
            .map_err(ort_err)?
            .with_intra_threads(n.max(1))
            .map_err(ort_err)?
            .with_inter_threads(1)
            .map_err(ort_err)?;
    }
    builder
        // Shapes change with every batch, so planned memory patterns are not
        // reused; without them memory stays near the model's size.
        .with_memory_pattern(false)
        .map_err(ort_err)
}

fn entry(builder: SessionBuilder, key: &str, value: &str) -> Result<SessionBuilder> {
    builder.with_config_entry(key, value).map_err(ort_err)
}
