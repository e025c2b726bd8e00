//! Request metrics and the Prometheus recorder; the rolling statistics, SLOs,
//! alerts and profiler that build on them live in the submodules.

mod alerts;
mod anomaly;
mod config;
mod latency;
mod monitor;
mod process;
mod scrape;
mod slo;
mod stats;
mod webhook;

pub use alerts::{AlertEvent, AlertStatus, Severity};
pub use config::{AlertsConfig, ObserveConfig, SloConfig};
pub use latency::quantile_ms;
pub use monitor::Observer;
pub use scrape::refresh_gauges;
pub use stats::{STAGES, Second};

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
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
    let latency = [
        // Cache hits take tens of microseconds: resolve them too.
        0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
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

/// What a handler learned that the request middleware reports: the stage timings
/// (when timing is on) and how many inputs the request held. Travels back in the
/// response's extensions.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub enabled: bool,
    pub items: usize,
    pub stages: Vec<(&'static str, f64)>,
}

impl Timing {
    pub fn new(enabled: bool, items: usize) -> Self {
        Self {
            enabled,
            items,
            stages: Vec::with_capacity(if enabled { STAGES.len() } else { 0 }),
        }
    }

    pub fn push(&mut self, name: &'static str, d: Duration) {
        if self.enabled {
            self.stages.push(stage(name, d));
        }
    }
}

/// The routes whose latency the statistics, SLOs and alerts judge: the inference
/// routes (dashboards polling `/metrics` must not dilute them).
fn is_inference(route: &str) -> bool {
    matches!(route, "/embed" | "/v1/embeddings")
}

/// Keeps `osprey_requests_in_flight` right even when a client leaves mid-request
/// and the handler's future is dropped.
struct InFlight<'a>(&'a std::sync::atomic::AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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

type RequestMetrics = (Counter, Histogram);

thread_local! {
    /// Handles per (route, method, status), looked up once per runtime thread: a
    /// registry lookup with three labels costs more than the rest of a cache hit's
    /// accounting together.
    static REQUEST_METRICS: RefCell<HashMap<(&'static str, Method, u16), RequestMetrics>> =
        RefCell::new(HashMap::new());
}

fn count_request(route: &'static str, method: &Method, status: u16, elapsed: Duration) {
    REQUEST_METRICS.with(|cell| {
        let mut map = cell.borrow_mut();
        let (counter, histogram) = map
            .entry((route, method.clone(), status))
            .or_insert_with(|| {
                let status = status.to_string();
                (
                    metrics::counter!("osprey_requests_total", "route" => route, "method" => method.as_str().to_owned(), "status" => status.clone()),
                    metrics::histogram!("osprey_request_duration_seconds", "route" => route, "status" => status),
                )
            });
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    });
}

/// Counts and times every request by route and status, feeds the rolling
/// statistics, and writes the access log line, inside a span carrying the request id.
pub async fn record_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let obs = &state.observe;
    let started = Instant::now();
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!("request", id = %request_id);
    let resp = if obs.config.metrics {
        obs.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(&obs.in_flight);
        next.run(req).instrument(span.clone()).await
    } else {
        next.run(req).instrument(span.clone()).await
    };
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    let timing = resp.extensions().get::<Timing>();
    if obs.config.metrics {
        if is_inference(route) {
            obs.stats.record(
                elapsed,
                status,
                timing.map_or(0, |t| t.items),
                timing.map(|t| t.stages.as_slice()),
            );
        }
        count_request(route, &method, status, elapsed);
    }
    if obs.config.access_log {
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

/// One histogram handle per stage, looked up once: a registry lookup per stage per
/// request is a measurable share of a cache hit.
fn stage_histogram(name: &'static str) -> Option<&'static Histogram> {
    static HISTOGRAMS: OnceLock<Vec<(&'static str, Histogram)>> = OnceLock::new();
    HISTOGRAMS
        .get_or_init(|| {
            STAGES
                .iter()
                .map(|s| {
                    (
                        *s,
                        metrics::histogram!("osprey_stage_duration_seconds", "stage" => *s),
                    )
                })
                .collect()
        })
        .iter()
        .find(|(s, _)| *s == name)
        .map(|(_, h)| h)
}

/// Records one stage's duration and returns it in milliseconds for Server-Timing.
pub fn stage(name: &'static str, d: Duration) -> (&'static str, f64) {
    match stage_histogram(name) {
        Some(h) => h.record(d.as_secs_f64()),
        None => metrics::histogram!("osprey_stage_duration_seconds", "stage" => name)
            .record(d.as_secs_f64()),
    }
    (name, d.as_secs_f64() * 1000.0)
}

/// `Server-Timing` header value from (stage, milliseconds) pairs.
pub fn server_timing(stages: &[(&'static str, f64)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(stages.len() * 24);
    for (i, (name, ms)) in stages.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // Integer formatting: float formatting with a precision is slow, and this
        // runs for every request.
        let us = (ms * 1000.0).round().max(0.0) as u64;
        let _ = write!(out, "{name};dur={}.{:03}", us / 1000, us % 1000);
    }
    out
}
