//! Gauges read when `/metrics` is scraped rather than on every change: process
//! figures, model info, requests in flight, SLO status and active alerts.

use super::alerts::Severity;
use super::process;
use crate::AppState;

pub fn refresh_gauges(state: &AppState) {
    let obs = &state.observe;
    if !obs.config.metrics {
        return;
    }
    if let Some(p) = process::sample() {
        // A float total: the `metrics` facade's counters are integers, so a gauge.
        metrics::gauge!("osprey_process_cpu_seconds_total").set(p.cpu_seconds);
        metrics::gauge!("osprey_process_resident_memory_bytes").set(p.rss_bytes as f64);
        metrics::gauge!("osprey_process_threads").set(p.threads as f64);
        metrics::gauge!("osprey_process_open_fds").set(p.open_fds as f64);
        if let Some(max) = p.max_fds {
            metrics::gauge!("osprey_process_max_fds").set(max as f64);
        }
    }
    metrics::gauge!("osprey_process_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    metrics::gauge!("osprey_requests_in_flight").set(obs.in_flight.get().max(0) as f64);
    if let Some(p) = state.engine.get() {
        let info = p.info();
        metrics::gauge!(
            "osprey_model_info",
            "model" => info.id.clone(),
            "revision" => info.revision.clone(),
            "backend" => info.backend
        )
        .set(1.0);
        metrics::gauge!("osprey_queue_capacity_tokens").set(info.max_queue_tokens as f64);
        metrics::gauge!("osprey_queue_tokens").set(p.engine().queued_tokens() as f64);
    }
    let slo = obs.slo();
    for (name, o) in [("latency", &slo.latency), ("errors", &slo.errors)] {
        metrics::gauge!("osprey_slo_objective", "slo" => name).set(o.objective);
        metrics::gauge!("osprey_slo_compliance", "slo" => name).set(o.compliance.unwrap_or(1.0));
        metrics::gauge!("osprey_slo_burn_rate", "slo" => name).set(o.burn_rate);
        metrics::gauge!("osprey_slo_error_budget_remaining", "slo" => name).set(o.budget_remaining);
    }
    let (active, _) = obs.alerts();
    for (label, sev) in [
        ("warning", Severity::Warning),
        ("critical", Severity::Critical),
    ] {
        let n = active.iter().filter(|a| a.severity == sev).count();
        metrics::gauge!("osprey_alerts_active", "severity" => label).set(n as f64);
    }
}
