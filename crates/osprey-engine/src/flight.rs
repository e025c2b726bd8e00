//! Single flight: identical texts (equal cache keys) in flight at the same moment
//! run the model once, and every request waiting on them gets the result.
//!
//! A flight is a spawned task computing a group of keys. Requests hold it by `Arc`:
//! when the last holder goes away (every client disconnected) the flight aborts its
//! task, which drops the engine future and so cancels the queued inputs. The
//! registry holds only weak references, so it never keeps a flight alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use osprey_cache::{CacheKey, Entry};
use osprey_metrics::event::{Event, ItemsCancelled};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{EngineError, Timings};

/// What a flight produced: one entry per key, in the flight's order.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done {
        entries: Vec<Entry>,
        timings: Timings,
    },
    /// The error, with the flight index of the input it is about, if any.
    Failed(EngineError),
}

pub(crate) type Shared = Arc<Outcome>;

pub(crate) struct Flight {
    id: u64,
    keys: Vec<CacheKey>,
    result: watch::Receiver<Option<Shared>>,
    task: JoinHandle<()>,
    /// Set by the task when it runs: until then nothing of it is queued.
    started: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

impl Flight {
    pub fn keys(&self) -> &[CacheKey] {
        &self.keys
    }

    /// Waits for the flight's outcome.
    pub async fn wait(&self) -> Shared {
        let mut rx = self.result.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.as_ref().map_or_else(gone, Arc::clone),
            // The task ended without a word: it panicked or was aborted.
            Err(_) => gone(),
        }
    }
}

fn gone() -> Shared {
    Arc::new(Outcome::Failed(EngineError::Backend(
        "the computation for this input stopped".into(),
    )))
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.task.abort();
        // A task that ran has queued its inputs, and the engine counts them when
        // dropping them from the queue; one that never ran is counted here.
        if !self.started.load(Ordering::Acquire) && !self.task.is_finished() {
            ItemsCancelled {
                items: self.keys.len() as u64,
            }
            .emit();
        }
        self.registry.forget(self.id, &self.keys);
    }
}

/// Which flight computes each key in flight.
#[derive(Default)]
pub(crate) struct Registry {
    by_key: Mutex<HashMap<CacheKey, (u64, Weak<Flight>)>>,
    next_id: AtomicU64,
}

/// A request's share of flights: the flight it started (if any) and the ones it joined.
pub(crate) struct Claim {
    pub own: Option<Arc<Flight>>,
    pub joined: Vec<Arc<Flight>>,
}

impl Registry {
    /// Joins the flights already computing some of `keys` and starts one for the rest
    /// with `start(keys, done)`, which must spawn the computation and report through
    /// `done`. Keys must be distinct.
    pub fn claim(
        self: &Arc<Self>,
        keys: &[CacheKey],
        start: impl FnOnce(Vec<CacheKey>, Completion) -> JoinHandle<()>,
    ) -> Claim {
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        let mut joined: Vec<Arc<Flight>> = Vec::new();
        let mut mine = Vec::new();
        for key in keys {
            match map.get(key).and_then(|(_, w)| w.upgrade()) {
                Some(f) => {
                    if !joined.iter().any(|j| j.id == f.id) {
                        joined.push(f);
                    }
                }
                None => mine.push(*key),
            }
        }
        if mine.is_empty() {
            return Claim { own: None, joined };
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        let started = Arc::new(AtomicBool::new(false));
        let done = Completion {
            id,
            tx,
            started: started.clone(),
            registry: self.clone(),
        };
        let task = start(mine.clone(), done);
        let flight = Arc::new(Flight {
            id,
            keys: mine,
            result: rx,
            task,
            started,
            registry: self.clone(),
        });
        for key in &flight.keys {
            map.insert(*key, (id, Arc::downgrade(&flight)));
        }
        Claim {
            own: Some(flight),
            joined,
        }
    }

    fn forget(&self, id: u64, keys: &[CacheKey]) {
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            if map.get(key).is_some_and(|(owner, _)| *owner == id) {
                map.remove(key);
            }
        }
    }

    /// Keys currently in flight (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Handed to a flight's task: publishes the outcome to every waiter.
pub(crate) struct Completion {
    id: u64,
    tx: watch::Sender<Option<Shared>>,
    started: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

impl Completion {
    /// Marks the flight's task as running (call first thing in the task).
    pub fn begin(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Publishes the outcome. Call after caching the results, so a request arriving
    /// once the flight is gone finds them in the cache.
    pub fn finish(self, outcome: Outcome, keys: &[CacheKey]) {
        self.registry.forget(self.id, keys);
        self.tx.send_replace(Some(Arc::new(outcome)));
    }
}
