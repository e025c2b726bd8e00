//! Telemetry events, each defined once: one type per event that records its
//! metric(s) and writes its log line together, so a metric name is spelled in one
//! place ([`name`]) and a call site says what happened, not how it is counted.
//!
//! Events go through the `metrics` facade, for things that happen at most a few
//! times per request. What every request updates several times stays on the
//! striped counters and histograms of this crate, whose family names are in
//! [`name`] too.

mod cache;
mod collections;
mod engine;
pub mod name;
mod observe;
mod request;
mod tuning;

pub use cache::{
    CacheCorrupt, CacheErrored, CacheEvicted, CacheLookup, CacheLookupCounters, CacheSize,
    CacheSkipped, CacheWriteDropped, CacheWritten,
};
pub use collections::{CollectionSearched, CollectionSize};
pub use engine::{
    BatchRan, InferenceFailed, InferenceSucceeded, ItemsCancelled, ItemsCoalesced, QueueCapacity,
    QueueDepth,
};
pub use observe::{
    AlertDelivered, AlertDeliveryFailed, AlertDropped, AlertsActive, InFlight, ModelLoaded,
    ProcessSampled, SloReported, Uptime,
};
pub use request::{AuthFailed, AuthFailure, RejectReason, RequestRejected};
pub use tuning::{ActionTaken, ReplicasRunning};

/// Something that happened, recorded as metric(s) and a log line.
pub trait Event {
    fn emit(self);
}

/// Histograms recorded through the `metrics` facade whose buckets are not the
/// latency buckets every `*_seconds` histogram gets: batch sizes in items and
/// tokens, and the padding ratio.
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 3] = [
    (name::BATCH_SIZE, &SIZES),
    (name::BATCH_TOKENS, &SIZES),
    (
        name::BATCH_PADDING_RATIO,
        &[1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0],
    ),
];

const SIZES: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    /// What `emit` records, as the scrape shows it.
    fn scrape(emit: impl FnOnce()) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, emit);
        handle.render()
    }

    #[test]
    fn events_keep_their_names_and_labels() {
        let out = scrape(|| {
            RequestRejected {
                reason: RejectReason::QueueFull,
            }
            .emit();
            ItemsCancelled { items: 3 }.emit();
            InferenceFailed {
                items: 2,
                error: "boom",
            }
            .emit();
            CacheWritten {
                tier: "disk",
                entries: 4,
            }
            .emit();
            let counters = CacheLookupCounters::new("memory");
            CacheLookup { hits: 2, misses: 1 }.emit(&counters);
            BatchRan {
                items: 2,
                real_tokens: 10,
                computed_tokens: 16,
                inference: Duration::from_millis(3),
            }
            .emit();
        });
        for line in [
            "osprey_rejected_total{reason=\"queue_full\"} 1",
            "osprey_cancelled_items_total 3",
            "osprey_inference_total{result=\"error\"} 1",
            "osprey_cache_writes_total{tier=\"disk\",result=\"ok\"} 4",
            "osprey_cache_requests_total{tier=\"memory\",result=\"hit\"} 2",
            "osprey_cache_requests_total{tier=\"memory\",result=\"miss\"} 1",
            "osprey_batch_padded_tokens_total 16",
            "osprey_batch_real_tokens_total 10",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        assert!(out.contains("osprey_batch_size"), "{out}");
        assert!(out.contains("osprey_batch_padding_ratio"), "{out}");
    }
}
