//! `GET /dashboard`: one self-contained page (its charts are drawn by its own
//! canvas code), and `GET /dashboard/data?since=T`, the per-second series it polls.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::observe::STAGES;
use crate::{ApiError, AppState};

const PAGE: &str = include_str!("../../assets/dashboard.html");
/// Seconds sent on the first poll.
const FIRST_POLL_SECS: u64 = 300;

pub async fn page() -> Response {
    let mut resp = PAGE.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn since(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if let Some(v) = pair.strip_prefix("since=") {
            return v.parse().map(Some).map_err(|_| {
                ApiError::Invalid(format!("since must be a unix time in seconds, got `{v}`"))
            });
        }
    }
    Ok(None)
}

fn round(v: f64) -> Value {
    // Three decimals are plenty on a chart and keep each poll small.
    json!((v * 1000.0).round() / 1000.0)
}

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, round)
}

pub async fn data(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let since = since(query.as_deref())?;
    let obs = &state.observe;
    let newest = obs.stats.newest().unwrap_or(0);
    let first = since.unwrap_or(newest.saturating_sub(FIRST_POLL_SECS));
    let series = obs.stats.with_last(FIRST_POLL_SECS, |secs| {
        let secs: Vec<_> = secs.iter().filter(|s| s.t > first).collect();
        let col = |f: &dyn Fn(&crate::observe::Second) -> Value| -> Value {
            Value::Array(secs.iter().map(|s| f(s)).collect())
        };
        let mut stages = Map::new();
        for (i, name) in STAGES.iter().enumerate() {
            stages.insert(
                (*name).to_owned(),
                col(&|s| {
                    opt((s.timed > 0).then(|| s.stage_us[i] as f64 / s.timed as f64 / 1000.0))
                }),
            );
        }
        let mut tiers: Vec<&'static str> = Vec::new();
        for s in &secs {
            for t in &s.sample.cache {
                if !tiers.contains(&t.tier) {
                    tiers.push(t.tier);
                }
            }
        }
        let mut hit_rate = Map::new();
        for tier in tiers {
            hit_rate.insert(
                tier.to_owned(),
                col(&|s| {
                    opt(s
                        .sample
                        .cache
                        .iter()
                        .find(|t| t.tier == tier)
                        .filter(|t| t.hits + t.misses > 0)
                        .map(|t| t.hits as f64 / (t.hits + t.misses) as f64))
                }),
            );
        }
        json!({
            "t": col(&|s| json!(s.t)),
            "rps": col(&|s| json!(s.requests)),
            "errors": col(&|s| json!(s.errors)),
            "p50": col(&|s| opt(crate::observe::quantile_ms(&s.hist, 0.5))),
            "p95": col(&|s| opt(crate::observe::quantile_ms(&s.hist, 0.95))),
            "p99": col(&|s| opt(crate::observe::quantile_ms(&s.hist, 0.99))),
            "stages": stages,
            "hit_rate": hit_rate,
            "batch": col(&|s| opt((s.sample.batches > 0).then(|| s.sample.batch_items as f64 / s.sample.batches as f64))),
            "queue": col(&|s| json!(s.sample.queue_tokens)),
            "in_flight": col(&|s| json!(s.sample.in_flight)),
            "cpu": col(&|s| round(s.sample.cpu_percent)),
            "rss_mb": col(&|s| round(s.sample.rss_bytes as f64 / 1048576.0)),
        })
    });
    let (active, recent) = obs.alerts();
    Ok(Json(json!({
        "now": newest,
        "metrics_enabled": obs.config.metrics,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "series": series,
        "minute": obs.stats.summary(60),
        "slo": obs.slo(),
        "slo_config": obs.config.slo,
        "alerts": {"active": active, "recent": recent.into_iter().take(5).collect::<Vec<_>>()},
    })))
}
