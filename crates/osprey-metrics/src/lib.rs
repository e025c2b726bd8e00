//! Metrics cheap enough for code run several times per request: counters and
//! fixed-bucket latency histograms whose updates are relaxed atomic adds on the
//! calling thread's own cache lines, summed only when read, and written out in
//! Prometheus text format. The `metrics` recorder serves everything updated less
//! often; these sit beside it in the same scrape.

mod histogram;
mod striped;

pub use histogram::{HistogramSnapshot, LATENCY_SECONDS, LatencyHistogram};
pub use striped::{Counter, Gauge, STRIPES, Striped, stripe};
