//! Request spans over OTLP, configured the standard way: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns the exporter on; the batch
//! processor's `OTEL_BSP_*`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` are
//! honoured; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.
//! Spans are sent as HTTP/protobuf from the batch processor's own thread.

use anyhow::{Context, bail};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The installed exporter; [`Traces::shutdown`] sends what is still batched.
pub struct Traces(SdkTracerProvider);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Installs the OTLP exporter as the global tracer provider, with W3C trace
/// context propagation, when the environment asks for it. Call outside the async
/// runtime: the exporter's HTTP client is a blocking one.
pub fn init() -> anyhow::Result<Option<Traces>> {
    let endpoint =
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let Some(endpoint) = endpoint.filter(|_| !disabled) else {
        return Ok(None);
    };
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    if protocol != "http/protobuf" {
        bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: Osprey exports spans as http/protobuf \
             (an OpenTelemetry Collector accepts it on port 4318)"
        );
    }
    url::Url::parse(&endpoint)
        .with_context(|| format!("OTEL_EXPORTER_OTLP_ENDPOINT is not a URL: {endpoint}"))?;
    // The exporter reads the endpoint (appending /v1/traces to the generic one),
    // headers and timeout from the environment itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .context("setting up the OTLP span exporter")?;
    let mut resource = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("osprey");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Some(Traces(provider)))
}

impl Traces {
    /// Exports the spans still batched, then stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.0.shutdown() {
            tracing::warn!(error = %e, "flushing the last spans");
        }
    }
}
