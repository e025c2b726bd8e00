//! The engine: loads a model onto its replicas, warms them up, and turns a list of
//! texts into vectors through the tokenizer and the batch queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use osprey_metrics::event::{Event, ItemsCancelled, RejectReason};
use osprey_models::{
    Backend, BackendOptions, Encoded, ModelDir, Pooling, Precision, Task, TextTokenizer,
    TokenizeError, l2_normalize, load_backends,
};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::accuracy::Accuracy;
use crate::admission::{Admission, AdmissionConfig, Permit, Ticket};
use crate::capacity::{Capacity, Load};
use crate::input::TextInput;
use crate::queue::{BatchQueue, Item, Limits, Rejected};
use crate::tuning::{BoundTotals, ClimbSettings, Climber};
use crate::{BatchingConfig, EngineConfig, EngineError, ThreadPool, worker};

/// What a client can learn about the served model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub id: String,
    /// Content hash of the weights and config files.
    pub revision: String,
    pub task: Task,
    /// A classifier's labels, in the order of its outputs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    pub dims: usize,
    pub max_input_tokens: usize,
    pub backend: &'static str,
    pub pooling: Pooling,
    pub normalizes: bool,
    pub replicas: usize,
    pub threads_per_replica: usize,
    /// The optimization profile the settings came from.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub profile: String,
    /// `shared`: replicas run on one pool of all cores; `replica`: each its own.
    pub thread_pool: &'static str,
    pub precision: &'static str,
    /// For quantized weights, how close they come to fp32 (measured at start-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
    pub max_batch_tokens: usize,
    pub max_batch_requests: usize,
    pub max_queue_tokens: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    pub normalize: bool,
    pub truncate: bool,
    /// Keep only the first N dimensions (then normalize if asked).
    pub dimensions: Option<usize>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            normalize: true,
            truncate: true,
            dimensions: None,
        }
    }
}

/// Time spent in each engine stage of one request. With inputs in several batches,
/// `queue` and `inference` are the longest any input waited or ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub cache: Duration,
    pub tokenize: Duration,
    pub queue: Duration,
    pub inference: Duration,
    pub postprocess: Duration,
}

#[derive(Debug)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens fed to the model, special tokens included.
    pub tokens: usize,
    /// The same, per input.
    pub token_counts: Vec<usize>,
    pub timings: Timings,
}

/// Makes one more backend of the model with the given intra-op threads (unused
/// on a shared pool), for a replica added while serving.
pub type BackendFactory = Arc<dyn Fn(usize) -> Result<Box<dyn Backend>, EngineError> + Send + Sync>;

/// A replica thread and how to stop it.
struct Worker {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
    /// Its backend's intra-op threads.
    threads: usize,
}

pub struct Engine {
    info: ModelInfo,
    tokenizer: Arc<TextTokenizer>,
    queue: Arc<BatchQueue>,
    /// The running replicas, oldest first.
    workers: std::sync::Mutex<Vec<Worker>>,
    /// How to make another replica; `None` when the model cannot add any.
    factory: Option<BackendFactory>,
    next_request: AtomicU64,
    capacity: Arc<Capacity>,
    admission: Admission,
    /// The warm-up batches, kept to run again (`POST /admin/warmup`).
    warm: Vec<Vec<Vec<u32>>>,
}

/// A model ready to run: its replicas' backends, its tokenizer and what describes
/// it. Loaded from a model directory by [`ModelParts::load`], or assembled by a test
/// around a fake backend.
pub struct ModelParts {
    pub id: String,
    /// Content hash of the weights and config files.
    pub revision: String,
    pub task: Task,
    pub labels: Vec<String>,
    pub dims: usize,
    pub pooling: Pooling,
    pub normalizes: bool,
    pub tokenizer: TextTokenizer,
    /// One per replica.
    pub backends: Vec<Box<dyn Backend>>,
    /// Whether a batch costs `count × longest` tokens (padding) rather than the sum.
    pub pads: bool,
    pub threads_per_replica: usize,
    pub profile: String,
    pub thread_pool: ThreadPool,
    pub precision: Precision,
    pub accuracy: Option<Accuracy>,
    /// Makes another backend like these, for replicas added while serving.
    pub factory: Option<BackendFactory>,
}

impl ModelParts {
    /// Reads the model directory and loads one backend per replica. Blocking: call
    /// it from a blocking context.
    pub fn load(config: &EngineConfig) -> Result<Self, EngineError> {
        let model = ModelDir::open(&config.model_path)?;
        let weights = osprey_models::weights_file(&model, config.backend, config.precision)?;
        // Hash the weights while the backend loads them.
        let revision = {
            let dir = model.path.clone();
            let weights = weights.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                osprey_models::revision_of(&dir, &weights).map(|r| (r, t.elapsed()))
            })
        };
        // The tokenizer loads on its own thread too: parsing tokenizer.json takes as
        // long as reading the weights.
        let tokenizer = {
            let path = model.file("tokenizer.json");
            let max = model.max_seq_length;
            std::thread::spawn(move || {
                let t = Instant::now();
                TextTokenizer::load(&path, max).map(|tok| (tok, t.elapsed()))
            })
        };
        let threads = config.batching.threads_for(config.backend);
        let shared = config.batching.shares_threads(config.backend);
        let opts = BackendOptions {
            kind: config.backend,
            precision: config.precision,
            replicas: config.batching.replicas_for(config.backend),
            threads,
            shared_threads: shared,
            onnxruntime_lib: config.onnxruntime_lib.clone(),
            onnx_prepack: config.onnx_prepack,
        };
        let loading = Instant::now();
        let mut backends = load_backends(&model, &opts)?;
        let backends_took = loading.elapsed();
        let factory: BackendFactory = {
            let (model, one) = (
                model.clone(),
                BackendOptions {
                    replicas: 1,
                    ..opts.clone()
                },
            );
            Arc::new(move |threads| {
                let one = BackendOptions {
                    threads: threads.max(1),
                    ..one.clone()
                };
                load_backends(&model, &one)?
                    .pop()
                    .ok_or_else(|| EngineError::Backend("no backend was built".into()))
            })
        };
        let (tokenizer, tokenizer_took) = tokenizer
            .join()
            .map_err(|_| EngineError::Backend("tokenizer loading panicked".into()))??;
        let accuracy = match (config.precision, backends.first_mut()) {
            (Precision::Fp32, _) | (_, None) => None,
            (_, Some(quantized)) => {
                let fp32 = BackendOptions {
                    precision: Precision::Fp32,
                    replicas: 1,
                    ..opts
                };
                let mut reference = load_backends(&model, &fp32)?;
                let reference = reference
                    .first_mut()
                    .ok_or_else(|| EngineError::Backend("no fp32 reference was built".into()))?;
                Some(crate::accuracy::measure(
                    &tokenizer,
                    quantized.as_mut(),
                    reference.as_mut(),
                    Precision::Fp32.as_str(),
                )?)
            }
        };
        let (revision, revision_took) = revision
            .join()
            .map_err(|_| EngineError::Backend("revision hashing panicked".into()))??;
        // The three run side by side; what each took says which one sets the
        // start-up time.
        tracing::debug!(
            backends_ms = backends_took.as_millis() as u64,
            tokenizer_ms = tokenizer_took.as_millis() as u64,
            revision_ms = revision_took.as_millis() as u64,
            "model files loaded"
        );
        Ok(Self {
            id: model.id.clone(),
            revision,
            task: model.task,
            labels: model.labels.clone(),
            dims: if model.labels.is_empty() {
                model.dims()
            } else {
                model.labels.len()
            },
            pooling: model.pooling,
            normalizes: model.normalize,
            tokenizer,
            backends,
            pads: config.backend.pads_batches(),
            threads_per_replica: threads,
            profile: config.profile.clone(),
            thread_pool: if shared {
                ThreadPool::Shared
            } else {
                ThreadPool::Replica
            },
            precision: config.precision,
            accuracy,
            factory: Some(factory),
        })
    }
}

/// Removes a request's queued inputs if its future is dropped before it finished
/// (the client disconnected or a deadline fired).
struct CancelOnDrop<'a> {
    queue: &'a BatchQueue,
    request: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let n = self.queue.cancel(self.request);
            if n > 0 {
                ItemsCancelled { items: n as u64 }.emit();
            }
        }
    }
}

impl Engine {
    /// Loads the model, starts the replicas and warms each one up. Blocking: call it
    /// from a blocking context. Returns once the engine can serve.
    pub fn start(config: &EngineConfig) -> Result<Self, EngineError> {
        let started = Instant::now();
        let parts = ModelParts::load(config)?;
        let loaded_ms = started.elapsed().as_millis() as u64;
        let engine = Self::launch(parts, &config.batching, config.admission)?;
        let info = engine.info();
        tracing::info!(
            model = %info.id, revision = %info.revision, backend = info.backend,
            replicas = info.replicas, threads = info.threads_per_replica,
            thread_pool = info.thread_pool, precision = info.precision,
            mean_cosine_to_fp32 = info.accuracy.map(|a| a.mean_cosine),
            min_cosine_to_fp32 = info.accuracy.map(|a| a.min_cosine),
            load_ms = loaded_ms, ready_ms = started.elapsed().as_millis() as u64,
            tokens_per_second = engine.tokens_per_second().unwrap_or(0.0).round() as u64,
            "model loaded and warmed up"
        );
        Ok(engine)
    }

    /// Starts one replica thread per backend and warms each up. Blocking.
    pub fn launch(
        parts: ModelParts,
        batching: &BatchingConfig,
        admission: AdmissionConfig,
    ) -> Result<Self, EngineError> {
        let max_input_tokens = parts.tokenizer.max_len();
        let queue = Arc::new(BatchQueue::new(limits_for(
            batching,
            max_input_tokens,
            parts.pads,
        )));
        let backend_name = parts.backends.first().map_or("none", |b| b.name());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // One slot beyond the cores: a replica is started before the one it
        // replaces stops.
        let capacity = Arc::new(Capacity::with_slots(
            parts.backends.len(),
            parts.backends.len().max(cores) + 1,
        ));
        let warm = warmup_inputs(&parts.tokenizer);
        let threads = parts.threads_per_replica;
        let workers = match start_replicas(parts.backends, threads, &queue, &capacity, &warm) {
            Ok(w) => w,
            Err(e) => {
                queue.close();
                return Err(e);
            }
        };
        let info = ModelInfo {
            id: parts.id,
            revision: parts.revision,
            task: parts.task,
            labels: parts.labels,
            dims: parts.dims,
            max_input_tokens,
            backend: backend_name,
            pooling: parts.pooling,
            normalizes: parts.normalizes,
            replicas: workers.len(),
            threads_per_replica: parts.threads_per_replica,
            profile: parts.profile,
            thread_pool: parts.thread_pool.as_str(),
            precision: parts.precision.as_str(),
            accuracy: parts.accuracy,
            max_batch_tokens: queue.limits().max_batch_tokens,
            max_batch_requests: queue.limits().max_batch_requests,
            max_queue_tokens: queue.limits().max_queue_tokens,
        };
        Ok(Self {
            info,
            tokenizer: Arc::new(parts.tokenizer),
            queue,
            workers: std::sync::Mutex::new(workers),
            next_request: AtomicU64::new(1),
            capacity,
            admission: Admission::new(admission),
            warm,
            factory: parts.factory,
        })
    }

    /// Replicas running now.
    pub fn replica_count(&self) -> usize {
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Most replicas the model may run: one per core (or as many as it started
    /// with), and only the ones it has when it cannot make more.
    pub fn max_replicas(&self) -> usize {
        if self.factory.is_some() {
            self.capacity.slots()
        } else {
            self.replica_count()
        }
    }

    /// Intra-op threads of each running replica, oldest first.
    pub fn layout(&self) -> Vec<usize> {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|w| w.threads)
            .collect()
    }

    /// Makes, warms and starts one more replica beside the running ones, with as
    /// many threads as the newest; it takes work once warm. Blocking (the
    /// backend loads): call it off the runtime.
    pub fn add_replica(&self) -> Result<usize, EngineError> {
        let threads = self.layout().last().copied().unwrap_or(1);
        self.add_replica_with(threads)
    }

    fn add_replica_with(&self, threads: usize) -> Result<usize, EngineError> {
        let factory = self
            .factory
            .as_ref()
            .ok_or_else(|| EngineError::Backend("this model cannot add replicas".into()))?;
        let backend = factory(threads)?;
        let slot = self
            .capacity
            .claim()
            .ok_or_else(|| EngineError::Backend("every replica slot is taken".into()))?;
        match start_replica(
            backend,
            threads,
            slot,
            &self.queue,
            &self.capacity,
            &self.warm,
        ) {
            Ok(worker) => {
                let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
                workers.push(worker);
                Ok(workers.len())
            }
            Err(e) => {
                self.capacity.release(slot);
                Err(e)
            }
        }
    }

    /// Stops the newest replica once its batch is done (what is queued goes to
    /// the others); never the last one. Blocking: it waits for that batch.
    /// Returns the replicas left.
    pub fn remove_replica(&self) -> usize {
        self.remove_where(|workers| workers.len().checked_sub(1))
    }

    /// Moves to `replicas` replicas of `threads` threads each, one replica at a
    /// time and each new one warm before an old one stops, so the model serves
    /// throughout and never runs more than one replica beyond the larger layout.
    /// Blocking. Returns the replicas running.
    pub fn relayout(&self, replicas: usize, threads: usize) -> Result<usize, EngineError> {
        let replicas = replicas.max(1);
        let fitting = |layout: &[usize]| layout.iter().filter(|&&t| t == threads).count();
        loop {
            let layout = self.layout();
            let (fit, total) = (fitting(&layout), layout.len());
            if fit == total && total == replicas {
                return Ok(total);
            }
            if fit < replicas {
                // One more of the new shape, then one of the old shape goes.
                self.add_replica_with(threads)?;
                if total >= replicas {
                    self.remove_where(|w| w.iter().position(|w| w.threads != threads));
                }
            } else {
                // Enough of the new shape: the old go first, then the newest.
                self.remove_where(|w| {
                    w.iter()
                        .position(|w| w.threads != threads)
                        .or(w.len().checked_sub(1))
                });
            }
        }
    }

    /// Stops the replica `pick` chooses, when more than one runs.
    fn remove_where(&self, pick: impl FnOnce(&[Worker]) -> Option<usize>) -> usize {
        let worker = {
            let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            if workers.len() <= 1 {
                return workers.len();
            }
            pick(&workers).map(|i| workers.remove(i))
        };
        if let Some(w) = worker {
            w.stop.store(true, Ordering::Release);
            self.queue.wake_all();
            let _ = w.handle.join();
        }
        self.replica_count()
    }

    /// Runs the warm-up batches again through the queue, as many rounds as there
    /// are replicas (each free replica takes the next), beside live traffic.
    /// Returns the batches run.
    pub async fn warm_up_again(&self) -> Result<usize, EngineError> {
        let mut batches = 0;
        for _ in 0..self.capacity.replicas().len().max(1) {
            for batch in &self.warm {
                let encoded = batch
                    .iter()
                    .map(|ids| Encoded {
                        ids: ids.clone(),
                        truncated: false,
                        second: None,
                    })
                    .collect();
                self.embed_tokens(encoded, EmbedOptions::default()).await?;
                batches += 1;
            }
        }
        Ok(batches)
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// [`Self::info`] with what changes while serving (replicas, their threads,
    /// the batch budgets) as it is now.
    pub fn live_info(&self) -> ModelInfo {
        let b = self.budgets();
        // On a shared pool the threads are the pool's, whatever the replicas.
        let threads = match self.layout().first() {
            Some(&t) if self.info.thread_pool != "shared" => t,
            _ => self.info.threads_per_replica,
        };
        ModelInfo {
            replicas: self.replica_count(),
            threads_per_replica: threads,
            max_batch_tokens: b.max_batch_tokens,
            max_batch_requests: b.max_batch_requests,
            max_queue_tokens: b.max_queue_tokens,
            ..self.info.clone()
        }
    }

    /// Batches run and inputs they held since start: their ratio is the mean batch size.
    pub fn batch_counts(&self) -> (u64, u64) {
        self.queue.batch_counts()
    }

    pub fn queued_tokens(&self) -> usize {
        self.queue.queued_tokens()
    }

    /// Tokens computed (padding included) and real tokens since start.
    pub fn token_counts(&self) -> (u64, u64) {
        self.queue.token_counts()
    }

    /// Inputs queued now, and the time inputs spent queued so far.
    pub fn queue_stats(&self) -> crate::QueueStats {
        self.queue.stats()
    }

    /// The replicas' rates, what they run and what is queued, for admission
    /// control. Cheap: one short lock per replica and one on the queue.
    pub fn load(&self) -> Load {
        let (queued_tokens, limits) = self.queue.occupancy();
        Load {
            replicas: self.capacity.replicas(),
            queued_tokens,
            max_queue_tokens: limits.max_queue_tokens,
            max_batch_tokens: limits.max_batch_tokens,
            max_batch_requests: limits.max_batch_requests,
        }
    }

    /// Real tokens per second all replicas together run, measured on every batch
    /// (the warm-up included, so it is known once the engine has started).
    pub fn tokens_per_second(&self) -> Option<f64> {
        self.load().tokens_per_second()
    }

    /// The batch budgets in force now (they change live).
    pub fn budgets(&self) -> Budgets {
        let l = self.queue.limits();
        Budgets {
            max_batch_tokens: l.max_batch_tokens,
            max_batch_requests: l.max_batch_requests,
            max_queue_tokens: l.max_queue_tokens,
            max_padding_ratio: l.max_padding_ratio,
        }
    }

    /// Sums over the batches formed while inputs were left waiting, since start.
    pub fn bound_batches(&self) -> BoundTotals {
        self.queue.bound.totals()
    }

    /// A climber over this model's batch budgets, starting from those in force.
    pub fn climber(&self, settings: ClimbSettings) -> Climber {
        let pads = self.queue.limits().pads;
        Climber::new(self.budgets(), self.info.max_input_tokens, pads, settings)
    }

    /// New batch budgets (the batch tuner's): the next batch formed follows them
    /// (the queue keeps its own padding).
    pub fn set_budgets(&self, b: Budgets) {
        self.queue
            .set_limits(limits_of(b, self.info.max_input_tokens, false));
    }

    /// Applies new batch budgets and admission settings to the running model:
    /// the next batch formed and the next request admitted follow them. Threads
    /// and replicas are not changed here.
    pub fn retune(&self, batching: &BatchingConfig, admission: AdmissionConfig) {
        self.queue
            .set_limits(limits_for(batching, self.info.max_input_tokens, false));
        self.admission.set_config(admission);
    }

    /// The model's admission control.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Charges the texts the cache lacks against the queue and the permit's
    /// deadline; see [`Admission::charge`].
    pub fn charge<I: TextInput>(
        &self,
        permit: &Permit,
        inputs: &[&I],
    ) -> Result<Ticket, EngineError> {
        self.admission.charge_bytes(
            permit,
            &self.load(),
            self.info.max_input_tokens,
            inputs.iter().map(|i| i.text_bytes()),
        )
    }

    /// Charges inputs already tokenized (`tokens` in all) against the queue and
    /// the permit's deadline.
    pub fn charge_tokens(
        &self,
        permit: &Permit,
        tokens: usize,
        inputs: usize,
    ) -> Result<Ticket, EngineError> {
        self.admission
            .charge_tokens(permit, &self.load(), tokens, inputs)
    }

    /// Refuses a body the queue cannot take before it is read, or that would
    /// queue longer than `max_queue` behind the work ahead whatever it holds; see
    /// [`Admission::check_body`] and [`Admission::check_waiting`]. One short lock
    /// on the queue, and a look at the replicas only when work is queued.
    pub fn check_body(&self, declared_bytes: usize) -> Result<(), EngineError> {
        let (queued, limits) = self.queue.occupancy();
        let capacity = limits.max_queue_tokens;
        self.admission
            .check_body(queued, capacity, declared_bytes)?;
        if queued > 0 {
            self.admission.check_waiting(&self.load())?;
        }
        Ok(())
    }

    pub fn tokenizer(&self) -> &Arc<TextTokenizer> {
        &self.tokenizer
    }

    /// Tokenizes `inputs`; errors name the input by its index. Blocking.
    pub fn tokenize<I: TextInput>(
        &self,
        inputs: &[I],
        truncate: bool,
    ) -> Result<Vec<Encoded>, EngineError> {
        tokenize_all(&self.tokenizer, inputs, truncate)
    }

    /// Tokenizes `texts` off the async runtime when there is enough of them to
    /// matter: a request of 120 long inputs takes tens of milliseconds of tokenizer
    /// time, which would stall every other task on the worker (health probes too).
    pub async fn tokenize_async<I: TextInput>(
        &self,
        texts: Vec<I>,
        truncate: bool,
    ) -> Result<Vec<Encoded>, EngineError> {
        let bytes: usize = texts.iter().map(TextInput::text_bytes).sum();
        if bytes <= INLINE_TOKENIZE_BYTES {
            return tokenize_all(&self.tokenizer, &texts, truncate);
        }
        let tokenizer = self.tokenizer.clone();
        tokio::task::spawn_blocking(move || tokenize_all(&tokenizer, &texts, truncate))
            .await
            .map_err(|_| EngineError::Backend("the tokenizer task stopped".into()))?
    }

    /// Embeds `texts` in order. Dropping the future removes its queued inputs.
    pub async fn embed<S: AsRef<str>>(
        &self,
        texts: &[S],
        opts: EmbedOptions,
    ) -> Result<Embeddings, EngineError> {
        let t0 = Instant::now();
        let owned: Vec<String> = texts.iter().map(|t| t.as_ref().to_owned()).collect();
        let encoded = self.tokenize_async(owned, opts.truncate).await?;
        let tokenize = t0.elapsed();
        let mut out = self.embed_tokens(encoded, opts).await?;
        out.timings.tokenize = tokenize;
        Ok(out)
    }

    /// Embeds token sequences (already truncated to the model's limit) in order.
    pub async fn embed_tokens(
        &self,
        encoded: Vec<Encoded>,
        opts: EmbedOptions,
    ) -> Result<Embeddings, EngineError> {
        let mut timings = Timings::default();
        let token_counts: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
        let tokens = token_counts.iter().sum();
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let enqueued = Instant::now();
        let (items, replies): (Vec<Item>, Vec<oneshot::Receiver<_>>) = encoded
            .into_iter()
            .map(|e| {
                let (reply, rx) = oneshot::channel();
                (
                    Item {
                        ids: e.ids,
                        second: e.second,
                        request,
                        enqueued,
                        reply,
                    },
                    rx,
                )
            })
            .unzip();
        match self.queue.push(items) {
            Ok(()) => {}
            Err(Rejected::Full { queued }) => {
                crate::admission::rejected(RejectReason::QueueFull);
                return Err(EngineError::Overloaded {
                    queued,
                    capacity: self.queue.limits().max_queue_tokens,
                });
            }
            Err(Rejected::Closed) => return Err(EngineError::ShuttingDown),
        }
        let mut guard = CancelOnDrop {
            queue: &self.queue,
            request,
            armed: true,
        };
        let results = futures::future::join_all(replies).await;
        guard.armed = false;

        let t1 = Instant::now();
        let mut vectors = Vec::with_capacity(results.len());
        for r in results {
            let r = r.map_err(|_| EngineError::ShuttingDown)?;
            timings.queue = timings.queue.max(r.queued);
            timings.inference = timings.inference.max(r.inference);
            let mut v = r.embedding.map_err(EngineError::Backend)?;
            if let Some(d) = opts.dimensions {
                v.truncate(d);
            }
            if opts.normalize {
                l2_normalize(&mut v);
            }
            vectors.push(v);
        }
        timings.postprocess = t1.elapsed();
        Ok(Embeddings {
            vectors,
            tokens,
            token_counts,
            timings,
        })
    }

    /// Stops admitting work, lets the replicas finish what is queued, and joins them.
    pub fn shutdown(&self) {
        self.queue.close();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.handle.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// The queue's budgets from `batching`: a batch always has room for one input of
/// the model's longest.
fn limits_for(batching: &BatchingConfig, max_input_tokens: usize, pads: bool) -> Limits {
    let budgets = Budgets {
        max_batch_tokens: batching.max_batch_tokens,
        max_batch_requests: batching.max_batch_requests,
        max_queue_tokens: batching.max_queue_tokens,
        max_padding_ratio: batching.max_padding_ratio,
    };
    limits_of(budgets, max_input_tokens, pads)
}

/// Budgets as the queue takes them: a batch holds at least one input of the
/// longest kind, and pads no less than nothing.
fn limits_of(b: Budgets, max_input_tokens: usize, pads: bool) -> Limits {
    Limits {
        max_batch_tokens: b.max_batch_tokens.max(max_input_tokens),
        max_batch_requests: b.max_batch_requests.max(1),
        max_queue_tokens: b.max_queue_tokens,
        pads,
        max_padding_ratio: b.max_padding_ratio.max(1.0),
    }
}

/// The batch budgets a model runs with now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budgets {
    pub max_batch_tokens: usize,
    pub max_batch_requests: usize,
    pub max_queue_tokens: usize,
    pub max_padding_ratio: f64,
}

/// Texts up to this many bytes in all are tokenized on the calling task: a hop to
/// the blocking pool costs more than tokenizing a few sentences.
const INLINE_TOKENIZE_BYTES: usize = 8 * 1024;

fn tokenize_all<I: TextInput>(
    tokenizer: &TextTokenizer,
    inputs: &[I],
    truncate: bool,
) -> Result<Vec<Encoded>, EngineError> {
    let mut encoded = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        match input.encode(tokenizer, truncate) {
            Ok(e) => encoded.push(e),
            Err(TokenizeError::TooLong { tokens, max }) => {
                return Err(EngineError::InputTooLong { index, tokens, max });
            }
            Err(TokenizeError::Failed(message)) => {
                return Err(EngineError::Tokenize { index, message });
            }
        }
    }
    Ok(encoded)
}

/// One thread per backend: each warms its replica up, reports, then serves the
/// queue. Returns once every replica is warm, or the first failure.
fn start_replicas(
    backends: Vec<Box<dyn Backend>>,
    threads: usize,
    queue: &Arc<BatchQueue>,
    capacity: &Arc<Capacity>,
    warm: &[Vec<Vec<u32>>],
) -> Result<Vec<Worker>, EngineError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut workers = Vec::with_capacity(backends.len());
    for (i, backend) in backends.into_iter().enumerate() {
        workers.push(spawn_replica(
            backend,
            threads,
            i,
            queue,
            capacity,
            warm,
            ready_tx.clone(),
        )?);
    }
    drop(ready_tx);
    for _ in 0..workers.len() {
        wait_warm(&ready_rx)?;
    }
    Ok(workers)
}

/// Starts one replica in `slot` and waits until it is warm.
fn start_replica(
    backend: Box<dyn Backend>,
    threads: usize,
    slot: usize,
    queue: &Arc<BatchQueue>,
    capacity: &Arc<Capacity>,
    warm: &[Vec<Vec<u32>>],
) -> Result<Worker, EngineError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let worker = spawn_replica(backend, threads, slot, queue, capacity, warm, ready_tx)?;
    wait_warm(&ready_rx)?;
    Ok(worker)
}

fn spawn_replica(
    mut backend: Box<dyn Backend>,
    threads: usize,
    slot: usize,
    queue: &Arc<BatchQueue>,
    capacity: &Arc<Capacity>,
    warm: &[Vec<Vec<u32>>],
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<Worker, EngineError> {
    let stop = Arc::new(AtomicBool::new(false));
    let shared = worker::Shared {
        queue: queue.clone(),
        capacity: capacity.clone(),
        stop: stop.clone(),
    };
    let warm = warm.to_vec();
    let handle = std::thread::Builder::new()
        .name(format!("osprey-replica-{slot}"))
        .spawn(move || {
            let result = worker::warm_up(backend.as_mut(), &warm, &shared.capacity, slot);
            let ok = result.is_ok();
            let _ = ready.send(result);
            if ok {
                worker::run(backend, slot, shared);
            } else {
                shared.capacity.release(slot);
            }
        })?;
    Ok(Worker {
        stop,
        handle,
        threads,
    })
}

fn wait_warm(ready: &std::sync::mpsc::Receiver<Result<(), String>>) -> Result<(), EngineError> {
    match ready.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(EngineError::Backend(format!("warm-up failed: {e}"))),
        Err(_) => Err(EngineError::Backend("a replica died during warm-up".into())),
    }
}

/// Small batches that run every kernel once (first runs allocate buffers and pick
/// kernels) while keeping start-up short: one short input, then four of them.
fn warmup_inputs(tok: &TextTokenizer) -> Vec<Vec<Vec<u32>>> {
    let short = tok
        .encode("Osprey warms up its model before it reports ready.", true)
        .map(|e| e.ids)
        .unwrap_or_else(|_| vec![0; 12]);
    vec![vec![short.clone()], vec![short; 4]]
}
