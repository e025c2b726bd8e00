//! What the decode loop reports: read by `/metrics` and the dashboard.

use std::sync::atomic::AtomicU64;

use osprey_metrics::{Counter, LatencyHistogram};

#[derive(Default)]
pub struct Stats {
    /// Sequences in slots, and waiting for one.
    pub active: AtomicU64,
    pub queued: AtomicU64,
    pub prompt_tokens: Counter,
    /// Prompt tokens found in cells an earlier sequence left (prompt caching),
    /// not read again.
    pub prompt_cached_tokens: Counter,
    pub completion_tokens: Counter,
    /// Decode steps, the sequences they carried and their tokens: sequences per
    /// step above 1 is continuous batching at work.
    pub steps: Counter,
    pub step_sequences: Counter,
    pub step_tokens: Counter,
    pub max_step_sequences: AtomicU64,
    /// Requests refused for want of KV budget, and ended by their client.
    pub rejected: Counter,
    pub cancelled: Counter,
    /// Time to first token (from admission to the first sampled token), and
    /// between tokens.
    pub ttft: LatencyHistogram,
    pub inter_token: LatencyHistogram,
}
