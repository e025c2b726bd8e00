//! The engine: its queue, its batches and their inference.

use std::time::Duration;

use super::{Event, name};

/// Queued inputs dropped because their request went away
/// (`osprey_cancelled_items_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemsCancelled {
    pub items: u64,
}

impl Event for ItemsCancelled {
    fn emit(self) {
        metrics::counter!(name::CANCELLED_ITEMS).increment(self.items);
        tracing::debug!(items = self.items, "queued items cancelled");
    }
}

/// Inputs that joined an identical computation already in flight
/// (`osprey_coalesced_items_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemsCoalesced {
    pub items: u64,
}

impl Event for ItemsCoalesced {
    fn emit(self) {
        metrics::counter!(name::COALESCED_ITEMS).increment(self.items);
        tracing::trace!(items = self.items, "items coalesced");
    }
}

/// Tokens waiting in the batch queue now (`osprey_queue_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub tokens: u64,
}

impl Event for QueueDepth {
    fn emit(self) {
        // Set on every push and pop: no log line.
        metrics::gauge!(name::QUEUE_TOKENS).set(self.tokens as f64);
    }
}

/// How many tokens the batch queue holds at most (`osprey_queue_capacity_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCapacity {
    pub tokens: u64,
}

impl Event for QueueCapacity {
    fn emit(self) {
        metrics::gauge!(name::QUEUE_CAPACITY_TOKENS).set(self.tokens as f64);
    }
}

/// One batch through the model: its size in inputs and tokens, the tokens computed
/// (with padding), and how long inference took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRan {
    pub items: usize,
    pub real_tokens: usize,
    pub computed_tokens: usize,
    pub inference: Duration,
}

impl Event for BatchRan {
    fn emit(self) {
        let real = self.real_tokens;
        let computed = self.computed_tokens;
        metrics::histogram!(name::BATCH_SIZE).record(self.items as f64);
        metrics::histogram!(name::BATCH_TOKENS).record(real as f64);
        metrics::histogram!(name::BATCH_PADDING_RATIO).record(computed as f64 / real.max(1) as f64);
        metrics::counter!(name::BATCH_PADDED_TOKENS).increment(computed as u64);
        metrics::counter!(name::BATCH_REAL_TOKENS).increment(real as u64);
        metrics::histogram!(name::BATCH_DURATION).record(self.inference.as_secs_f64());
        tracing::trace!(
            items = self.items,
            real_tokens = real,
            computed_tokens = computed,
            inference_ms = self.inference.as_secs_f64() * 1000.0,
            "batch ran"
        );
    }
}

/// A batch's inference succeeded (`osprey_inference_total{result="ok"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferenceSucceeded {
    pub items: usize,
}

impl Event for InferenceSucceeded {
    fn emit(self) {
        metrics::counter!(name::INFERENCE, "result" => "ok").increment(1);
        tracing::trace!(batch = self.items, "inference succeeded");
    }
}

/// A batch's inference failed (`osprey_inference_total{result="error"}`): every
/// input of the batch gets the error.
#[derive(Debug, Clone, Copy)]
pub struct InferenceFailed<'a> {
    pub items: usize,
    pub error: &'a str,
}

impl Event for InferenceFailed<'_> {
    fn emit(self) {
        metrics::counter!(name::INFERENCE, "result" => "error").increment(1);
        tracing::error!(error = %self.error, batch = self.items, "inference failed");
    }
}
