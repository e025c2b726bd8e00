//! Admission control for one model: whether a request may run, and when. One type
//! owns every decision: the cap on requests in flight, the queue's capacity in
//! tokens (estimated from a body's size before it is read, from the texts before
//! they are tokenized, and counted exactly when they are queued), and the
//! prediction of whether the replicas can finish a request before its deadline.
//! Each refusal is a typed [`EngineError`] the HTTP layer maps to a status code.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use osprey_metrics::event::{Event, RejectReason, RequestRejected};
use tokio::time::Instant;

use crate::{EngineError, Load};

/// Predicted model time is stretched by this many times the replicas' spread of
/// batch times (how far they stray from their rate, which varies with what else
/// runs on the cores): an admitted request that misses its deadline costs more (its
/// work is thrown away) than one refused at once.
const SPREADS: f64 = 2.0;

/// The least stretch, however steady the batches have been.
const MIN_SLACK: f64 = 1.05;

/// The most stretch: a spread measured on a few wild batches must not refuse
/// everything for good (the spread itself is unbounded).
const MAX_SLACK: f64 = 10.0;

/// Time a request spends outside the model: tokenizing, pooling, serializing.
const FIXED_COSTS: Duration = Duration::from_millis(10);

/// About four bytes of English per token.
const BYTES_PER_TOKEN: usize = 4;

/// The admission settings of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionConfig {
    /// Requests being served at once; beyond it new ones are refused. 0: no limit.
    pub max_in_flight: usize,
    /// Longest a request may take, queued work included; `None`: no deadline.
    pub deadline: Option<Duration>,
    /// Longest a request may be predicted to wait behind the work ahead of it
    /// (its own run time aside); `None`: only the deadline bounds it. Under
    /// overload this, not the deadline, keeps admitted latency short.
    pub max_queue: Option<Duration>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            deadline: Some(Duration::from_secs(30)),
            max_queue: Some(Duration::from_millis(1500)),
        }
    }
}

/// Counts a refusal.
pub(crate) fn rejected(reason: RejectReason) {
    RequestRejected { reason }.emit();
}

/// When a request must be done, and the budget it was given.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub budget: Duration,
}

pub struct Admission {
    /// Changed live by `PUT /admin/config`; read once per decision.
    config: std::sync::Mutex<AdmissionConfig>,
    in_flight: Arc<AtomicUsize>,
    /// Estimated tokens of requests admitted and not finished.
    outstanding: Arc<AtomicUsize>,
}

/// A request's place among those in flight, held for its life.
#[derive(Debug)]
pub struct Permit {
    in_flight: Arc<AtomicUsize>,
    deadline: Option<Deadline>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Permit {
    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// Runs `work` until the deadline; past it the future is dropped, which takes
    /// its inputs out of the batch queue, and the request gets
    /// [`EngineError::DeadlineExceeded`].
    pub async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let Some(d) = self.deadline else {
            return work.await;
        };
        match tokio::time::timeout_at(d.at, work).await {
            Ok(out) => out,
            Err(_) => {
                rejected(RejectReason::Deadline);
                Err(EngineError::DeadlineExceeded {
                    ms: d.budget.as_millis() as u64,
                })
            }
        }
    }
}

/// One request's estimated tokens, counted as outstanding while it lives.
#[derive(Debug)]
pub struct Ticket {
    outstanding: Arc<AtomicUsize>,
    tokens: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(self.tokens, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            config: std::sync::Mutex::new(config),
            in_flight: Arc::default(),
            outstanding: Arc::default(),
        }
    }

    pub fn config(&self) -> AdmissionConfig {
        *self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies new settings to the requests that arrive from now on.
    pub fn set_config(&self, config: AdmissionConfig) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Requests holding a permit now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A permit, or [`EngineError::Busy`] when all are taken: one atomic add, so a
    /// refusal costs microseconds, never a wait. `asked` is the client's own
    /// deadline; the configured one still bounds it.
    pub fn enter(&self, asked: Option<Duration>) -> Result<Permit, EngineError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let config = self.config();
        let budget = match (config.deadline, asked) {
            (Some(d), Some(a)) => Some(d.min(a)),
            (d, a) => d.or(a),
        };
        let permit = Permit {
            in_flight: self.in_flight.clone(),
            deadline: budget.map(|budget| Deadline {
                at: Instant::now() + budget,
                budget,
            }),
        };
        let max = config.max_in_flight;
        if max > 0 && before >= max {
            rejected(RejectReason::InFlight);
            return Err(EngineError::Busy { max_in_flight: max });
        }
        Ok(permit)
    }

    /// Refuses a body that cannot fit the queue's free capacity before it is read:
    /// under a flood of refused requests, reading and parsing them would take the
    /// CPU the model needs.
    pub fn check_body(
        &self,
        queued: usize,
        capacity: usize,
        declared_bytes: usize,
    ) -> Result<(), EngineError> {
        fits(queued, capacity, declared_bytes / BYTES_PER_TOKEN)
    }

    /// Refuses any request before its body is read when even the smallest would
    /// queue longer than `max_queue` behind the work admitted: under a flood, a
    /// refusal then costs no parsing. (Charging decides on the request's own work.)
    pub fn check_waiting(&self, load: &Load) -> Result<(), EngineError> {
        let Some(max_queue) = self.config().max_queue else {
            return Ok(());
        };
        let ahead = self
            .outstanding
            .load(Ordering::SeqCst)
            .saturating_sub(load.running_tokens())
            .max(load.queued_tokens);
        let Some(wait) = predicted_wait(load, ahead, 1, 1) else {
            return Ok(());
        };
        check_queue(wait.saturating_sub(run_alone(load, 1, 1)), max_queue)
    }

    /// Charges the texts the cache lacks against the queue and the deadline before
    /// any tokenizer or model work: [`EngineError::Overloaded`] when their estimated
    /// tokens do not fit the queue, [`EngineError::DeadlineUnreachable`] when the
    /// replicas, at their measured rates, would not finish them before the deadline
    /// behind all work admitted and not finished (queued, being tokenized, and the
    /// batches running now). The ticket counts them as outstanding until dropped.
    pub fn charge<S: AsRef<str>>(
        &self,
        permit: &Permit,
        load: &Load,
        max_input_tokens: usize,
        inputs: &[S],
    ) -> Result<Ticket, EngineError> {
        let bytes = inputs.iter().map(|t| t.as_ref().len());
        self.charge_bytes(permit, load, max_input_tokens, bytes)
    }

    /// [`Admission::charge`] for inputs given by their bytes of text.
    pub fn charge_bytes(
        &self,
        permit: &Permit,
        load: &Load,
        max_input_tokens: usize,
        bytes: impl Iterator<Item = usize>,
    ) -> Result<Ticket, EngineError> {
        let mut inputs = 0usize;
        let own: usize = bytes
            .map(|b| {
                inputs += 1;
                estimate_tokens_of(b, max_input_tokens)
            })
            .sum();
        self.charge_tokens(permit, load, own, inputs)
    }

    /// [`Admission::charge`] for `inputs` already tokenized into `own` tokens.
    pub fn charge_tokens(
        &self,
        permit: &Permit,
        load: &Load,
        own: usize,
        inputs: usize,
    ) -> Result<Ticket, EngineError> {
        fits(load.queued_tokens, load.max_queue_tokens, own)?;
        // Sequentially consistent with the load below: of two requests charged at
        // once, at least one sees the other.
        self.outstanding.fetch_add(own, Ordering::SeqCst);
        let ticket = Ticket {
            outstanding: self.outstanding.clone(),
            tokens: own,
        };
        let max_queue = self.config().max_queue;
        if permit.deadline.is_none() && max_queue.is_none() {
            return Ok(ticket);
        }
        // Outstanding work counts this request and every other admitted one, also
        // those still tokenizing (not queued yet); what runs now is counted by the
        // replicas, with how long it still needs.
        let ahead = self
            .outstanding
            .load(Ordering::SeqCst)
            .saturating_sub(load.running_tokens())
            .saturating_sub(own)
            .max(load.queued_tokens);
        let Some(wait) = predicted_wait(load, ahead, own, inputs) else {
            return Ok(ticket);
        };
        if let Some(deadline) = permit.deadline {
            check_deadline(wait, deadline)?;
        }
        if let Some(max_queue) = max_queue {
            check_queue(wait.saturating_sub(run_alone(load, own, inputs)), max_queue)?;
        }
        Ok(ticket)
    }
}

/// The tokens a text is charged before it is tokenized: at most what the model
/// takes of one input.
pub fn estimate_tokens(text: &str, max_input_tokens: usize) -> usize {
    estimate_tokens_of(text.len(), max_input_tokens)
}

fn estimate_tokens_of(bytes: usize, max_input_tokens: usize) -> usize {
    (bytes / BYTES_PER_TOKEN + 2).min(max_input_tokens.max(1))
}

/// The queue's one rule: new work fits when the queue holds nothing (so one
/// request larger than the capacity still runs when nothing else waits) or when
/// it fits the free capacity.
pub(crate) fn fits_queue(queued: usize, own: usize, capacity: usize) -> bool {
    queued == 0 || queued + own <= capacity
}

fn fits(queued: usize, capacity: usize, own: usize) -> Result<(), EngineError> {
    if fits_queue(queued, own, capacity) {
        return Ok(());
    }
    rejected(RejectReason::QueueFull);
    Err(EngineError::Overloaded { queued, capacity })
}

/// How long the request would take, with slack for how much batch times vary;
/// `None` when there is no basis to refuse on.
fn predicted_wait(load: &Load, ahead: usize, own: usize, inputs: usize) -> Option<Duration> {
    // An idle engine takes any request: refusing it on a rate measured in other
    // conditions would keep the engine idle and the rate unchanged for good.
    if ahead == 0 && load.running_tokens() == 0 {
        return None;
    }
    let finish = load.finish_in(ahead, own, inputs)?;
    let spread = load.spread();
    let slack = if spread.is_finite() {
        (1.0 + SPREADS * spread).clamp(MIN_SLACK, MAX_SLACK)
    } else {
        MAX_SLACK
    };
    // Saturates rather than panics on an absurd rate or queue.
    let wait = Duration::try_from_secs_f64(finish.as_secs_f64() * slack).unwrap_or(Duration::MAX);
    Some(wait.saturating_add(FIXED_COSTS))
}

/// How long the request would take on idle replicas, nothing ahead of it: the
/// part of a predicted wait that is its own work, not queueing.
fn run_alone(load: &Load, own: usize, inputs: usize) -> Duration {
    let mut idle = load.clone();
    for r in &mut idle.replicas {
        r.busy_for = Duration::ZERO;
        r.running_tokens = 0;
    }
    idle.finish_in(0, own, inputs).unwrap_or(Duration::ZERO)
}

fn check_queue(queueing: Duration, max_queue: Duration) -> Result<(), EngineError> {
    if queueing <= max_queue {
        return Ok(());
    }
    rejected(RejectReason::QueueTooLong);
    Err(EngineError::QueueTooLong {
        wait_ms: queueing.as_millis() as u64,
        max_queue_ms: max_queue.as_millis() as u64,
        retry_after_secs: (queueing - max_queue).as_secs_f64().ceil().clamp(1.0, 60.0) as u64,
    })
}

fn check_deadline(wait: Duration, deadline: Deadline) -> Result<(), EngineError> {
    let left = deadline.at.saturating_duration_since(Instant::now());
    if wait <= left {
        return Ok(());
    }
    rejected(RejectReason::DeadlineUnreachable);
    Err(EngineError::DeadlineUnreachable {
        wait_ms: wait.as_millis() as u64,
        deadline_ms: deadline.budget.as_millis() as u64,
        // When the work ahead should have drained enough for it to fit.
        retry_after_secs: (wait - left).as_secs_f64().ceil().clamp(1.0, 60.0) as u64,
    })
}

#[cfg(test)]
mod tests;
