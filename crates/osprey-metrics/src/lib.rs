//! Metrics cheap enough for code run several times per request: counters and
//! fixed-bucket latency histograms whose updates are relaxed atomic adds on the
//! calling thread's own cache lines, summed only when read, and written out in
//! Prometheus text format. The `metrics` recorder serves everything updated less
//! often; these sit beside it in the same scrape.
//!
//! [`event`] defines every telemetry event once (its metric and its log line), and
//! so every metric name; [`process`] reads a process's CPU and memory from /proc.

pub mod event;
mod histogram;
pub mod process;
mod striped;

pub use histogram::{HistogramSnapshot, LATENCY_SECONDS, LatencyHistogram};
pub use striped::{Counter, Gauge, STRIPES, Striped, stripe};
