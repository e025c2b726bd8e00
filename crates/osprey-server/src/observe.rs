//! Request metrics and the Prometheus recorder.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install_metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let latency = [
                // Cache hits take tens of microseconds: resolve them too.
                0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ];
            let sizes = [
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
            ];
            let ratio = [1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("osprey_batch_size".into()), &sizes)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("osprey_batch_tokens".into()), &sizes)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("osprey_batch_padding_ratio".into()),
                        &ratio,
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
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

/// Counts every request by route and status and times it.
pub async fn record_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("osprey_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("osprey_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// Records one stage's duration and returns it in milliseconds for Server-Timing.
pub fn stage(name: &'static str, d: Duration) -> (&'static str, f64) {
    metrics::histogram!("osprey_stage_duration_seconds", "stage" => name).record(d.as_secs_f64());
    (name, d.as_secs_f64() * 1000.0)
}

/// `Server-Timing` header value from (stage, milliseconds) pairs.
pub fn server_timing(stages: &[(&'static str, f64)]) -> String {
    let mut out = String::with_capacity(stages.len() * 24);
    for (i, (name, ms)) in stages.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str(";dur=");
        out.push_str(&format!("{ms:.3}"));
    }
    out
}
