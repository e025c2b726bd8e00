//! Admission control for inference requests: a cap on requests in flight, refused at
//! once with 503; a deadline after which a request's work is dropped (its queued
//! inputs leave the batch queue when its future is dropped) and it gets 504; and,
//! in between, a refusal at once (503) of work the replicas cannot finish before its
//! deadline at the rates they are measured to run (see `Protection::check_queue`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;

use crate::ApiError;
use crate::limits::LimitsConfig;

/// Request header asking for a deadline shorter than the configured one (ms).
pub const DEADLINE_HEADER: &str = "x-osprey-deadline-ms";

pub struct Admission {
    max_in_flight: usize,
    in_flight: Arc<AtomicUsize>,
    deadline: Option<Duration>,
}

/// A slot held for the life of one request.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            max_in_flight: config.max_in_flight,
            in_flight: Arc::new(AtomicUsize::new(0)),
            deadline: (config.deadline_ms > 0).then(|| Duration::from_millis(config.deadline_ms)),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A slot, or 503 when all are taken. One atomic add: the refusal costs
    /// microseconds, never a wait.
    pub fn admit(&self) -> Result<Slot, ApiError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.in_flight.clone());
        if self.max_in_flight > 0 && before >= self.max_in_flight {
            metrics::counter!("osprey_rejected_total", "reason" => "in_flight").increment(1);
            return Err(ApiError::Busy(self.max_in_flight));
        }
        Ok(slot)
    }

    /// The configured deadline, shortened by the request's header. A header that is
    /// not a positive whole number of milliseconds is a 400.
    pub fn deadline(&self, headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
        let Some(v) = headers.get(DEADLINE_HEADER) else {
            return Ok(self.deadline);
        };
        let ms = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{DEADLINE_HEADER} must be a positive whole number of milliseconds"
                ))
            })?;
        let asked = Duration::from_millis(ms);
        Ok(Some(self.deadline.map_or(asked, |d| d.min(asked))))
    }
}
