//! `osprey serve`: listen at once, load and warm the model in the background
//! (`/health/ready` turns 200 when done), and shut down gracefully on a signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use osprey_engine::cache::TieredCache;
use osprey_engine::{Engine, Pipeline};
use osprey_server::{AppState, Protection, detached_metrics, install_metrics};
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::config::Config;

pub fn run(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
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
    if let Some(f) = &args.log_format {
        overrides.push(("telemetry.log_format", f.clone().into()));
    }
    let config = Config::load(&args.config, &args.model, overrides)?;
    crate::logging::init(&config.telemetry.log_format, &config.telemetry.log_level);
    crate::threads::pin_compute_threads(config.batching.threads_per_replica());
    // Two runtime workers are plenty next to the replica threads on small machines.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("osprey-http")
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<std::process::ExitCode> {
    let protection =
        Protection::new(&config.auth, &config.limits).context("setting up auth and limits")?;
    // With metrics off no recorder is installed, so every metric call is a no-op.
    let metrics = if config.telemetry.metrics {
        install_metrics()
    } else {
        detached_metrics()
    };
    let state = AppState::new(config.server.clone(), metrics)
        .with_protection(protection)
        .with_observe(config.observe());
    let addr = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        tls = config.server.tls.enabled(),
        auth = config.auth.enabled,
        "listening"
    );

    // Tiers open before the model loads (Redis connects lazily, so a Redis that is
    // down does not stop the server; a disk tier in use by another process does).
    let cache = TieredCache::open(&config.cache)
        .await
        .context("opening the cache")?;
    let cache = cache.is_enabled().then(|| Arc::new(cache));
    if let Some(c) = &cache {
        let tiers: Vec<&str> = c.stats().tiers.iter().map(|t| t.tier.label()).collect();
        tracing::info!(?tiers, "cache ready");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let slot = state.engine.clone();
        let engine_config = config.engine();
        let stop_tx = stop_tx.clone();
        let failed = failed.clone();
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || match Engine::start(&engine_config) {
            Ok(engine) => {
                tracing::info!("ready");
                slot.set(Arc::new(Pipeline::new(Arc::new(engine), cache)));
            }
            Err(e) => {
                tracing::error!(error = %e, "the model could not be loaded");
                slot.fail(e.to_string());
                failed.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = stop_tx.send(true);
            }
        });
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
    });

    let mut stopped = stop_rx.clone();
    let server = osprey_server::serve(listener, state.clone(), async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let mut stop_for_grace = stop_rx;
    tokio::select! {
        r = server => r.context("serving")?,
        _ = async {
            let _ = stop_for_grace.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("grace period over; closing remaining connections"),
    }
    if let Some(pipeline) = state.engine.get().cloned() {
        let engine = pipeline.engine().clone();
        tokio::task::spawn_blocking(move || engine.shutdown())
            .await
            .ok();
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
    if failed.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(std::process::ExitCode::FAILURE);
    }
    tracing::info!("stopped");
    Ok(std::process::ExitCode::SUCCESS)
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
