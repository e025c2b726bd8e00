//! Tensor models (any ONNX graph): inputs checked against what the graph declares,
//! a queue that batches requests across clients along a dynamic first dimension,
//! and replica threads that run the graph and split its outputs back by rows.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use osprey_models::{DataType, NamedTensor, TensorBackend, TensorData, TensorSpec};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::admission::{Admission, AdmissionConfig};
use crate::queue_stats::QueueTimes;
use crate::{BatchingConfig, EngineError};

/// What a client can learn about a tensor model.
#[derive(Debug, Clone, Serialize)]
pub struct TensorInfo {
    pub id: String,
    pub revision: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Whether requests are batched together (every input's first dimension is
    /// dynamic).
    pub batches: bool,
    pub replicas: usize,
    pub max_batch_rows: usize,
}

type Reply = oneshot::Sender<Result<Vec<NamedTensor>, String>>;

struct Job {
    inputs: Vec<NamedTensor>,
    rows: usize,
    reply: Reply,
    enqueued: Instant,
}

impl Job {
    /// Jobs batch together when every input has the same dimensions past the first.
    fn fits_with(&self, other: &Job) -> bool {
        self.inputs
            .iter()
            .zip(&other.inputs)
            .all(|(a, b)| a.shape.get(1..) == b.shape.get(1..))
    }
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    rows: usize,
    closed: bool,
}

struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    max_queued_rows: usize,
    max_batch_rows: usize,
    batches: bool,
    times: QueueTimes,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, job: Job) -> Result<(), EngineError> {
        let mut st = self.lock();
        if st.closed {
            return Err(EngineError::ShuttingDown);
        }
        if !crate::admission::fits_queue(st.rows, job.rows, self.max_queued_rows) {
            return Err(EngineError::Overloaded {
                queued: st.rows,
                capacity: self.max_queued_rows,
            });
        }
        st.rows += job.rows;
        st.jobs.push_back(job);
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// The oldest job and, on a batching model, the jobs of the same shape behind
    /// it up to the batch's row limit; `None` once closed and drained.
    fn next(&self) -> Option<Vec<Job>> {
        let mut st = self.lock();
        loop {
            if let Some(first) = st.jobs.pop_front() {
                let mut rows = first.rows;
                let mut batch = vec![first];
                if self.batches {
                    let mut i = 0;
                    while i < st.jobs.len() {
                        let fits = st.jobs[i].fits_with(&batch[0])
                            && rows + st.jobs[i].rows <= self.max_batch_rows;
                        if fits {
                            if let Some(job) = st.jobs.remove(i) {
                                rows += job.rows;
                                batch.push(job);
                            }
                        } else {
                            i += 1;
                        }
                    }
                }
                st.rows -= rows;
                self.times
                    .left(Instant::now(), batch.iter().map(|j| j.enqueued));
                return Some(batch);
            }
            if st.closed {
                return None;
            }
            st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

pub struct TensorEngine {
    info: TensorInfo,
    queue: Arc<Queue>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    admission: Admission,
}

impl TensorEngine {
    /// Loads the graph on its replicas, runs one warm-up row on each, and starts
    /// them. Blocking.
    pub fn start(
        path: &Path,
        batching: &BatchingConfig,
        admission: AdmissionConfig,
        onnxruntime_lib: Option<&Path>,
        onnx_prepack: bool,
    ) -> Result<Self, EngineError> {
        let model = osprey_models::load_tensor_model(
            path,
            batching.replicas_or_cores(),
            batching.threads_per_replica(),
            onnxruntime_lib,
            onnx_prepack,
        )?;
        let graph = if path.is_dir() {
            path.join("model.onnx")
        } else {
            path.to_path_buf()
        };
        let dir = graph.parent().unwrap_or(path);
        let revision = osprey_models::revision_of(dir, &graph)?;
        let id = graph
            .parent()
            .filter(|_| path.is_dir())
            .and_then(|d| d.file_name())
            .or_else(|| graph.file_stem())
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        let batches =
            !model.inputs.is_empty() && model.inputs.iter().all(|i| i.shape.first() == Some(&-1));
        let info = TensorInfo {
            id,
            revision,
            batches,
            replicas: model.backends.len(),
            max_batch_rows: batching.max_batch_requests.max(1),
            inputs: model.inputs,
            outputs: model.outputs,
        };
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            wake: Condvar::new(),
            max_queued_rows: batching.max_queue_tokens.max(1),
            max_batch_rows: info.max_batch_rows,
            batches,
            times: QueueTimes::default(),
        });
        let warm = warmup_inputs(&info.inputs);
        let mut workers = Vec::new();
        for (i, mut backend) in model.backends.into_iter().enumerate() {
            if let Err(e) = backend.run(&warm) {
                queue.close();
                return Err(EngineError::Backend(format!("warm-up failed: {e}")));
            }
            let q = queue.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("osprey-tensor-{i}"))
                    .spawn(move || run(backend, &q))?,
            );
        }
        Ok(Self {
            info,
            queue,
            workers: Mutex::new(workers),
            admission: Admission::new(admission),
        })
    }

    pub fn info(&self) -> &TensorInfo {
        &self.info
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Requests queued now, and the time requests spent queued so far.
    pub fn queue_stats(&self) -> crate::QueueStats {
        let queued = self.queue.lock().jobs.len();
        self.queue.times.snapshot(queued)
    }

    /// Puts `inputs` in the graph's order after checking each against what the
    /// graph declares; errors name the input.
    pub fn check(&self, mut inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, EngineError> {
        let bad = |m: String| Err(EngineError::BadTensor(m));
        if let Some(extra) = inputs
            .iter()
            .find(|t| !self.info.inputs.iter().any(|s| s.name == t.name))
        {
            let known: Vec<&str> = self.info.inputs.iter().map(|s| s.name.as_str()).collect();
            return bad(format!(
                "input `{}` is not an input of this model (inputs: {known:?})",
                extra.name
            ));
        }
        let mut ordered = Vec::with_capacity(self.info.inputs.len());
        let mut rows = None;
        for spec in &self.info.inputs {
            let Some(at) = inputs.iter().position(|t| t.name == spec.name) else {
                return bad(format!("input `{}` is missing", spec.name));
            };
            let t = inputs.swap_remove(at);
            check_one(spec, &t)?;
            let first = t.shape.first().copied().unwrap_or(1);
            if self.info.batches && rows.is_some_and(|r| r != first) {
                return bad(format!(
                    "input `{}` has {first} rows; the other inputs have {}",
                    spec.name,
                    rows.unwrap_or(0)
                ));
            }
            rows = Some(first);
            ordered.push(t);
        }
        if !inputs.is_empty() {
            return bad("an input is given twice".into());
        }
        Ok(ordered)
    }

    /// Runs checked inputs (see [`TensorEngine::check`]) and returns every output.
    pub async fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, EngineError> {
        let rows = if self.info.batches {
            inputs
                .first()
                .and_then(|t| t.shape.first())
                .map_or(1, |&r| r.max(0) as usize)
        } else {
            1
        };
        let (reply, rx) = oneshot::channel();
        self.queue.push(Job {
            inputs,
            rows,
            reply,
            enqueued: Instant::now(),
        })?;
        rx.await
            .map_err(|_| EngineError::ShuttingDown)?
            .map_err(EngineError::Backend)
    }

    /// Stops taking work, lets the replicas finish the queue, and joins them.
    pub fn shutdown(&self) {
        self.queue.close();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Drop for TensorEngine {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// A tensor against its declaration: type, rank, fixed dimensions, element count.
fn check_one(spec: &TensorSpec, t: &NamedTensor) -> Result<(), EngineError> {
    let bad = |m: String| Err(EngineError::BadTensor(m));
    if t.data.datatype() != spec.datatype {
        return bad(format!(
            "input `{}` is {}; the model takes {}",
            spec.name,
            t.data.datatype(),
            spec.datatype
        ));
    }
    let fits = t.shape.len() == spec.shape.len()
        && t.shape
            .iter()
            .zip(&spec.shape)
            .all(|(&d, &want)| d >= 0 && (want < 0 || d == want));
    if !fits {
        return bad(format!(
            "input `{}` has shape {:?}; the model takes {:?} (-1: any size)",
            spec.name, t.shape, spec.shape
        ));
    }
    let count = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    if count != Some(t.data.len()) {
        return bad(format!(
            "input `{}` has {} elements; its shape {:?} holds {}",
            spec.name,
            t.data.len(),
            t.shape,
            count.map_or_else(|| "too many".into(), |c| c.to_string())
        ));
    }
    Ok(())
}

/// One row of zeros per input: runs every kernel once before the model serves.
fn warmup_inputs(specs: &[TensorSpec]) -> Vec<NamedTensor> {
    specs
        .iter()
        .map(|s| {
            let shape: Vec<i64> = s.shape.iter().map(|&d| d.max(1)).collect();
            let n = shape.iter().product::<i64>().max(0) as usize;
            let data = match s.datatype {
                DataType::Fp32 => TensorData::Fp32(vec![0.0; n]),
                DataType::Fp64 => TensorData::Fp64(vec![0.0; n]),
                DataType::Int32 => TensorData::Int32(vec![0; n]),
                DataType::Int64 => TensorData::Int64(vec![0; n]),
                DataType::Bool => TensorData::Bool(vec![false; n]),
                DataType::Bytes => TensorData::Bytes(vec![String::new(); n]),
            };
            NamedTensor {
                name: s.name.clone(),
                shape,
                data,
            }
        })
        .collect()
}

/// A replica: runs batches until the queue closes and drains.
fn run(mut backend: Box<dyn TensorBackend>, queue: &Queue) {
    while let Some(batch) = queue.next() {
        let batch: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        if batch.len() == 1 {
            run_alone(backend.as_mut(), batch);
            continue;
        }
        match run_batch(backend.as_mut(), &batch) {
            Ok(parts) => {
                for (job, outputs) in batch.into_iter().zip(parts) {
                    let _ = job.reply.send(Ok(outputs));
                }
            }
            // Outputs that do not split by rows: each request alone.
            Err(_) => run_alone(backend.as_mut(), batch),
        }
        tracing::trace!(ms = started.elapsed().as_millis() as u64, "tensor batch");
    }
}

/// Each job as a run of its own.
fn run_alone(backend: &mut dyn TensorBackend, jobs: Vec<Job>) {
    for job in jobs {
        let result = guarded(backend, &job.inputs);
        let _ = job.reply.send(result);
    }
}

/// One run; a backend panic fails the request, not the replica.
fn guarded(
    backend: &mut dyn TensorBackend,
    inputs: &[NamedTensor],
) -> Result<Vec<NamedTensor>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.run(inputs)))
        .unwrap_or_else(|_| {
            Err(osprey_models::ModelError::Unsupported(
                "tensor backend panicked".into(),
            ))
        })
        .map_err(|e| e.to_string())
}

/// Runs jobs of one shape as one batch along the first dimension and splits each
/// output back by rows. `Err` when an output is not row-major in the batch.
fn run_batch(
    backend: &mut dyn TensorBackend,
    batch: &[Job],
) -> Result<Vec<Vec<NamedTensor>>, String> {
    let total: usize = batch.iter().map(|j| j.rows).sum();
    let mut joined: Vec<NamedTensor> = batch[0].inputs.clone();
    for t in &mut joined {
        if let Some(d) = t.shape.first_mut() {
            *d = total as i64;
        }
    }
    for job in &batch[1..] {
        for (into, t) in joined.iter_mut().zip(&job.inputs) {
            if !into.data.extend(&t.data) {
                return Err("inputs of different types".into());
            }
        }
    }
    let outputs = guarded(backend, &joined)?;
    let mut parts: Vec<Vec<NamedTensor>> = vec![Vec::with_capacity(outputs.len()); batch.len()];
    for out in &outputs {
        if out.shape.first() != Some(&(total as i64)) || out.data.len() % total.max(1) != 0 {
            return Err(format!("output `{}` does not split by rows", out.name));
        }
        let per_row = out.data.len() / total.max(1);
        let mut row = 0;
        for (job, part) in batch.iter().zip(parts.iter_mut()) {
            let mut shape = out.shape.clone();
            shape[0] = job.rows as i64;
            part.push(NamedTensor {
                name: out.name.clone(),
                shape,
                data: out.data.slice(row * per_row, (row + job.rows) * per_row),
            });
            row += job.rows;
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        rows: usize,
        width: usize,
    ) -> (Job, oneshot::Receiver<Result<Vec<NamedTensor>, String>>) {
        let (reply, rx) = oneshot::channel();
        let input = NamedTensor {
            name: "input".into(),
            shape: vec![rows as i64, width as i64],
            data: TensorData::Fp32(vec![0.0; rows * width]),
        };
        (
            Job {
                inputs: vec![input],
                rows,
                reply,
                enqueued: Instant::now(),
            },
            rx,
        )
    }

    fn queue(batches: bool) -> Queue {
        Queue {
            state: Mutex::default(),
            wake: Condvar::new(),
            max_queued_rows: 100,
            max_batch_rows: 8,
            batches,
            times: QueueTimes::default(),
        }
    }

    #[test]
    fn jobs_of_one_shape_batch_up_to_the_row_limit() {
        let q = queue(true);
        let mut keep = Vec::new();
        for (rows, width) in [(2, 30), (3, 30), (1, 64), (3, 30), (2, 30)] {
            let (j, rx) = job(rows, width);
            keep.push(rx);
            assert!(q.push(j).is_ok());
        }
        let rows = |b: Vec<Job>| b.iter().map(|j| j.rows).collect::<Vec<_>>();
        // 2 + 3 + 3 = 8 rows of width 30; the 64-wide job and the one past the
        // limit wait for batches of their own.
        assert_eq!(q.next().map(rows), Some(vec![2, 3, 3]));
        assert_eq!(q.next().map(rows), Some(vec![1]));
        assert_eq!(q.next().map(rows), Some(vec![2]));
        q.close();
        assert!(q.next().is_none());
    }

    #[test]
    fn a_model_without_a_dynamic_batch_runs_jobs_alone_and_the_queue_is_bounded() {
        let q = queue(false);
        let (a, _ra) = job(1, 30);
        let (b, _rb) = job(1, 30);
        assert!(q.push(a).is_ok() && q.push(b).is_ok());
        assert_eq!(q.next().map(|b| b.len()), Some(1));
        let (big, _r) = job(100, 1);
        assert!(matches!(q.push(big), Err(EngineError::Overloaded { .. })));
    }
}
