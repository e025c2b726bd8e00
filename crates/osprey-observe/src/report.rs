//! The JSON bodies of `GET /admin/stats` and `GET /admin/alerts`.

use serde::Serialize;

use crate::alerts::AlertEvent;
use crate::history::DAY_MINUTES;
use crate::monitor::Observer;
use crate::slo::SloStatus;
use crate::stats::{Summary, summarize};

/// Active alerts and the recently resolved ones (newest first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertList {
    pub active: Vec<AlertEvent>,
    pub recent: Vec<AlertEvent>,
}

/// The rolling windows of the last minute, five minutes, hour and day.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Windows {
    #[serde(rename = "1m")]
    pub minute: Summary,
    #[serde(rename = "5m")]
    pub five_minutes: Summary,
    #[serde(rename = "1h")]
    pub hour: Summary,
    /// From the per-minute history (saved across restarts when configured).
    #[serde(rename = "24h")]
    pub day: Summary,
}

/// `GET /admin/stats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsReport {
    pub uptime_seconds: f64,
    pub metrics_enabled: bool,
    pub windows: Windows,
    pub slo: SloStatus,
    pub alerts_active: usize,
}

impl Observer {
    pub fn alert_list(&self) -> AlertList {
        let (active, recent) = self.alerts();
        AlertList { active, recent }
    }

    /// The statistics report, given the server's uptime in seconds.
    pub fn report(&self, uptime_seconds: f64) -> StatsReport {
        let (active, _) = self.alerts();
        StatsReport {
            uptime_seconds,
            metrics_enabled: self.config.metrics,
            windows: Windows {
                minute: self.stats.summary(60),
                five_minutes: self.stats.summary(300),
                hour: self.stats.summary(3600),
                day: {
                    let rows = self.day_rows(DAY_MINUTES);
                    summarize(&rows.iter().collect::<Vec<_>>())
                },
            },
            slo: self.slo(),
            alerts_active: active.len(),
        }
    }
}
