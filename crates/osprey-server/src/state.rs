use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use osprey_engine::Pipeline;

use crate::models::Models;
use crate::observe::{ObserveConfig, Observer};
use crate::{ApiError, Protection, ServerConfig};

/// The default model's pipeline (the first text model served), or why there is
/// none (yet). It follows the repository: a reload or removal moves it.
#[derive(Default)]
pub struct EngineSlot {
    engine: RwLock<Option<Arc<Pipeline>>>,
    failure: OnceLock<String>,
}

impl EngineSlot {
    pub fn set(&self, engine: Arc<Pipeline>) {
        *self.engine.write().unwrap_or_else(|p| p.into_inner()) = Some(engine);
    }

    pub fn fail(&self, reason: String) {
        let _ = self.failure.set(reason);
    }

    pub fn get(&self) -> Option<Arc<Pipeline>> {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }
}

/// What every handler and middleware shares, behind one reference count: axum
/// clones the state for each extractor and middleware of every request, and one
/// shared count bumped per clone costs less than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Clone)]
pub struct Shared {
    pub config: Arc<ServerConfig>,
    pub engine: Arc<EngineSlot>,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    /// Auth and rate limits (off with `AppState::new`); replaced whole when the
    /// keys file or the limits change live.
    pub protection: Arc<arc_swap::ArcSwap<Protection>>,
    /// Rolling statistics, SLOs, alerts and the profiler.
    pub observe: Arc<Observer>,
    /// Every served model, by name and version.
    pub models: Arc<Models>,
    /// Whether responses say how the cache answered (`x-cache`, the cache's part
    /// of `Server-Timing`); `telemetry.expose_cache_status`.
    pub expose_cache_status: bool,
    /// Set on SIGTERM: readiness answers 503 and responses close their
    /// connections, so load balancers and kept-alive clients move elsewhere.
    pub draining: Arc<AtomicBool>,
    /// Whether each request records an OpenTelemetry span (an exporter is set up).
    pub traces: bool,
    /// Vector collections (Qdrant's API), when turned on; opened in the background.
    pub collections: Option<Arc<CollectionsSlot>>,
    /// The whole effective configuration with its secrets hidden, for
    /// `GET /admin/config` (set by the binary, which owns the file's shape).
    pub effective_config: Option<Arc<serde_json::Value>>,
    /// Reads and changes the configuration live (`PUT /admin/config`); set by the
    /// binary.
    pub control: Option<Arc<dyn crate::ConfigControl>>,
    /// What the server changed about itself, and what was changed live.
    pub actions: Arc<crate::actions::Actions>,
    /// The memory ceiling and how it is defended; changed live.
    pub self_heal: Arc<arc_swap::ArcSwap<crate::SelfHealConfig>>,
    /// How replicas follow the load (models without their own); changed live.
    pub autoscale: Arc<arc_swap::ArcSwap<crate::AutoscaleConfig>>,
    /// The cache-filling job of `POST /admin/cache/warm`.
    pub warming: Arc<crate::cache_warm::Warming>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(config: ServerConfig, metrics: PrometheusHandle) -> Self {
        let engine = Arc::new(EngineSlot::default());
        Self(Arc::new(Shared {
            config: Arc::new(config),
            engine: engine.clone(),
            metrics,
            started: Instant::now(),
            protection: Arc::new(arc_swap::ArcSwap::from_pointee(Protection::default())),
            observe: Arc::new(Observer::new(ObserveConfig::default())),
            models: Arc::new(Models::new(Default::default(), None, true).with_slot(engine.clone())),
            expose_cache_status: true,
            draining: Arc::new(AtomicBool::new(false)),
            traces: false,
            collections: None,
            effective_config: None,
            control: None,
            actions: Arc::default(),
            warming: Arc::default(),
            autoscale: Arc::new(arc_swap::ArcSwap::from_pointee(
                crate::AutoscaleConfig::default(),
            )),
            self_heal: Arc::new(arc_swap::ArcSwap::from_pointee(
                crate::SelfHealConfig::default(),
            )),
        }))
    }

    /// The same state serving `models`; the engine slot follows their default.
    pub fn with_models(self, models: Models) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        let models = models.with_slot(shared.engine.clone());
        shared.models = Arc::new(models);
        Self(Arc::new(shared))
    }

    /// The same state with auth, rate limits and admission control as configured.
    pub fn with_protection(self, protection: Protection) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.protection = Arc::new(arc_swap::ArcSwap::from_pointee(protection));
        Self(Arc::new(shared))
    }

    /// The same state observed as `config` says (metrics, logs, SLOs, alerts).
    pub fn with_observe(self, config: ObserveConfig) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.observe = Arc::new(Observer::new(config));
        Self(Arc::new(shared))
    }

    /// The same state telling clients how the cache answered, or not: hidden, no
    /// one learns from a response whether someone else embedded a text recently.
    pub fn with_cache_status(self, expose: bool) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.expose_cache_status = expose;
        Self(Arc::new(shared))
    }

    /// The same state recording a span per request in the global tracer provider.
    /// The same state reporting `config` (already redacted) at `/admin/config`.
    pub fn with_effective_config(self, config: serde_json::Value) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.effective_config = Some(Arc::new(config));
        Self(Arc::new(shared))
    }

    /// The same state with its configuration readable and changeable live.
    pub fn with_control(self, control: Arc<dyn crate::ConfigControl>) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.control = Some(control);
        Self(Arc::new(shared))
    }

    /// The same state scaling replicas as `config` says.
    pub fn with_autoscale(self, config: crate::AutoscaleConfig) -> Self {
        self.autoscale.store(Arc::new(config));
        self
    }

    /// The same state defending memory as `config` says.
    pub fn with_self_heal(self, config: crate::SelfHealConfig) -> Self {
        self.self_heal.store(Arc::new(config));
        self
    }

    pub fn with_traces(self, on: bool) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.traces = on;
        Self(Arc::new(shared))
    }

    /// The same state serving the collections `slot` is filled with.
    pub fn with_collections(self, slot: Arc<CollectionsSlot>) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.collections = Some(slot);
        Self(Arc::new(shared))
    }

    /// Starts draining: readiness drops at once; requests are still served.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether every configured model has loaded and one at least serves,
    /// of whatever task.
    pub fn serves_a_model(&self) -> bool {
        let registry = self.models.registry();
        registry.still_loading().is_empty() && !registry.all().is_empty()
    }

    /// The default model's pipeline: 503 while it loads, 404 when only
    /// generation or tensor models are served.
    pub fn engine(&self) -> Result<Arc<Pipeline>, ApiError> {
        match self.engine.get() {
            Some(p) => Ok(p),
            None if self.serves_a_model() => Err(ApiError::Model(
                osprey_engine::ResolveError::NoModel(osprey_engine::Task::Embed),
            )),
            None => Err(ApiError::NotReady),
        }
    }
}

/// The collections once their stores are open and their indexes loaded or
/// rebuilt, or why they could not be opened.
#[derive(Default)]
pub struct CollectionsSlot {
    opened: OnceLock<Result<Arc<osprey_collections::Collections>, String>>,
    /// Recent search times, for the dashboard.
    pub(crate) stats: crate::collection_stats::CollectionStats,
}

impl CollectionsSlot {
    pub fn fill(&self, opened: Result<osprey_collections::Collections, String>) {
        let _ = self.opened.set(opened.map(Arc::new));
    }

    /// `None` while opening.
    pub fn get(&self) -> Option<&Result<Arc<osprey_collections::Collections>, String>> {
        self.opened.get()
    }

    /// The dashboard's collections table (empty while opening or if they failed).
    pub(crate) fn rows(&self) -> Vec<crate::collection_stats::CollectionRow> {
        match self.get() {
            Some(Ok(c)) => self.stats.rows(c),
            _ => Vec::new(),
        }
    }
}
