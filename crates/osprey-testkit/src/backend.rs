//! The fake backend and the script a test drives it with.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use osprey_models::{Backend, ModelError, Result};

use crate::FAKE_DIMS;

/// What the fake replicas do, changed by the test while they run.
#[derive(Debug, Default)]
pub struct Script {
    latency_us: AtomicU64,
    fail_next: AtomicUsize,
    held: Mutex<bool>,
    released: Condvar,
    /// Every batch's size, and whether the worker said the queue was empty
    /// when it took it.
    batches: Mutex<Vec<(usize, bool)>>,
    running: AtomicUsize,
    /// Signalled whenever a batch starts.
    started: Condvar,
}

impl Script {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Every batch from now on takes this long (on top of the gate).
    pub fn set_latency(&self, latency: Duration) {
        self.latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// The next `n` batches fail.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::Relaxed);
    }

    /// Batches started from now on wait until [`Script::release`].
    pub fn hold(&self) {
        *self.lock_held() = true;
    }

    pub fn release(&self) {
        *self.lock_held() = false;
        self.released.notify_all();
    }

    /// Batches being run now (waiting at the gate included).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Blocks until at least `n` batches are running (held at the gate or
    /// sleeping), or `timeout` passes; whether they are. Call it from a blocking
    /// context (the replicas are OS threads).
    pub fn wait_running(&self, n: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.lock_batches();
        while self.running() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self
                .started
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    fn lock_batches(&self) -> MutexGuard<'_, Vec<(usize, bool)>> {
        self.batches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The size of every batch run so far, in order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.lock_batches().iter().map(|b| b.0).collect()
    }

    /// For every batch run so far, in order, whether it was announced as the
    /// last before an idle queue ([`Backend::idle_after_next`]).
    pub fn idle_hints(&self) -> Vec<bool> {
        self.lock_batches().iter().map(|b| b.1).collect()
    }

    fn lock_held(&self) -> MutexGuard<'_, bool> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_at_gate(&self) {
        let mut held = self.lock_held();
        while *held {
            held = self.released.wait(held).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn take_failure(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A replica that runs no model: see the crate's documentation.
pub struct FakeBackend {
    script: Arc<Script>,
    idle_next: bool,
}

impl FakeBackend {
    pub fn new(script: Arc<Script>) -> Self {
        Self {
            script,
            idle_next: false,
        }
    }
}

/// A vector that depends on every token id and its position, so distinct inputs
/// get distinct vectors.
fn vector_of(seq: &[u32]) -> Vec<f32> {
    let mut v = vec![0.0f32; FAKE_DIMS];
    for (pos, &id) in seq.iter().enumerate() {
        let slot = (id as usize + pos) % FAKE_DIMS;
        v[slot] += 1.0 + (id % 7) as f32;
    }
    v
}

impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn embed(&mut self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let s = &self.script;
        {
            // Counted under the batches' lock, so a waiter cannot miss the signal.
            let mut batches = s.lock_batches();
            batches.push((seqs.len(), std::mem::take(&mut self.idle_next)));
            s.running.fetch_add(1, Ordering::AcqRel);
            s.started.notify_all();
        }
        s.wait_at_gate();
        let latency = s.latency_us.load(Ordering::Relaxed);
        if latency > 0 {
            std::thread::sleep(Duration::from_micros(latency));
        }
        let failed = s.take_failure();
        s.running.fetch_sub(1, Ordering::AcqRel);
        if failed {
            return Err(ModelError::Unsupported("scripted failure".into()));
        }
        Ok(seqs.iter().map(|s| vector_of(s)).collect())
    }

    fn idle_after_next(&mut self) {
        self.idle_next = true;
    }
}
