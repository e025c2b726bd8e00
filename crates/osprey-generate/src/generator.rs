//! A loaded GGUF model and its decode loop, as the server holds it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::budget::Budget;
use crate::engine::{self, LoopConfig, Submitted};
use crate::request::{Event, Job};
use crate::stats::Stats;
use crate::template::{ChatTemplate, Message};
use crate::{GenerateError, GenerationConfig};

/// llama.cpp's backend is set up once per process.
fn backend() -> Result<&'static LlamaBackend, GenerateError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            // Its load-time chatter would flood the server's log; failures are
            // reported through the errors returned.
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(|e| GenerateError::Load(format!("llama.cpp backend: {e}")))
}

/// What `/v1/models` and `/info` show about a generation model.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorInfo {
    pub path: PathBuf,
    pub architecture: String,
    pub parameters: u64,
    pub file_bytes: u64,
    /// BLAKE3 of the file: cache keys change when the weights do.
    pub revision: String,
    /// Longest prompt plus answer of one request.
    pub context_tokens: u32,
    /// The context the model was trained with.
    pub trained_context: u32,
    pub kv_budget_tokens: u32,
    pub max_sequences: u32,
    pub default_max_tokens: u32,
    pub threads: i32,
    pub chat_template: String,
}

pub struct Generator {
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    jobs: Mutex<Option<mpsc::Sender<Submitted>>>,
    budget: Arc<Budget>,
    stats: Arc<Stats>,
    info: GeneratorInfo,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Generator {
    /// Loads the model, builds its context and starts the decode loop. Blocking.
    pub fn start(path: &Path, config: &GenerationConfig) -> Result<Self, GenerateError> {
        config.validate().map_err(GenerateError::Config)?;
        let backend = backend()?;
        if !path.is_file() {
            return Err(GenerateError::Load(format!(
                "{} is not a GGUF file",
                path.display()
            )));
        }
        let started = Instant::now();
        let revision = file_revision(path)?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| {
                GenerateError::Load(format!(
                    "{} could not be loaded as a GGUF model of an architecture llama.cpp \
                     supports: {e}",
                    path.display()
                ))
            })?;
        let model = Arc::new(model);
        let template = ChatTemplate::for_model(&model, &config.chat_template)?;
        let trained = model.n_ctx_train();
        let context_tokens = config.context_tokens.min(trained.max(16));
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let threads = i32::try_from(threads).unwrap_or(1);
        let architecture = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let loop_config = LoopConfig {
            max_sequences: config.max_sequences,
            kv_tokens: config.kv_budget_tokens,
            batch_tokens: config.batch_tokens,
            threads,
            swa_window: model
                .meta_val_str(&format!("{architecture}.attention.sliding_window"))
                .ok()
                .and_then(|w| w.trim().parse().ok())
                .unwrap_or(0),
        };
        let info = GeneratorInfo {
            path: path.to_owned(),
            architecture,
            parameters: model.n_params(),
            file_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
            revision,
            context_tokens,
            trained_context: trained,
            kv_budget_tokens: config.kv_budget_tokens,
            max_sequences: config.max_sequences,
            default_max_tokens: config.default_max_tokens,
            threads,
            chat_template: template.name().to_owned(),
        };
        let budget = Arc::new(Budget::new(config.kv_budget_tokens));
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel::<Submitted>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
        let worker = {
            let (model, budget, stats) = (model.clone(), budget.clone(), stats.clone());
            std::thread::Builder::new()
                .name("osprey-generate".into())
                .spawn(move || {
                    let ctx = match model.new_context(backend, loop_config.context_params()) {
                        Ok(ctx) => ctx,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    engine::run(&model, ctx, &loop_config, &rx, &budget, &stats);
                })
                .map_err(|e| GenerateError::Load(format!("decode thread: {e}")))?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GenerateError::Load(format!("llama.cpp context: {e}"))),
            Err(_) => return Err(GenerateError::Load("the decode thread stopped".into())),
        }
        tracing::info!(
            model = %path.display(), architecture = %info.architecture,
            template = %info.chat_template, ms = started.elapsed().as_millis() as u64,
            "generation model loaded"
        );
        Ok(Self {
            model,
            template,
            jobs: Mutex::new(Some(tx)),
            budget,
            stats,
            info,
            worker: Mutex::new(Some(worker)),
        })
    }

    pub fn info(&self) -> &GeneratorInfo {
        &self.info
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The prompt's tokens, with the model's start token when it wants one.
    pub fn tokenize(&self, text: &str) -> Vec<i32> {
        let vocab = self.model.vocab();
        vocab
            .tokenize(text.as_bytes(), true, true)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    /// The bytes a token stands for (replaying a cached answer).
    pub fn token_bytes(&self, id: i32) -> Vec<u8> {
        if id < 0 || id >= self.model.n_vocab() {
            return Vec::new();
        }
        self.model
            .vocab()
            .token_to_piece(LlamaToken(id), false, None)
    }

    /// The chat's prompt, and the stop sequences its template adds.
    pub fn chat_prompt(
        &self,
        messages: &[Message],
    ) -> Result<(String, &'static [&'static str]), GenerateError> {
        Ok((
            self.template.apply(&self.model, messages)?,
            self.template.stops(),
        ))
    }

    /// Checks the job against the context and the KV budget, and queues it.
    pub fn submit(&self, job: Job) -> Result<UnboundedReceiver<Event>, GenerateError> {
        let prompt = u32::try_from(job.prompt.len()).unwrap_or(u32::MAX);
        let context = self.info.context_tokens;
        if prompt == 0 {
            return Err(GenerateError::Invalid("the prompt is empty".into()));
        }
        if prompt >= context {
            return Err(GenerateError::Invalid(format!(
                "the prompt is {prompt} tokens; this model's context is {context} tokens"
            )));
        }
        if job.max_tokens == 0 || prompt.saturating_add(job.max_tokens) > context {
            return Err(GenerateError::Invalid(format!(
                "max_tokens must be between 1 and {} for this prompt of {prompt} tokens \
                 (context {context})",
                context - prompt
            )));
        }
        let needed = prompt + job.max_tokens;
        if !self.budget.reserve(needed) {
            self.stats.rejected.add(1);
            return Err(GenerateError::Busy {
                needed,
                free: self.budget.total().saturating_sub(self.budget.used()),
                total: self.budget.total(),
            });
        }
        let (events, rx) = unbounded_channel();
        let submitted = Submitted {
            job,
            events,
            reserved: needed,
            queued_at: Instant::now(),
        };
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.as_ref().map(|tx| tx.send(submitted)) {
            Some(Ok(())) => Ok(rx),
            _ => {
                self.budget.release(needed);
                Err(GenerateError::Stopped)
            }
        }
    }

    /// Stops taking jobs, lets the running ones finish, and joins the loop.
    /// Blocking.
    pub fn shutdown(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = worker {
            let _ = w.join();
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// BLAKE3 of the model file, hex.
fn file_revision(path: &Path) -> Result<String, GenerateError> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap(path)
        .map_err(|e| GenerateError::Load(format!("{}: {e}", path.display())))?;
    Ok(hasher.finalize().to_hex()[..16].to_owned())
}
