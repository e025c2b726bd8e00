//! `GET /admin/recommendations`: settings worth changing, each with the live
//! figures that call for it. The rules read the last [`WINDOW_SECS`] of
//! statistics, the cache tiers and each model's queue.

use osprey_metrics::event::RejectReason;
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;

/// Seconds of statistics the rules look at.
pub const WINDOW_SECS: u64 = 60;
/// Fewer requests than this in the window say nothing either way.
const MIN_REQUESTS: u64 = 20;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recommendation {
    pub setting: &'static str,
    pub current: Value,
    pub suggested: Value,
    pub reason: String,
    pub evidence: Value,
}

/// What the rules decide on, gathered from the running server.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub requests: u64,
    pub mean_latency_ms: f64,
    pub mean_queue_ms: f64,
    pub cpu_percent: f64,
    pub cores: usize,
    /// The memory tier: window hit rate and lookups, evictions since start,
    /// bytes held, capacity.
    pub memory: Option<MemoryEvidence>,
    pub replicas: usize,
    pub threads_per_replica: usize,
    pub shared_pool: bool,
    /// Computed (padded) and real tokens since start, and the configured bound.
    pub padding: Option<(u64, u64, f64)>,
    /// Refusals since start by reason.
    pub refused: Vec<(RejectReason, u64)>,
    pub error_rate: f64,
    pub max_queue_ms: u64,
    pub max_queue_tokens: usize,
    pub max_in_flight: usize,
    pub requests_per_second_limit: u32,
    /// The latency SLO's burn rate over the window, and its objective.
    pub latency_burn: Option<(f64, f64)>,
    pub profile: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryEvidence {
    pub hit_rate: f64,
    pub lookups: u64,
    pub evictions: u64,
    pub bytes: u64,
    pub capacity: u64,
}

/// Every rule, in a fixed order.
pub fn recommend(e: &Evidence) -> Vec<Recommendation> {
    [cache_size, replicas, padding, refusals, profile]
        .iter()
        .filter_map(|rule| rule(e))
        .collect()
}

/// A memory tier that is full, evicting, and mostly missing is too small.
fn cache_size(e: &Evidence) -> Option<Recommendation> {
    let m = e.memory?;
    let full = m.bytes as f64 >= 0.8 * m.capacity as f64;
    (m.lookups >= 50 && m.hit_rate < 0.5 && m.evictions > 0 && full).then(|| Recommendation {
        setting: "cache.memory.max_bytes",
        current: json!(m.capacity),
        suggested: json!(m.capacity.saturating_mul(2)),
        reason: "the memory tier is full and evicting while most lookups miss: a larger tier \
                 keeps more of what is asked again"
            .into(),
        evidence: json!({
            "hit_rate": m.hit_rate, "lookups": m.lookups, "evictions": m.evictions,
            "bytes": m.bytes, "capacity_bytes": m.capacity,
        }),
    })
}

/// Whether the CPU has room: little of it busy, or cores no replica thread is
/// given (replicas with threads of their own, fewer in all than cores).
fn idle_cores(e: &Evidence) -> bool {
    e.cpu_percent < 60.0 || (!e.shared_pool && e.replicas * e.threads_per_replica.max(1) < e.cores)
}

/// Requests wait in the queue while cores sit idle: another replica would use them.
fn replicas(e: &Evidence) -> Option<Recommendation> {
    let queued = e.mean_queue_ms >= 5.0 && e.mean_queue_ms >= 0.25 * e.mean_latency_ms;
    let idle = idle_cores(e);
    let next = e.replicas + 1;
    let room = e.shared_pool || next * e.threads_per_replica.max(1) <= e.cores;
    (e.requests >= MIN_REQUESTS && queued && idle && room).then(|| Recommendation {
        setting: "batching.replicas",
        current: json!(e.replicas),
        suggested: json!(next),
        reason: format!(
            "requests wait {:.1} ms in the queue on average while the CPU is {:.0}% busy: \
             another replica runs a second batch on the idle cores",
            e.mean_queue_ms, e.cpu_percent
        ),
        evidence: json!({
            "mean_queue_ms": e.mean_queue_ms, "mean_latency_ms": e.mean_latency_ms,
            "cpu_percent": e.cpu_percent, "cores": e.cores, "requests": e.requests,
            "replicas": e.replicas, "threads_per_replica": e.threads_per_replica,
        }),
    })
}

/// Batches compute much more padding than text.
fn padding(e: &Evidence) -> Option<Recommendation> {
    let (computed, real, bound) = e.padding?;
    if real < 1000 {
        return None;
    }
    let ratio = computed as f64 / real as f64;
    let suggested = if bound > 1.25 { 1.25 } else { 1.1 };
    (ratio > 1.3 && bound > suggested).then(|| Recommendation {
        setting: "batching.max_padding_ratio",
        current: json!(bound),
        suggested: json!(suggested),
        reason: format!(
            "batches compute {ratio:.2} tokens per real token: a lower bound batches inputs \
             of similar length together and wastes less on padding"
        ),
        evidence: json!({"computed_tokens": computed, "real_tokens": real, "padding_ratio": ratio}),
    })
}

/// Many refusals for one reason: the budget behind that reason.
fn refusals(e: &Evidence) -> Option<Recommendation> {
    let (reason, count) = e
        .refused
        .iter()
        .copied()
        .filter(|(r, _)| *r != RejectReason::Deadline)
        .max_by_key(|(_, n)| *n)?;
    if count < 10 || e.error_rate < 0.01 {
        return None;
    }
    let (setting, current, suggested, what) = match reason {
        RejectReason::QueueTooLong | RejectReason::DeadlineUnreachable => (
            "limits.max_queue_ms",
            json!(e.max_queue_ms),
            json!(e.max_queue_ms.max(100).saturating_mul(2)),
            "requests predicted to queue too long",
        ),
        RejectReason::QueueFull => (
            "batching.max_queue_tokens",
            json!(e.max_queue_tokens),
            json!(e.max_queue_tokens.saturating_mul(2)),
            "a full batch queue",
        ),
        RejectReason::InFlight => (
            "limits.max_in_flight",
            json!(e.max_in_flight),
            json!(e.max_in_flight.max(1).saturating_mul(2)),
            "the in-flight cap",
        ),
        RejectReason::RateLimit => (
            "limits.requests_per_second",
            json!(e.requests_per_second_limit),
            json!(e.requests_per_second_limit.max(1).saturating_mul(2)),
            "the per-client rate limit",
        ),
        RejectReason::Deadline => return None,
    };
    Some(Recommendation {
        setting,
        current,
        suggested,
        reason: format!(
            "{count} requests were refused by {what} ({:.1}% of the last minute's requests \
             failed or were refused): a larger budget admits them, at the cost of longer waits",
            e.error_rate * 100.0
        ),
        evidence: json!({"refused": count, "reason": reason.as_str(), "error_rate": e.error_rate}),
    })
}

/// The latency objective burns its budget while the CPU has room: a profile
/// that trades throughput for latency fits the traffic better.
fn profile(e: &Evidence) -> Option<Recommendation> {
    let (burn, objective_ms) = e.latency_burn?;
    let headroom = idle_cores(e);
    (e.requests >= MIN_REQUESTS && burn > 1.0 && headroom && e.profile != "latency").then(|| {
        Recommendation {
            setting: "model.profile",
            current: json!(e.profile),
            suggested: json!("latency"),
            reason: format!(
                "the {objective_ms} ms latency objective is burning its error budget {burn:.1}× \
                 too fast while the CPU is {:.0}% busy: smaller batches answer sooner",
                e.cpu_percent
            ),
            evidence: json!({
                "burn_rate": burn, "latency_objective_ms": objective_ms,
                "cpu_percent": e.cpu_percent, "mean_latency_ms": e.mean_latency_ms,
            }),
        }
    })
}

/// Gathers the evidence from the running server (the default model's queue).
pub fn gather(state: &AppState) -> Evidence {
    let window = state.observe.stats.summary(WINDOW_SECS);
    let stage = |name: &str| {
        window
            .stages_ms
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, ms)| *ms)
    };
    let protection = state.protection.load_full();
    let limits = protection.limits();
    let (slo, _) = state.observe.rules();
    let status = osprey_observe::slo_status(&slo, &window);
    let mut e = Evidence {
        requests: window.requests,
        mean_latency_ms: window.latency_ms.mean.unwrap_or(0.0),
        mean_queue_ms: stage("queue"),
        cpu_percent: window.cpu_percent_mean,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        refused: RejectReason::ALL.iter().map(|r| (*r, r.so_far())).collect(),
        error_rate: window.error_rate.unwrap_or(0.0),
        max_queue_ms: limits.max_queue_ms,
        max_in_flight: limits.max_in_flight,
        requests_per_second_limit: limits.requests_per_second,
        latency_burn: status
            .latency
            .compliance
            .map(|_| (status.latency.burn_rate, slo.latency_ms)),
        ..Evidence::default()
    };
    if let Some(p) = state.engine.get() {
        let engine = p.engine();
        let info = engine.info();
        let budgets = engine.budgets();
        let (computed, real) = engine.token_counts();
        e.replicas = info.replicas;
        e.threads_per_replica = info.threads_per_replica;
        e.shared_pool = info.thread_pool == "shared";
        e.padding = Some((computed, real, budgets.max_padding_ratio));
        e.max_queue_tokens = budgets.max_queue_tokens;
        e.profile = info.profile.clone();
        if let Some(cache) = p.cache() {
            let tiers = cache.stats().tiers;
            let memory = tiers.iter().find(|t| t.tier.label() == "memory");
            let rate = window.cache.iter().find(|t| t.tier == "memory");
            e.memory = memory.map(|m| MemoryEvidence {
                hit_rate: rate.and_then(|r| r.hit_rate).unwrap_or(0.0),
                lookups: rate.map_or(0, |r| r.hits + r.misses),
                evictions: m.evictions,
                bytes: m.bytes.unwrap_or(0),
                capacity: m.capacity_bytes.unwrap_or(0),
            });
        }
    }
    e
}

#[cfg(test)]
mod tests;
