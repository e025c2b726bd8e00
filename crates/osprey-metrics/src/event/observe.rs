//! The server watching itself: process figures, the model, SLOs and alerts. Most
//! are gauges set when `/metrics` is scraped, so they log nothing.

use super::{Event, name};
use crate::process::ProcessSample;

/// The process's CPU, memory, threads and files (`osprey_process_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSampled(pub ProcessSample);

impl Event for ProcessSampled {
    fn emit(self) {
        let p = self.0;
        // A float total: the `metrics` facade's counters are integers, so a gauge.
        metrics::gauge!(name::PROCESS_CPU_SECONDS).set(p.cpu_seconds);
        metrics::gauge!(name::PROCESS_RESIDENT_MEMORY).set(p.rss_bytes as f64);
        metrics::gauge!(name::PROCESS_THREADS).set(p.threads as f64);
        metrics::gauge!(name::PROCESS_OPEN_FDS).set(p.open_fds as f64);
        if let Some(max) = p.max_fds {
            metrics::gauge!(name::PROCESS_MAX_FDS).set(max as f64);
        }
    }
}

/// Seconds since the server started (`osprey_process_uptime_seconds`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uptime {
    pub seconds: f64,
}

impl Event for Uptime {
    fn emit(self) {
        metrics::gauge!(name::PROCESS_UPTIME).set(self.seconds);
    }
}

/// Requests being served now (`osprey_requests_in_flight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    pub requests: u64,
}

impl Event for InFlight {
    fn emit(self) {
        metrics::gauge!(name::REQUESTS_IN_FLIGHT).set(self.requests as f64);
    }
}

/// The model served (`osprey_model_info{model,revision,backend} 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLoaded<'a> {
    pub model: &'a str,
    pub revision: &'a str,
    pub backend: &'static str,
}

impl Event for ModelLoaded<'_> {
    fn emit(self) {
        metrics::gauge!(
            name::MODEL_INFO,
            "model" => self.model.to_owned(),
            "revision" => self.revision.to_owned(),
            "backend" => self.backend
        )
        .set(1.0);
    }
}

/// One objective's state (`osprey_slo_*{slo}`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloReported {
    pub slo: &'static str,
    pub objective: f64,
    pub compliance: f64,
    pub burn_rate: f64,
    pub budget_remaining: f64,
}

impl Event for SloReported {
    fn emit(self) {
        let slo = self.slo;
        metrics::gauge!(name::SLO_OBJECTIVE, "slo" => slo).set(self.objective);
        metrics::gauge!(name::SLO_COMPLIANCE, "slo" => slo).set(self.compliance);
        metrics::gauge!(name::SLO_BURN_RATE, "slo" => slo).set(self.burn_rate);
        metrics::gauge!(name::SLO_ERROR_BUDGET_REMAINING, "slo" => slo).set(self.budget_remaining);
    }
}

/// Alerts firing now at one severity (`osprey_alerts_active{severity}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertsActive {
    pub severity: &'static str,
    pub count: u64,
}

impl Event for AlertsActive {
    fn emit(self) {
        metrics::gauge!(name::ALERTS_ACTIVE, "severity" => self.severity).set(self.count as f64);
    }
}

/// The webhook took an alert (`osprey_alert_deliveries_total{result="ok"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertDelivered<'a> {
    pub alert: &'a str,
}

impl Event for AlertDelivered<'_> {
    fn emit(self) {
        metrics::counter!(name::ALERT_DELIVERIES, "result" => "ok").increment(1);
        tracing::debug!(alert = self.alert, "alert delivered");
    }
}

/// One failed delivery attempt, to be retried or given up
/// (`osprey_alert_deliveries_total{result="retry"}`).
#[derive(Debug, Clone, Copy)]
pub struct AlertDeliveryFailed<'a> {
    pub alert: &'a str,
    pub attempt: u32,
    pub error: &'a str,
}

impl Event for AlertDeliveryFailed<'_> {
    fn emit(self) {
        metrics::counter!(name::ALERT_DELIVERIES, "result" => "retry").increment(1);
        tracing::warn!(
            alert = self.alert,
            attempt = self.attempt,
            error = %self.error,
            "alert webhook delivery failed"
        );
    }
}

/// Every attempt failed: the alert is not delivered
/// (`osprey_alert_deliveries_total{result="dropped"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertDropped<'a> {
    pub alert: &'a str,
    pub attempts: u32,
}

impl Event for AlertDropped<'_> {
    fn emit(self) {
        metrics::counter!(name::ALERT_DELIVERIES, "result" => "dropped").increment(1);
        tracing::error!(
            alert = self.alert,
            "alert webhook gave up after {} attempts",
            self.attempts
        );
    }
}
