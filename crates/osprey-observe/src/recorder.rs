//! The process-wide Prometheus recorder, and the whole `/metrics` text.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use osprey_metrics::HistogramSnapshot;
use osprey_metrics::event::HISTOGRAM_BUCKETS;

use crate::requests;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install_metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's); then
            // this handle still renders, just without the metrics recorded elsewhere.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("osprey-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

/// A handle to a recorder that is never installed: with metrics turned off every
/// `metrics::` call stays a no-op and `/metrics` renders empty.
pub fn detached_metrics() -> PrometheusHandle {
    PrometheusBuilder::new().build_recorder().handle()
}

/// Latency buckets for every `*_seconds` histogram, and the events' own buckets
/// for the others.
fn builder() -> PrometheusBuilder {
    let latency = osprey_metrics::LATENCY_SECONDS;
    let mut built = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency);
    for (name, buckets) in HISTOGRAM_BUCKETS {
        built = built.and_then(|b| b.set_buckets_for_metric(Matcher::Full(name.into()), buckets));
    }
    built.unwrap_or_else(|_| PrometheusBuilder::new())
}

/// The whole scrape: the recorder's families, then (with metrics on) the
/// per-request ones kept outside it and each cache tier's lookup durations.
pub fn render<'a>(
    recorder: &PrometheusHandle,
    metrics_on: bool,
    cache_lookups: Option<impl Iterator<Item = (&'a str, &'a HistogramSnapshot)>>,
) -> String {
    let mut out = recorder.render();
    if metrics_on {
        requests::render(&mut out);
        if let Some(tiers) = cache_lookups {
            requests::render_cache_lookups(&mut out, tiers);
        }
    }
    out
}
