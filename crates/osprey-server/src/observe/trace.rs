//! Request spans for OpenTelemetry: one server span per request, continuing the
//! caller's trace from its W3C `traceparent`, with a child span per stage
//! (validate, cache, tokenize, queue, inference, postprocess, serialize). The
//! stages' lengths are measured; they are laid end to end from the request's start
//! in that order, which is the order an input goes through them.
//!
//! Spans go to whatever tracer provider the binary installed globally (OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set); the middleware makes none unless asked.

use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use osprey_observe::STAGES;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The caller's trace context (`traceparent`, `tracestate`), or an empty one.
pub(crate) fn parent(headers: &HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&Headers(headers)))
}

/// What the request middleware knows once the response is made.
pub(crate) struct Finished<'a> {
    pub started: SystemTime,
    pub elapsed: Duration,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub request_id: &'a str,
    pub items: usize,
    pub stages: Option<&'a [u64; STAGES.len()]>,
}

/// Records the request's span and its stages' under `parent`.
pub(crate) fn record(parent: &Context, done: Finished<'_>) {
    let tracer = global::tracer("osprey");
    let mut attributes = vec![
        KeyValue::new("http.request.method", done.method.to_owned()),
        KeyValue::new("http.route", done.route.to_owned()),
        KeyValue::new("http.response.status_code", i64::from(done.status)),
    ];
    if !done.request_id.is_empty() {
        attributes.push(KeyValue::new(
            "osprey.request_id",
            done.request_id.to_owned(),
        ));
    }
    if done.items > 0 {
        attributes.push(KeyValue::new("osprey.items", done.items as i64));
    }
    let mut span = tracer
        .span_builder(format!("{} {}", done.method, done.route))
        .with_kind(SpanKind::Server)
        .with_start_time(done.started)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent);
    // Server spans mark 5xx as errors, not a client's 4xx (OpenTelemetry's HTTP
    // conventions).
    if done.status >= 500 {
        span.set_status(Status::error(format!("HTTP {}", done.status)));
    }
    let cx = parent.with_span(span);
    if let Some(stages) = done.stages {
        let mut at = done.started;
        for (name, ns) in STAGES.iter().zip(stages) {
            if *ns == 0 {
                continue;
            }
            let end = at + Duration::from_nanos(*ns);
            tracer
                .span_builder(*name)
                .with_kind(SpanKind::Internal)
                .with_start_time(at)
                .start_with_context(&tracer, &cx)
                .end_with_timestamp(end);
            at = end;
        }
    }
    cx.span().end_with_timestamp(done.started + done.elapsed);
}
