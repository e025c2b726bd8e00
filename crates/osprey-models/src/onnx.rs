//! ONNX Runtime backend through `ort`, with the shared library loaded at run time.
//! The graph takes `[batch, seq]` inputs, so each batch is padded to its longest
//! sequence; the batcher groups similar lengths to keep that waste small.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::value::Tensor;

use crate::onnx_graph::{GraphSession, Threads, sessions};
use crate::{
    Backend, BackendKind, BackendOptions, ModelDir, ModelError, Pooling, Result, pool, weights_file,
};

static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
/// The library the environment was loaded from.
static LIBRARY: OnceLock<PathBuf> = OnceLock::new();

pub(crate) fn library() -> Option<&'static Path> {
    LIBRARY.get().map(PathBuf::as_path)
}

/// Where the shared library is looked for when none is configured: the
/// `ORT_DYLIB_PATH` variable, then `runtime/` in the working directory, then
/// `runtime/` beside the executable and up to three folders above it (a cargo
/// `target/<profile>/` build inside a checkout).
pub fn find_library(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(PathBuf::from(p));
    }
    let name = "runtime/libonnxruntime.so";
    let mut candidates = vec![PathBuf::from(name)];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|d| d.join(name)));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The process's one onnxruntime environment. It owns the shared intra-op pool:
/// as many threads as cores (the caller of a run is one of them), which sessions
/// built with `shared_threads` run on.
pub(crate) fn environment(lib: Option<&Path>) -> Result<Environment> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = find_library(lib).ok_or_else(|| {
                "libonnxruntime.so not found: run `make onnx`, set ORT_DYLIB_PATH, \
                 or serve with --backend candle"
                    .to_string()
            })?;
            let _ = LIBRARY.set(path.clone());
            crate::memory::return_large_blocks();
            // Loads the library: every other call into onnxruntime comes after it.
            let builder =
                ort::init_from(&path).map_err(|e| format!("loading {}: {e}", path.display()))?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let pool = GlobalThreadPoolOptions::default()
                .with_intra_threads(cores)
                .and_then(|p| p.with_inter_threads(1))
                // Threads spin briefly between the many parallel sections of one
                // run; without it a lone request took 25% longer.
                .and_then(|p| p.with_spin_control(true))
                .map_err(|e| e.to_string())?;
            builder
                .with_name("osprey")
                .with_global_thread_pool(pool)
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(ModelError::Onnx)
}

/// Padded tokens from which a run is taken to have grown the session's arena.
/// Smaller runs (a lone sentence) fit in what the arena keeps anyway.
const ARENA_GROWS_AT: usize = 256;

pub struct OnnxBackend {
    graph: GraphSession,
    hidden: usize,
    pooling: Pooling,
    with_token_types: bool,
    /// For a classifier, how many logits each sequence has.
    labels: Option<usize>,
    arena: ArenaRelease,
}

/// onnxruntime's arena keeps the largest batch's activations reserved for good.
/// When the queue empties after large batches, the last run shrinks it, and
/// with glibc's fixed mmap threshold ([`crate::memory::return_large_blocks`])
/// those pages go back to the system. A queue that never empties never shrinks.
struct ArenaRelease {
    /// Run options that free the arena's unused regions when the run ends.
    shrinking: ort::session::RunOptions,
    policy: ShrinkPolicy,
}

impl ArenaRelease {
    fn new() -> Result<Self> {
        let mut shrinking = ort::session::RunOptions::new().map_err(ort_err)?;
        shrinking
            .set("memory.enable_memory_arena_shrinkage", "cpu:0")
            .map_err(ort_err)?;
        Ok(Self {
            shrinking,
            policy: ShrinkPolicy::default(),
        })
    }
}

/// When a run shrinks the arena: the last before the queue idles, if a run since
/// the last shrink was large enough to have grown it.
#[derive(Debug, Default)]
struct ShrinkPolicy {
    /// A run since the last shrink had at least [`ARENA_GROWS_AT`] tokens.
    grown: bool,
    /// The queue was empty when the next run was taken.
    idle_next: bool,
}

impl ShrinkPolicy {
    /// Whether the run about to start, of `padded` tokens, should shrink.
    fn shrink_now(&mut self, padded: usize) -> bool {
        self.grown |= padded >= ARENA_GROWS_AT;
        let shrink = std::mem::take(&mut self.idle_next) && self.grown;
        if shrink {
            self.grown = false;
        }
        shrink
    }
}

pub(crate) fn ort_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Onnx(e.to_string())
}

pub fn load(model: &ModelDir, opts: &BackendOptions) -> Result<Vec<Box<dyn Backend>>> {
    let env = environment(opts.onnxruntime_lib.as_deref())?;
    let file = weights_file(model, BackendKind::Onnx, opts.precision)?;
    let threads = Threads::of(opts);
    sessions(&env, &file, threads, opts.replicas, opts.onnx_prepack)?
        .into_iter()
        .map(|graph| backend(graph, &file, model))
        .collect()
}

fn backend(graph: GraphSession, file: &Path, model: &ModelDir) -> Result<Box<dyn Backend>> {
    let names: Vec<&str> = graph.session.inputs().iter().map(|i| i.name()).collect();
    for needed in ["input_ids", "attention_mask"] {
        if !names.contains(&needed) {
            return Err(ModelError::Unsupported(format!(
                "{} has no `{needed}` input (inputs: {names:?})",
                file.display()
            )));
        }
    }
    let with_token_types = names.contains(&"token_type_ids");
    Ok(Box::new(OnnxBackend {
        graph,
        hidden: model.config.hidden_size,
        pooling: model.pooling,
        with_token_types,
        labels: (!model.labels.is_empty()).then_some(model.labels.len()),
        arena: ArenaRelease::new()?,
    }))
}

impl Backend for OnnxBackend {
    fn name(&self) -> &'static str {
        "onnx"
    }

    fn idle_after_next(&mut self) {
        self.arena.policy.idle_next = true;
    }

    fn embed(&mut self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        self.embed_segments(seqs, &vec![None; seqs.len()])
    }

    fn embed_segments(
        &mut self,
        seqs: &[&[u32]],
        second: &[Option<usize>],
    ) -> Result<Vec<Vec<f32>>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let batch = seqs.len();
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; batch * longest];
        let mut mask = vec![0i64; batch * longest];
        let mut types = vec![0i64; batch * longest];
        for (row, s) in seqs.iter().enumerate() {
            let base = row * longest;
            let from = second.get(row).copied().flatten().unwrap_or(s.len());
            for (j, &t) in s.iter().enumerate() {
                ids[base + j] = i64::from(t);
                mask[base + j] = 1;
                types[base + j] = i64::from(j >= from);
            }
        }
        if !self.with_token_types && types.iter().any(|&t| t != 0) {
            return Err(ModelError::Unsupported(
                "this ONNX graph has no token_type_ids input, so it takes no text pairs".into(),
            ));
        }
        let shape = [batch as i64, longest as i64];
        let mut inputs = ort::inputs![
            "input_ids" => Tensor::from_array((shape, ids)).map_err(ort_err)?,
            "attention_mask" => Tensor::from_array((shape, mask)).map_err(ort_err)?,
        ];
        if self.with_token_types {
            let types = Tensor::from_array((shape, types)).map_err(ort_err)?;
            inputs.push(("token_type_ids".into(), types.into()));
        }
        let outputs = if self.arena.policy.shrink_now(batch * longest) {
            let shrinking = &self.arena.shrinking;
            self.graph.session.run_with_options(inputs, shrinking)
        } else {
            self.graph.session.run(inputs)
        }
        .map_err(ort_err)?;
        // Exports differ in what they output first (some echo their inputs): take
        // the first float output of the wanted shape.
        let (wanted, what): (&[i64], _) = match self.labels {
            Some(labels) => (&[batch as i64, labels as i64], "the classifier's logits"),
            None => (
                &[batch as i64, longest as i64, self.hidden as i64],
                "token states",
            ),
        };
        let found = (0..outputs.len()).find(|&i| {
            outputs[i]
                .try_extract_tensor::<f32>()
                .is_ok_and(|(shape, _)| &shape[..] == wanted)
        });
        let Some(at) = found else {
            return Err(ModelError::Onnx(format!(
                "the graph has no float output of shape {wanted:?} ({what})"
            )));
        };
        let (_, data) = outputs[at].try_extract_tensor::<f32>().map_err(ort_err)?;
        if let Some(labels) = self.labels {
            return Ok(data.chunks(labels).map(<[f32]>::to_vec).collect());
        }
        Ok(seqs
            .iter()
            .enumerate()
            .map(|(row, s)| {
                let start = row * longest * self.hidden;
                pool(&data[start..], self.hidden, s.len(), self.pooling)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{ARENA_GROWS_AT, ShrinkPolicy};

    #[test]
    fn only_the_run_before_idle_shrinks_and_only_after_a_large_one() {
        let mut p = ShrinkPolicy::default();
        // Busy with large batches: never.
        assert!(!p.shrink_now(ARENA_GROWS_AT * 4));
        assert!(!p.shrink_now(10));
        // The queue empties: the next run shrinks, whatever its size.
        p.idle_next = true;
        assert!(p.shrink_now(10));
        // Idle again, but nothing large since: a lone sentence does not pay for it.
        p.idle_next = true;
        assert!(!p.shrink_now(10));
        p.idle_next = true;
        assert!(!p.shrink_now(ARENA_GROWS_AT - 1));
        // A large run that is itself the last shrinks at its end.
        p.idle_next = true;
        assert!(p.shrink_now(ARENA_GROWS_AT));
        // The hint is for one run only.
        assert!(!p.shrink_now(ARENA_GROWS_AT));
    }
}
