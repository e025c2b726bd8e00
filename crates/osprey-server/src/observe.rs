//! Request metrics and the Prometheus recorder; the rolling statistics, SLOs,
//! alerts and profiler that build on them live in the submodules.

mod alerts;
mod anomaly;
mod config;
mod latency;
mod monitor;
mod process;
mod requests;
mod scrape;
mod slo;
mod stats;
mod timing;
mod webhook;

pub use alerts::{AlertEvent, AlertStatus, Severity};
pub use config::{AlertsConfig, ObserveConfig, SloConfig};
pub use latency::quantile_ms;
pub use monitor::Observer;
pub use requests::embedded_items;
pub use scrape::refresh_gauges;
pub use stats::{STAGES, Second};
pub use timing::{Stage, Timing};

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use osprey_engine::cache::CacheStats;
use tracing::Instrument;

use crate::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install_metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's); then
            // this handle still renders, just without the metrics recorded elsewhere.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("osprey-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

/// A handle to a recorder that is never installed: with metrics turned off every
/// `metrics::` call stays a no-op and `/metrics` renders empty.
pub fn detached_metrics() -> PrometheusHandle {
    PrometheusBuilder::new().build_recorder().handle()
}

fn builder() -> PrometheusBuilder {
    let latency = osprey_metrics::LATENCY_SECONDS;
    let sizes = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
    ];
    let ratio = [1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0];
    let built = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full("osprey_batch_size".into()), &sizes))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full("osprey_batch_tokens".into()), &sizes))
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("osprey_batch_padding_ratio".into()), &ratio)
        });
    built.unwrap_or_else(|_| PrometheusBuilder::new())
}

/// The routes whose latency the statistics, SLOs and alerts judge: the inference
/// routes (dashboards polling `/metrics` must not dilute them).
fn is_inference(route: &str) -> bool {
    matches!(route, "/embed" | "/v1/embeddings")
}

/// Keeps `osprey_requests_in_flight` right even when a client leaves mid-request
/// and the handler's future is dropped.
struct InFlight<'a>(&'a osprey_metrics::Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// The route label as a static string, without an allocation per request. Matched
/// routes are the router's own patterns, a small fixed set, so interning them (each
/// leaked once per thread) is bounded.
fn route_label(path: Option<&MatchedPath>) -> &'static str {
    thread_local! {
        static ROUTES: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }
    let Some(path) = path else {
        return "unmatched";
    };
    let path = path.as_str();
    ROUTES.with(|cell| {
        let mut routes = cell.borrow_mut();
        if let Some(r) = routes.iter().find(|r| **r == path) {
            return *r;
        }
        let r: &'static str = Box::leak(path.to_owned().into_boxed_str());
        routes.push(r);
        r
    })
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Counts and times every request by route and status, feeds the rolling
/// statistics, and writes the access log line, inside a span carrying the request id.
pub async fn record_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let obs = &state.observe;
    let started = Instant::now();
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = req.method().clone();
    // The span formats its fields when made: the id is borrowed, not copied.
    let span = {
        let id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!("request", id = %id)
    };
    // Kept past the response only for the access log line.
    let log_span = obs.config.access_log.then(|| span.clone());
    let resp = if obs.config.metrics {
        obs.in_flight.add(1);
        let _guard = InFlight(&obs.in_flight);
        next.run(req).instrument(span).await
    } else {
        next.run(req).instrument(span).await
    };
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    let timing = resp.extensions().get::<Timing>();
    if obs.config.metrics {
        let stages = timing.and_then(Timing::stages);
        if let Some(stages) = stages {
            requests::stages(stages);
        }
        if is_inference(route) {
            obs.stats
                .record(elapsed, status, timing.map_or(0, |t| t.items), stages);
        }
        requests::request(route, &method, status, elapsed);
    }
    if let Some(span) = log_span {
        let _entered = span.enter();
        tracing::info!(
            target: "osprey::access",
            method = %method,
            route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            items = timing.map_or(0, |t| t.items),
            "request"
        );
    }
    resp
}

/// The whole scrape: the recorder's families, then the per-request ones kept
/// outside it (when metrics are on), with the cache's lookup durations from its
/// statistics.
pub fn render(state: &AppState, cache: Option<&CacheStats>) -> String {
    let mut out = state.metrics.render();
    if state.observe.config.metrics {
        requests::render(&mut out);
        if let Some(cache) = cache {
            requests::render_cache_lookups(&mut out, cache);
        }
    }
    out
}
