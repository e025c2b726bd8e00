//! The model repository as the server runs it: `[[models]]` entries, loading one
//! off the runtime, and adding, reloading and removing models while requests flow.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use osprey_engine::cache::TieredCache;
use osprey_engine::{
    BackendKind, Backing, Engine, EngineConfig, EngineError, Pipeline, Registry, ResolveError,
    Served, Task, TensorEngine,
};
use serde::{Deserialize, Serialize};

use crate::EngineSlot;
use crate::sessions::Sessions;
use osprey_engine::generate::{GenerationConfig, Generator};

/// One `[[models]]` entry, and the body of `POST /admin/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// What clients send as `model`; unique together with `version`.
    pub name: String,
    /// A Hugging Face directory, a directory holding `model.onnx`, or a model file.
    pub path: PathBuf,
    /// Inferred from the files when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Weight among the versions of the same name (A/B tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
    /// This model's own replica autoscaling, instead of `[autoscale]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<crate::AutoscaleConfig>,
}

impl ModelSpec {
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or(DEFAULT_VERSION)
    }

    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version())
    }

    /// Whether `s` may name a model or a version: 1 to 128 letters, digits, `-`,
    /// `_`, `.` or `:` (so `name@version` and URL paths stay unambiguous).
    pub fn plain_name(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    }

    /// Refuses what no model could be loaded under.
    pub fn validate(&self) -> Result<(), String> {
        let plain = Self::plain_name;
        if !plain(&self.name) {
            return Err(format!(
                "model name `{}` must be 1 to 128 letters, digits, `-`, `_`, `.` or `:`",
                self.name
            ));
        }
        if !plain(self.version()) {
            return Err(format!(
                "version `{}` must be 1 to 128 letters, digits, `-`, `_`, `.` or `:`",
                self.version()
            ));
        }
        if self.replicas == Some(0) {
            return Err(format!(
                "model `{}`: replicas must be at least 1",
                self.name
            ));
        }
        if let Some(a) = &self.autoscale {
            a.validate()
                .map_err(|e| format!("model `{}`: {e}", self.name))?;
        }
        if let Some(t) = self.traffic
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(format!(
                "model `{}`: traffic must be a number of at least 0, not {t}",
                self.name
            ));
        }
        Ok(())
    }
}

/// The version of a model configured without one.
pub const DEFAULT_VERSION: &str = "1";

/// Why a model could not be added, reloaded or removed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    Invalid(String),
    #[error("model {0} is already served; reload it or pick another version")]
    Exists(String),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("model {label} could not be loaded: {message}")]
    Load { label: String, message: String },
}

/// The served models and what loading another one takes.
pub struct Models {
    registry: Registry,
    /// What a model is loaded with; its batch budgets and admission change live.
    base: std::sync::Mutex<EngineConfig>,
    cache: Option<Arc<TieredCache>>,
    /// With no `[[models]]`, the default model answers whatever unknown `model` a
    /// request names, as Osprey always did (OpenAI clients must send one).
    single: bool,
    /// How long a removed or replaced model may finish its requests.
    drain: Duration,
    /// What each served model was loaded from, by `name@version`.
    specs: std::sync::Mutex<Vec<ModelSpec>>,
    /// The default model's slot (readiness, `/info`, the dashboard).
    slot: Arc<EngineSlot>,
    /// How generation models run, and their chat sessions.
    generation: GenerationConfig,
    sessions: Arc<Sessions>,
}

impl Models {
    pub fn new(base: EngineConfig, cache: Option<Arc<TieredCache>>, single: bool) -> Self {
        let sessions = Arc::new(Sessions::new(&GenerationConfig::default(), cache.clone()));
        Self {
            registry: Registry::default(),
            base: std::sync::Mutex::new(base),
            cache,
            single,
            drain: Duration::from_secs(30),
            specs: std::sync::Mutex::default(),
            slot: Arc::default(),
            sessions,
            generation: GenerationConfig::default(),
        }
    }

    /// The same models, generating as `config` says.
    pub fn with_generation(mut self, config: GenerationConfig) -> Self {
        self.sessions = Arc::new(Sessions::new(&config, self.cache.clone()));
        self.generation = config;
        self
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    fn base(&self) -> std::sync::MutexGuard<'_, EngineConfig> {
        self.base.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The batch budgets and admission models loaded from now on get.
    pub(crate) fn set_base_batching(
        &self,
        batching: &osprey_engine::BatchingConfig,
        admission: osprey_engine::AdmissionConfig,
    ) {
        let mut base = self.base();
        let b = &mut base.batching;
        b.max_batch_tokens = batching.max_batch_tokens;
        b.max_batch_requests = batching.max_batch_requests;
        b.max_queue_tokens = batching.max_queue_tokens;
        b.max_padding_ratio = batching.max_padding_ratio;
        base.admission = admission;
    }

    /// The result cache every model shares, when one is configured.
    pub fn cache(&self) -> Option<&Arc<TieredCache>> {
        self.cache.as_ref()
    }

    /// The same models, keeping `slot` on the default model.
    pub fn with_slot(mut self, slot: Arc<EngineSlot>) -> Self {
        self.slot = slot;
        self
    }

    /// Points the slot at the first text model served, after any change.
    fn refresh_slot(&self) {
        if let Some(p) = self
            .registry
            .all()
            .iter()
            .find_map(|m| m.pipeline().ok().cloned())
        {
            self.slot.set(p);
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether the one default model answers whatever `model` a request names.
    pub fn is_single(&self) -> bool {
        self.single
    }

    /// The model for a request of `task` that named `asked` (or none).
    pub fn resolve(
        &self,
        asked: Option<&str>,
        task: Task,
        ab_key: Option<&str>,
    ) -> Result<Arc<Served>, ResolveError> {
        if !self.single {
            return self.registry.resolve(asked, task, ab_key);
        }
        // Served from `[model]`: a name no model has means the default model (as
        // Osprey always answered), and until it is there, it is loading. Models
        // added at run time are still found by their names.
        let found = match self.registry.resolve(asked, task, ab_key) {
            Err(ResolveError::Unknown(_)) => self.registry.resolve(None, task, ab_key),
            other => other,
        };
        match found {
            Err(ResolveError::NoModel(_)) if self.registry.all().is_empty() => {
                Err(ResolveError::Loading(String::new()))
            }
            other => other,
        }
    }

    /// Loads, warms and starts a model off the runtime.
    pub async fn load(&self, spec: &ModelSpec) -> Result<Served, ManageError> {
        spec.validate().map_err(ManageError::Invalid)?;
        let mut config = self.base().clone();
        config.model_path = spec.path.clone();
        if let Some(b) = spec.backend {
            config.backend = b;
        }
        if let Some(r) = spec.replicas {
            config.batching.replicas = r;
        }
        let failed = |message: String| ManageError::Load {
            label: spec.label(),
            message,
        };
        let found = osprey_engine::infer_task(&spec.path).map_err(|e| failed(e.to_string()))?;
        if let Some(asked) = spec.task
            && asked != found
        {
            return Err(failed(format!(
                "task is set to {asked} but the files hold a {found} model"
            )));
        }
        let started = Instant::now();
        let cache = self.cache.clone();
        let generation = self.generation.clone();
        let backing = tokio::task::spawn_blocking(move || -> Result<Backing, String> {
            let text = |e: EngineError| e.to_string();
            if found == Task::Generate {
                let g =
                    Generator::start(&config.model_path, &generation).map_err(|e| e.to_string())?;
                Ok(Backing::Generate(Arc::new(g)))
            } else if found.is_text() {
                let engine = Engine::start(&config).map_err(text)?;
                Ok(Backing::Text(Arc::new(Pipeline::new(
                    Arc::new(engine),
                    cache,
                ))))
            } else {
                let engine = TensorEngine::start(
                    &config.model_path,
                    &config.batching,
                    config.admission,
                    config.onnxruntime_lib.as_deref(),
                    config.onnx_prepack,
                )
                .map_err(text)?;
                Ok(Backing::Tensor(Arc::new(engine)))
            }
        })
        .await
        .map_err(|_| failed("the loading task stopped".into()))?
        .map_err(failed)?;
        tokio::task::spawn_blocking(osprey_engine::release_freed_memory)
            .await
            .ok();
        tracing::info!(
            model = %spec.label(), task = %found,
            ms = started.elapsed().as_millis() as u64, "model serving"
        );
        Ok(Served::with_backing(
            spec.name.clone(),
            spec.version().to_owned(),
            spec.traffic,
            backing,
        ))
    }

    /// Loads a model and starts routing to it; refuses a name@version served.
    pub async fn add(&self, spec: &ModelSpec) -> Result<Arc<Served>, ManageError> {
        if self.registry.get(&spec.label()).is_ok() {
            return Err(ManageError::Exists(spec.label()));
        }
        let served = self.load(spec).await?;
        let label = served.label.clone();
        match self.registry.add(served) {
            Ok(()) => {
                self.specs().push(spec.clone());
                self.refresh_slot();
                self.registry.get(&label).map_err(ManageError::from)
            }
            Err(lost) => {
                // Another add of the same name@version won the race.
                stop(Arc::new(*lost)).await;
                Err(ManageError::Exists(label))
            }
        }
    }

    /// Loads the model's files again beside the running copy (from `spec` when
    /// given, else as it was loaded), swaps the new copy in at once, then lets the
    /// old one finish its requests and stops it.
    pub async fn reload(
        &self,
        name: &str,
        spec: Option<&ModelSpec>,
    ) -> Result<Arc<Served>, ManageError> {
        let label = self.registry.get(name)?.label.clone();
        let spec = match spec {
            Some(s) => s.clone(),
            None => self
                .specs()
                .iter()
                .find(|s| s.label() == label)
                .cloned()
                .ok_or_else(|| ResolveError::Unknown(label.clone()))?,
        };
        let fresh = self.load(&spec).await?;
        let Some(replaced) = self.registry.replace(fresh) else {
            return Err(ResolveError::Unknown(label).into());
        };
        self.retire(vec![replaced]);
        self.refresh_slot();
        let mut specs = self.specs();
        specs.retain(|s| s.label() != label);
        specs.push(spec);
        drop(specs);
        self.registry.get(&label).map_err(ManageError::from)
    }

    /// What each served model was loaded from.
    pub fn specs(&self) -> std::sync::MutexGuard<'_, Vec<ModelSpec>> {
        self.specs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops routing to `name` (or `name@version`), then stops it once its
    /// requests are done.
    pub fn remove(&self, name: &str) -> Result<Vec<String>, ManageError> {
        let gone = self.registry.remove(name);
        if gone.is_empty() {
            return Err(ResolveError::Unknown(name.to_owned()).into());
        }
        let labels: Vec<String> = gone.iter().map(|m| m.label.clone()).collect();
        self.specs().retain(|s| !labels.contains(&s.label()));
        self.refresh_slot();
        self.retire(gone);
        Ok(labels)
    }

    /// Drains and stops models no longer routed to, in the background.
    fn retire(&self, models: Vec<Arc<Served>>) {
        let drain = self.drain;
        for m in models {
            tokio::spawn(async move {
                // Requests hold the model while they run: once only this task does,
                // nothing can reach its queue any more.
                let until = Instant::now() + drain;
                while Arc::strong_count(&m) > 1 && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                stop(m).await;
            });
        }
    }

    /// Makes the served models those of `wanted` (a re-read `[[models]]`): adds
    /// the new, reloads the changed, removes the gone. Each failure is logged and
    /// leaves that model as it was; the others still change.
    pub async fn apply(&self, wanted: &[ModelSpec]) -> usize {
        let current = self.specs().clone();
        let mut failures = 0;
        for spec in wanted {
            let result = match current.iter().find(|c| c.label() == spec.label()) {
                None => self.add(spec).await.map(|_| "added"),
                Some(c) if c != spec => self
                    .reload(&spec.label(), Some(spec))
                    .await
                    .map(|_| "reloaded"),
                Some(_) => continue,
            };
            match result {
                Ok(what) => tracing::info!(model = %spec.label(), "{what}"),
                Err(e) => {
                    failures += 1;
                    tracing::error!(model = %spec.label(), error = %e, "model change failed");
                }
            }
        }
        for gone in current
            .iter()
            .filter(|c| !wanted.iter().any(|w| w.label() == c.label()))
        {
            if self.remove(&gone.label()).is_ok() {
                tracing::info!(model = %gone.label(), "removed");
            }
        }
        failures
    }

    /// Stops every model (at shutdown).
    pub async fn stop_all(&self) {
        for m in self.registry.all().iter() {
            stop(m.clone()).await;
        }
    }
}

/// Closes a model's queue, lets its replicas finish, and joins them off the runtime.
async fn stop(m: Arc<Served>) {
    let label = m.label.clone();
    tokio::task::spawn_blocking(move || {
        m.shutdown();
        // Usually the last holder of the model: its weights go back to the system.
        drop(m);
        osprey_engine::release_freed_memory();
    })
    .await
    .ok();
    tracing::info!(model = %label, "model stopped");
}
