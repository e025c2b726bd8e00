//! Gauges read when `/metrics` is scraped rather than on every change: process
//! figures, uptime, requests in flight, SLO status and active alerts.

use std::time::Duration;

use osprey_metrics::event::{AlertsActive, Event, InFlight, ProcessSampled, SloReported, Uptime};
use osprey_metrics::process::Proc;

use crate::alerts::Severity;
use crate::monitor::Observer;

impl Observer {
    /// Sets the scrape-time gauges (with metrics on); `uptime` is the server's.
    pub fn refresh_gauges(&self, uptime: Duration) {
        if !self.config.metrics {
            return;
        }
        if let Some(p) = Proc::This.sample() {
            ProcessSampled(p).emit();
        }
        Uptime {
            seconds: uptime.as_secs_f64(),
        }
        .emit();
        InFlight {
            requests: self.in_flight.get().max(0) as u64,
        }
        .emit();
        let slo = self.slo();
        for (name, o) in [("latency", &slo.latency), ("errors", &slo.errors)] {
            SloReported {
                slo: name,
                objective: o.objective,
                compliance: o.compliance.unwrap_or(1.0),
                burn_rate: o.burn_rate,
                budget_remaining: o.budget_remaining,
            }
            .emit();
        }
        let (active, _) = self.alerts();
        for (label, sev) in [
            ("warning", Severity::Warning),
            ("critical", Severity::Critical),
        ] {
            let n = active.iter().filter(|a| a.severity == sev).count();
            AlertsActive {
                severity: label,
                count: n as u64,
            }
            .emit();
        }
    }
}
