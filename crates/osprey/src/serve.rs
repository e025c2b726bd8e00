//! `osprey serve`: listen at once, load and warm the model in the background
//! (`/health/ready` turns 200 when done), and shut down gracefully on a signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use osprey_collections::Collections;
use osprey_engine::cache::TieredCache;
use osprey_server::{
    AppState, CollectionsSlot, Models, Protection, detached_metrics, install_metrics,
};
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::config::Config;

pub fn run(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load(&args.config, &args.model, overrides(&args))?;
    crate::logging::init(&config.telemetry.log_format, &config.telemetry.log_level);
    crate::threads::pin_compute_threads(config.batching.threads_per_replica());
    if config.model.low_memory {
        osprey_engine::prefer_low_memory();
    }
    // Before the runtime: the exporter's HTTP client must not live inside it.
    let traces = crate::otlp::init()?;
    if traces.is_some() {
        tracing::info!("exporting a span per request over OTLP");
    }
    // Two runtime workers are plenty next to the replica threads on small machines.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("osprey-http")
        .build()
        .context("starting the runtime")?;
    let result = rt.block_on(serve(config, args, traces.is_some()));
    // A model still loading on a blocking thread is not waited for: the process
    // is exiting, and its memory goes with it.
    rt.shutdown_timeout(Duration::from_millis(500));
    if let Some(t) = traces {
        t.shutdown();
    }
    result
}

/// The command-line flags that override the configuration file.
fn overrides(args: &ServeArgs) -> Vec<(&'static str, figment::value::Value)> {
    let mut overrides: Vec<(&str, figment::value::Value)> = Vec::new();
    if let Some(h) = &args.host {
        overrides.push(("server.host", h.clone().into()));
    }
    if let Some(p) = args.port {
        overrides.push(("server.port", p.into()));
    }
    if let Some(n) = args.max_batch_tokens {
        overrides.push(("batching.max_batch_tokens", n.into()));
    }
    if let Some(n) = args.max_batch_requests {
        overrides.push(("batching.max_batch_requests", n.into()));
    }
    if let Some(n) = args.max_queue_tokens {
        overrides.push(("batching.max_queue_tokens", n.into()));
    }
    if args.allow_open_admin {
        overrides.push(("server.allow_open_admin", true.into()));
    }
    if let Some(f) = &args.log_format {
        overrides.push(("telemetry.log_format", f.clone().into()));
    }
    overrides
}

async fn serve(
    config: Config,
    args: ServeArgs,
    traces: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let cache = open_cache(&config).await?;
    let state = app_state(&config)?.with_traces(traces).with_models(
        Models::new(config.engine(), cache.clone(), config.models.is_empty())
            .with_generation(config.generation.clone()),
    );
    let addr = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        tls = config.server.tls.enabled(),
        auth = config.auth.enabled,
        "listening"
    );
    if !config.auth.enabled && !local.ip().is_loopback() {
        tracing::warn!(
            addr = %local,
            "auth is off on an address other machines can reach: anyone there can embed, \
             and admin routes answer {}; set [auth] enabled = true",
            if config.server.allow_open_admin {
                "everyone (allow_open_admin)"
            } else {
                "only clients on this machine"
            }
        );
    }

    let collections = open_collections_in_background(&config);
    let state = match &collections {
        Some(slot) => state.with_collections(slot.clone()),
        None => state,
    };
    let live = {
        let args = args.clone();
        Arc::new(crate::live::LiveConfig::new(config.clone(), move || {
            Config::load(&args.config, &args.model, overrides(&args))
        }))
    };
    let state = state
        .with_effective_config(
            serde_json::to_value(config.redacted()).context("rendering the configuration")?,
        )
        .with_control(live.clone())
        .with_self_heal(config.self_heal.clone())
        .with_autoscale(config.autoscale.clone());
    osprey_server::spawn_memory_guard(state.clone());
    osprey_server::spawn_autoscaler(state.clone());
    osprey_server::spawn_batch_tuner(state.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let failed = Arc::new(AtomicBool::new(false));
    load_models_in_background(&config, &state, stop_tx.clone(), failed.clone());
    reload_on_hangup(state.clone(), live);
    let drain_delay = Duration::from_secs(config.server.drain_delay_secs);
    let draining = state.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        draining.start_draining();
        let drain = async {
            if !drain_delay.is_zero() {
                tracing::info!(
                    secs = drain_delay.as_secs(),
                    "draining: readiness answers 503; still serving until the drain delay ends"
                );
                tokio::time::sleep(drain_delay).await;
            }
            tracing::info!(
                "shutting down: finishing in-flight requests (a second signal exits at once)"
            );
            let _ = stop_tx.send(true);
        };
        // An operator who asks twice wants to wait neither for the drain nor for
        // the grace period.
        tokio::select! {
            _ = async { drain.await; shutdown_signal().await } => {}
            _ = shutdown_signal() => {}
        }
        tracing::warn!("second signal: exiting without waiting for in-flight requests");
        std::process::exit(1);
    });

    let mut stopped = stop_rx.clone();
    let server = osprey_server::serve(listener, state.clone(), async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let mut stop_for_grace = stop_rx;
    let served = tokio::select! {
        r = server => r.context("serving"),
        _ = async {
            let _ = stop_for_grace.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("grace period over; closing remaining connections");
            Ok(())
        }
    };
    // Also after a serving error: the models stop and queued cache writes land.
    release(&state, cache).await;
    served?;
    if failed.load(Ordering::SeqCst) {
        return Ok(std::process::ExitCode::FAILURE);
    }
    tracing::info!("stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

/// The server's state before the model is there: protection, metrics, observation.
fn app_state(config: &Config) -> anyhow::Result<AppState> {
    let protection =
        Protection::new(&config.auth, &config.limits).context("setting up auth and limits")?;
    // With metrics off no recorder is installed, so every metric call is a no-op.
    let metrics = if config.telemetry.metrics {
        install_metrics()
    } else {
        detached_metrics()
    };
    Ok(AppState::new(config.server.clone(), metrics)
        .with_protection(protection)
        .with_observe(config.observe())
        .with_cache_status(config.telemetry.expose_cache_status))
}

/// Tiers open before the model loads (Redis connects lazily, so a Redis that is
/// down does not stop the server; a disk tier in use by another process does).
async fn open_cache(config: &Config) -> anyhow::Result<Option<Arc<TieredCache>>> {
    let cache = TieredCache::open(&config.cache)
        .await
        .context("opening the cache")?;
    let cache = cache.is_enabled().then(|| Arc::new(cache));
    if let Some(c) = &cache {
        let tiers: Vec<&str> = c.stats().tiers.iter().map(|t| t.tier.label()).collect();
        tracing::info!(?tiers, "cache ready");
    }
    Ok(cache)
}

/// Loads and warms the models one after another (they would only compete for
/// the cores side by side). The first model to load fills the engine slot that
/// readiness and the dashboard report on. The one default model failing stops
/// the server; a `[[models]]` entry failing is logged and the others serve.
fn load_models_in_background(
    config: &Config,
    state: &AppState,
    stop_tx: watch::Sender<bool>,
    failed: Arc<AtomicBool>,
) {
    let specs = config.model_specs();
    let single = config.models.is_empty();
    let state = state.clone();
    for spec in &specs {
        state.models.registry().loading(&spec.name);
    }
    tokio::spawn(async move {
        let mut errors = Vec::new();
        for spec in &specs {
            match state.models.add(spec).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(model = %spec.label(), error = %e, "the model could not be loaded");
                    errors.push(e.to_string());
                }
            }
            state.models.registry().loaded(Some(&spec.name));
        }
        // Any model serving is of use: a chat or a tensor model needs no text one.
        if state.models.registry().all().is_empty() || (single && !errors.is_empty()) {
            let reason = if errors.is_empty() {
                "no model is configured".to_owned()
            } else {
                errors.join("; ")
            };
            tracing::error!(%reason, "no model serves; stopping");
            state.engine.fail(reason);
            failed.store(true, Ordering::SeqCst);
            let _ = stop_tx.send(true);
            return;
        }
        tracing::info!(models = specs.len() - errors.len(), "ready");
    });
}

/// On SIGHUP, reads the configuration and the keys file again, applies what can
/// change live, and applies the changes to `[[models]]`: new entries load,
/// changed ones reload, removed ones drain and stop.
fn reload_on_hangup(state: AppState, live: Arc<crate::live::LiveConfig>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let config = match live.reread(&state).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "SIGHUP: configuration not applied");
                    continue;
                }
            };
            tracing::info!("SIGHUP: configuration and keys read again");
            if config.models.is_empty() {
                tracing::warn!(
                    "SIGHUP: no [[models]] in the configuration; models left as they are"
                );
                continue;
            }
            let failures = state.models.apply(&config.models).await;
            tracing::info!(failures, "SIGHUP: [[models]] applied");
        }
    });
    #[cfg(not(unix))]
    let _ = (state, live);
}

/// Opens the collections on the blocking pool, beside the models loading: their
/// stores are read and their indexes loaded or rebuilt while the server listens.
fn open_collections_in_background(config: &Config) -> Option<Arc<CollectionsSlot>> {
    if config.collections.path.as_os_str().is_empty() {
        return None;
    }
    let slot = Arc::new(CollectionsSlot::default());
    let filled = slot.clone();
    let c = config.collections.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let opened = Collections::open(&c).map_err(|e| e.to_string());
        match &opened {
            Ok(all) => tracing::info!(
                collections = all.list().len(),
                path = %c.path.display(),
                secs = started.elapsed().as_secs_f64(),
                "collections ready"
            ),
            Err(e) => tracing::error!(error = %e, "the collections could not be opened"),
        }
        filled.fill(opened);
    });
    save_indexes_periodically(slot.clone());
    Some(slot)
}

/// How often the collections' indexes are saved while serving. Every write is
/// durable in the store already; a recent snapshot only spares a restart after a
/// crash the rebuild (about a minute per 100,000 points of 384 dimensions here,
/// against 2 to 3 s to load a snapshot and replay what came after it).
const SAVE_INDEXES_EVERY: Duration = Duration::from_secs(60);

fn save_indexes_periodically(slot: Arc<CollectionsSlot>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAVE_INDEXES_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(Ok(c)) = slot.get() else { continue };
            let c = c.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || c.flush()).await {
                tracing::warn!(error = %e, "saving the collection indexes");
            }
        }
    });
}

/// Stops the models and flushes and closes the cache.
async fn release(state: &AppState, cache: Option<Arc<TieredCache>>) {
    state.models.stop_all().await;
    // The minute in progress, so the day's history has no hole at the restart.
    state.observe.save_history().await;
    if let Some(Some(Ok(c))) = state.collections.as_ref().map(|s| s.get()) {
        // Written durably already; this saves the indexes so the next start
        // loads them instead of rebuilding.
        let c = c.clone();
        match tokio::task::spawn_blocking(move || c.flush()).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "saving the collection indexes"),
            Err(_) => tracing::warn!("saving the collection indexes did not complete"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(cache) = cache {
        // Queued disk and Redis writes are worth keeping, within reason.
        if tokio::time::timeout(Duration::from_secs(5), cache.flush())
            .await
            .is_err()
        {
            tracing::warn!("cache writes still queued after 5 s; dropping them");
        }
        tokio::task::spawn_blocking(move || cache.close())
            .await
            .ok();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
