//! The HTTP side of observation: the request middleware (metrics, rolling
//! statistics, access log), the `/metrics` text, and the engine as the observer's
//! sampler sees it. Everything else lives in `osprey-observe`.

mod timing;
mod trace;

pub use osprey_observe::{
    AlertEvent, AlertStatus, AlertsConfig, ObserveConfig, Observer, Severity, SloConfig, Stage,
    detached_metrics, embedded_items, install_metrics,
};
pub use timing::Timing;

use std::cell::RefCell;
use std::time::{Instant, SystemTime};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, Method};
use axum::middleware::Next;
use axum::response::Response;
use osprey_engine::cache::CacheStats;
use osprey_metrics::event::{CollectionSize, Event, ModelLoaded, QueueCapacity, QueueDepth};
use osprey_observe::{EngineProbe, EngineTotals, TierSecond};
use tracing::Instrument;

use crate::{AppState, EngineSlot};

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

/// The method label: the standard methods by name, any other as `other` (a client
/// picks the method, and each label value is a series kept for good).
fn method_label(m: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::POST,
        Method::GET,
        Method::DELETE,
        Method::HEAD,
        Method::PUT,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|k| *k == m)
        .map_or("other", |k| k.as_str())
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Counts and times every request by route and status, feeds the rolling
/// statistics, and writes the access log line, inside a span carrying the request id.
pub async fn record_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let obs = &state.observe;
    let started = Instant::now();
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = req.method().clone();
    // Spans for OpenTelemetry, when an exporter is installed: the caller's trace
    // and the request id are read before the request moves on.
    let traced = state.traces.then(|| {
        let id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (trace::parent(req.headers()), SystemTime::now(), id)
    });
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
            osprey_observe::stages(stages);
        }
        if is_inference(route) {
            obs.stats
                .record(elapsed, status, timing.map_or(0, |t| t.items), stages);
        }
        osprey_observe::request(route, method_label(&method), status, elapsed);
    }
    if let Some((parent, wall_start, request_id)) = traced {
        trace::record(
            &parent,
            trace::Finished {
                started: wall_start,
                elapsed,
                method: method.as_str(),
                route,
                status,
                request_id: &request_id,
                items: timing.map_or(0, |t| t.items),
                stages: timing.and_then(Timing::stages),
            },
        );
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

/// Sets the gauges read when `/metrics` is scraped: the observer's, and the
/// model's and queue's.
pub fn refresh_gauges(state: &AppState) {
    let obs = &state.observe;
    if !obs.config.metrics {
        return;
    }
    obs.refresh_gauges(state.started.elapsed());
    if let Some(Some(Ok(collections))) = state.collections.as_ref().map(|s| s.get()) {
        for name in collections.list() {
            if let Ok(info) = collections.info(&name) {
                CollectionSize {
                    collection: &name,
                    points: info.points_count,
                    unindexed: info.points_count.saturating_sub(info.indexed_vectors_count),
                }
                .emit();
            }
        }
    }
    if let Some(p) = state.engine.get() {
        let info = p.info();
        ModelLoaded {
            model: &info.id,
            revision: &info.revision,
            backend: info.backend,
        }
        .emit();
        QueueCapacity {
            tokens: info.max_queue_tokens as u64,
        }
        .emit();
        QueueDepth {
            tokens: p.engine().queued_tokens() as u64,
        }
        .emit();
    }
}

/// The whole scrape, with the cache's lookup durations from its statistics.
pub fn render(state: &AppState, cache: Option<&CacheStats>) -> String {
    let lookups = cache.map(|c| c.tiers.iter().map(|t| (t.tier.label(), &t.lookup_seconds)));
    osprey_observe::render(&state.metrics, state.observe.config.metrics, lookups)
}

/// The loaded engine's queue, batches and cache lookups, for the observer's
/// once-a-second sampler.
impl EngineProbe for EngineSlot {
    fn totals(&self) -> Option<EngineTotals> {
        let p = self.get()?;
        let (batches, batch_items) = p.engine().batch_counts();
        let cache = p.cache().map_or_else(Vec::new, |cache| {
            cache
                .stats()
                .tiers
                .iter()
                .map(|t| TierSecond {
                    tier: t.tier.label(),
                    hits: t.hits,
                    misses: t.misses,
                })
                .collect()
        });
        Some(EngineTotals {
            queue_tokens: p.engine().queued_tokens() as u64,
            batches,
            batch_items,
            cache,
        })
    }
}
