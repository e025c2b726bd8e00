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
    let gate = state.protection.load().scrapes();
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
    let models = state.models.registry().all();
    render_models(&mut text, &models);
    render_generation(&mut text, &models);
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
            Backing::Generate(g) => g.budget().used(),
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
            Backing::Text(p) => p.engine().replica_count() as u64,
            Backing::Tensor(t) => t.info().replicas as u64,
            Backing::Generate(_) => 1,
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
        Backing::Generate(g) => QueueStats {
            queued: g.stats().queued.load(Ordering::Relaxed),
            ..QueueStats::default()
        },
    }
}

/// Generation models: time to first token and between tokens, tokens in and
/// out, sequences running and waiting, the KV budget, and the decode steps
/// (sequences per step above 1 is continuous batching at work).
fn render_generation(out: &mut String, models: &[Arc<Served>]) {
    use std::fmt::Write;
    let generators: Vec<(&Served, &osprey_engine::generate::Generator)> = models
        .iter()
        .filter_map(|m| m.generator().ok().map(|g| (m.as_ref(), g.as_ref())))
        .collect();
    if generators.is_empty() {
        return;
    }
    type Read = fn(&osprey_engine::generate::Generator) -> u64;
    let families: [(&str, &str, Read); 13] = [
        ("osprey_generate_prompt_tokens_total", "counter", |g| {
            g.stats().prompt_tokens.get()
        }),
        (
            "osprey_generate_prompt_cached_tokens_total",
            "counter",
            |g| g.stats().prompt_cached_tokens.get(),
        ),
        ("osprey_generate_completion_tokens_total", "counter", |g| {
            g.stats().completion_tokens.get()
        }),
        ("osprey_generate_active_sequences", "gauge", |g| {
            g.stats().active.load(Ordering::Relaxed)
        }),
        ("osprey_generate_queued_sequences", "gauge", |g| {
            g.stats().queued.load(Ordering::Relaxed)
        }),
        ("osprey_generate_kv_used_tokens", "gauge", |g| {
            g.budget().used()
        }),
        ("osprey_generate_kv_budget_tokens", "gauge", |g| {
            g.budget().total()
        }),
        ("osprey_generate_steps_total", "counter", |g| {
            g.stats().steps.get()
        }),
        ("osprey_generate_step_sequences_total", "counter", |g| {
            g.stats().step_sequences.get()
        }),
        ("osprey_generate_step_tokens_total", "counter", |g| {
            g.stats().step_tokens.get()
        }),
        ("osprey_generate_max_step_sequences", "gauge", |g| {
            g.stats().max_step_sequences.load(Ordering::Relaxed)
        }),
        ("osprey_generate_rejected_total", "counter", |g| {
            g.stats().rejected.get()
        }),
        ("osprey_generate_cancelled_total", "counter", |g| {
            g.stats().cancelled.get()
        }),
    ];
    for (name, kind, read) in families {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (m, g) in &generators {
            let _ = writeln!(
                out,
                "{name}{{model=\"{}\",version=\"{}\"}} {}",
                m.name,
                m.version,
                read(g)
            );
        }
        out.push('\n');
    }
    for (name, pick) in [
        ("osprey_generate_ttft_seconds", 0),
        ("osprey_generate_inter_token_seconds", 1),
    ] {
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (m, g) in &generators {
            let h = if pick == 0 {
                &g.stats().ttft
            } else {
                &g.stats().inter_token
            };
            let labels = format!("model=\"{}\",version=\"{}\"", m.name, m.version);
            h.snapshot().render(out, name, &labels);
        }
        out.push('\n');
    }
}
