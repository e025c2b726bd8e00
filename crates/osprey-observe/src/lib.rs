//! Osprey watching itself: per-request metric families and the Prometheus recorder,
//! an hour of per-second statistics and a day of per-minute ones, SLOs with error budgets, alert rules with
//! anomaly detection and a webhook, the process's own figures, and what the
//! dashboard draws. HTTP (middleware, routes) stays with the server, which feeds
//! this crate through [`Observer`] and [`EngineProbe`].

mod alerts;
mod anomaly;
mod config;
mod dashboard;
mod history;
mod latency;
mod monitor;
mod recorder;
mod report;
mod requests;
mod scrape;
mod slo;
mod stats;
mod webhook;

pub use alerts::{AlertEvent, AlertStatus, Severity};
pub use config::{AlertsConfig, ConfigError, ObserveConfig, SloConfig};
pub use dashboard::{DASHBOARD_PAGE, DashboardData};
pub use history::{DAY_MINUTES, parse_window};
pub use latency::quantile_ms;
pub use monitor::{EngineProbe, EngineTotals, Observer, ProfileSlot, unix_ms};
pub use recorder::{detached_metrics, install_metrics, render};
pub use report::{AlertList, StatsReport};
pub use requests::{embedded_items, request, stages};
pub use slo::{Objective, SloStatus, status as slo_status};
pub use stats::{STAGES, Second, Stage, Summary, TierSecond, csv};
