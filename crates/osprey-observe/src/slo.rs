//! SLO compliance and error-budget burn over the configured window.

use serde::Serialize;

use crate::config::SloConfig;
use crate::stats::Summary;

/// One objective's state. The burn rate is the share of bad requests divided by
/// the share the objective allows: 1 spends the budget exactly over the window,
/// above 1 exhausts it early.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Objective {
    /// Share of requests that must be good.
    pub objective: f64,
    /// Share that was good (`None` without traffic).
    pub compliance: Option<f64>,
    pub burn_rate: f64,
    /// Share of the window's error budget left (negative once overspent).
    pub budget_remaining: f64,
    pub met: bool,
}

impl Objective {
    fn new(objective: f64, bad: u64, total: u64) -> Self {
        if total == 0 {
            return Self {
                objective,
                compliance: None,
                burn_rate: 0.0,
                budget_remaining: 1.0,
                met: true,
            };
        }
        let bad_share = bad as f64 / total as f64;
        let allowed = (1.0 - objective).max(f64::EPSILON);
        let burn_rate = bad_share / allowed;
        Self {
            objective,
            compliance: Some(1.0 - bad_share),
            burn_rate,
            budget_remaining: 1.0 - burn_rate,
            met: 1.0 - bad_share >= objective,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SloStatus {
    pub window_secs: u64,
    pub requests: u64,
    pub latency_ms: f64,
    /// Requests within `latency_ms`.
    pub latency: Objective,
    /// Requests that did not fail.
    pub errors: Objective,
}

pub fn status(cfg: &SloConfig, window: &Summary) -> SloStatus {
    SloStatus {
        window_secs: window.seconds,
        requests: window.requests,
        latency_ms: cfg.latency_ms,
        latency: Objective::new(cfg.latency_target, window.slow, window.requests),
        errors: Objective::new(1.0 - cfg.error_rate, window.errors, window.requests),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_rate_is_bad_share_over_allowed_share() {
        let cfg = SloConfig::default();
        let w = Summary {
            seconds: 60,
            requests: 1000,
            slow: 20,
            errors: 5,
            ..Summary::default()
        };
        let s = status(&cfg, &w);
        assert!((s.latency.burn_rate - 2.0).abs() < 1e-9, "{s:?}");
        assert!(!s.latency.met);
        assert!((s.errors.burn_rate - 0.5).abs() < 1e-9, "{s:?}");
        assert!(s.errors.met);
        let idle = status(&cfg, &Summary::default());
        assert!(idle.latency.met && idle.latency.compliance.is_none());
    }
}
