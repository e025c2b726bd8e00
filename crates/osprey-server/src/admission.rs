//! Admission control for inference requests: a cap on requests in flight, refused at
//! once with 503; a deadline after which a request's work is dropped (its queued
//! inputs leave the batch queue when its future is dropped) and it gets 504; and,
//! in between, a refusal at once (503) of work the queue cannot reach before its
//! deadline at the throughput the server is measured to have.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

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

/// Tokens the model finishes per second when it is saturated, measured on completed
/// requests over windows of about a second and smoothed. Only completions that find
/// work still queued count: otherwise the rate would measure the offered load, not
/// the capacity, and a quiet minute would make the next burst look hopeless.
#[derive(Default)]
pub struct Throughput {
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    last: Option<Instant>,
    tokens: u64,
    rate: f64,
}

/// A gap between completions longer than this starts a new window.
const IDLE: Duration = Duration::from_secs(2);

impl Throughput {
    pub fn record(&self, tokens: usize, queue_busy: bool) {
        let now = Instant::now();
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if !queue_busy {
            w.started = None;
            return;
        }
        let idle = w.last.is_none_or(|last| now - last > IDLE);
        w.last = Some(now);
        let Some(started) = w.started.filter(|_| !idle) else {
            // The work that opens a window was done before it: not counted.
            w.started = Some(now);
            w.tokens = 0;
            return;
        };
        w.tokens += tokens as u64;
        let elapsed = now - started;
        if elapsed >= Duration::from_secs(1) {
            let rate = w.tokens as f64 / elapsed.as_secs_f64();
            w.rate = if w.rate > 0.0 {
                0.5 * w.rate + 0.5 * rate
            } else {
                rate
            };
            w.started = Some(now);
            w.tokens = 0;
        }
    }

    /// None until a first window closed.
    pub fn tokens_per_second(&self) -> Option<f64> {
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        (w.rate > 0.0).then_some(w.rate)
    }

    /// The expected wait for `tokens` behind `queued`, when throughput is known.
    pub fn wait_for(&self, queued: usize, tokens: usize) -> Option<Duration> {
        let rate = self.tokens_per_second()?;
        Some(Duration::from_secs_f64((queued + tokens) as f64 / rate))
    }
}
