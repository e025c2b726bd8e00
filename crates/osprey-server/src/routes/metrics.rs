//! `GET /metrics` in Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use osprey_engine::cache::{CacheStats, HealthStatus};
use osprey_engine::{Backing, QueueStats, Served};

use crate::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    // Reads /proc and runs the cache's maintenance: blocking work, done on the
    // blocking pool, one scrape at a time (see `ScrapeGate`).
    let gate = state.protection.scrapes();
    let text = match gate.scrape(move || render_text(&state)).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics");
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The whole scrape. Blocking: run off the async workers.
fn render_text(state: &AppState) -> String {
    // Size gauges (entries, bytes per tier) and lookup durations are read when
    // scraped.
    let cache = state
        .engine
        .get()
        .and_then(|p| p.cache().map(|c| c.stats()));
    crate::observe::refresh_gauges(state);
    let mut text = crate::observe::render(state, cache.as_ref());
    if let Some(stats) = &cache {
        render_tier_health(&mut text, stats);
    }
    render_models(&mut text, &state.models.registry().all());
    text
}

/// `osprey_cache_tier_up{tier}`: 1 while a tier answers, 0 while it is skipped
/// or failing (a Redis that is down, say), for alerts.
fn render_tier_health(out: &mut String, stats: &CacheStats) {
    use std::fmt::Write;
    let _ = writeln!(out, "# TYPE osprey_cache_tier_up gauge");
    for t in &stats.tiers {
        let up = u8::from(t.health.status == HealthStatus::Ok);
        let _ = writeln!(
            out,
            "osprey_cache_tier_up{{tier=\"{}\"}} {up}",
            t.tier.label()
        );
    }
    out.push('\n');
}

/// A metric family's name, Prometheus type, and value for one model.
type Family = (&'static str, &'static str, fn(&Served) -> u64);

/// Per-model families, labelled `model`, `version` and `task`, read from each
/// served model when scraped (nothing is looked up per request).
fn render_models(out: &mut String, models: &[Arc<Served>]) {
    use std::fmt::Write;
    let families: [Family; 7] = [
        ("osprey_model_requests_total", "counter", |m| {
            m.requests.load(Ordering::Relaxed)
        }),
        ("osprey_model_items_total", "counter", |m| {
            m.items.load(Ordering::Relaxed)
        }),
        ("osprey_model_queue_tokens", "gauge", |m| match &m.backing {
            Backing::Text(p) => p.engine().queued_tokens() as u64,
            Backing::Tensor(_) => 0,
        }),
        // For autoscalers: inputs (tensor models: requests) waiting now, and the
        // time those that left the queue waited, as a running sum and count.
        ("osprey_model_queue_size", "gauge", |m| queue(m).queued),
        ("osprey_model_queue_duration_us_total", "counter", |m| {
            queue(m).waited_us
        }),
        ("osprey_model_dequeued_total", "counter", |m| {
            queue(m).dequeued
        }),
        ("osprey_model_replicas", "gauge", |m| match &m.backing {
            Backing::Text(p) => p.info().replicas as u64,
            Backing::Tensor(t) => t.info().replicas as u64,
        }),
    ];
    for (name, kind, value) in families {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for m in models {
            let _ = writeln!(
                out,
                "{name}{{model=\"{}\",version=\"{}\",task=\"{}\"}} {}",
                m.name,
                m.version,
                m.task(),
                value(m)
            );
        }
        out.push('\n');
    }
}

fn queue(m: &Served) -> QueueStats {
    match &m.backing {
        Backing::Text(p) => p.engine().queue_stats(),
        Backing::Tensor(t) => t.queue_stats(),
    }
}
