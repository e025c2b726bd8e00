//! Requests refused before they reach the engine.

use super::{Event, name};

/// Why a request was refused (the `reason` label of `osprey_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The in-flight cap was reached.
    InFlight,
    /// The batch queue had no room.
    QueueFull,
    /// The request's deadline could not be met with the work ahead of it.
    DeadlineUnreachable,
    /// The request would have queued longer than the server queues anything.
    QueueTooLong,
    /// The request's deadline passed while it ran.
    Deadline,
    RateLimit,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InFlight => "in_flight",
            RejectReason::QueueFull => "queue_full",
            RejectReason::DeadlineUnreachable => "deadline_unreachable",
            RejectReason::QueueTooLong => "queue_too_long",
            RejectReason::Deadline => "deadline",
            RejectReason::RateLimit => "rate_limit",
        }
    }
}

/// A request refused under load or by a limit (`osprey_rejected_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRejected {
    pub reason: RejectReason,
}

/// Refusals since start, by [`RejectReason`] in declaration order: what the
/// recommendations read (the `metrics` facade's counters cannot be read back).
static REJECTED_SO_FAR: [std::sync::atomic::AtomicU64; 6] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 6];

impl RejectReason {
    pub const ALL: [RejectReason; 6] = [
        RejectReason::InFlight,
        RejectReason::QueueFull,
        RejectReason::DeadlineUnreachable,
        RejectReason::QueueTooLong,
        RejectReason::Deadline,
        RejectReason::RateLimit,
    ];

    /// Requests refused for this reason since the process started.
    pub fn so_far(self) -> u64 {
        REJECTED_SO_FAR[self as usize].load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Event for RequestRejected {
    fn emit(self) {
        REJECTED_SO_FAR[self.reason as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reason = self.reason.as_str();
        metrics::counter!(name::REJECTED, "reason" => reason).increment(1);
        // Refusals come in floods under overload: debug, the counter tells the rate.
        tracing::debug!(reason, "request rejected");
    }
}

/// Why credentials were refused (the `reason` label of `osprey_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// None or invalid (401).
    Unauthorized,
    /// Valid, without the scope the route needs (403).
    Forbidden,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Unauthorized => "unauthorized",
            AuthFailure::Forbidden => "forbidden",
        }
    }
}

/// Credentials refused on `path` (`osprey_auth_failures_total{reason}`).
#[derive(Clone, Copy)]
pub struct AuthFailed<'a> {
    pub reason: AuthFailure,
    pub path: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for AuthFailed<'_> {
    fn emit(self) {
        let reason = self.reason.as_str();
        metrics::counter!(name::AUTH_FAILURES, "reason" => reason).increment(1);
        tracing::debug!(path = self.path, reason, error = %self.error, "refused credentials");
    }
}
