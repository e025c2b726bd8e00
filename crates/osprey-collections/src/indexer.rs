//! The background indexer: one thread that moves written vectors into the
//! collections' graphs, and the bound on how many may wait for it.
//!
//! Writes are acknowledged once they are durable, as in Qdrant; building the
//! graph is the slow part (about a millisecond per 384-d point on two cores),
//! so it runs behind the writes instead of inside them. The vectors waiting are
//! searched exactly meanwhile. Their bytes are bounded across all collections:
//! a write that would pass the bound waits for the indexer, and gets
//! [`CollectionError::Busy`] if no room comes within [`ROOM_WAIT`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::collection::Collection;
use crate::error::{CollectionError, Result};

/// The longest a write waits for room in the backlog.
pub(crate) const ROOM_WAIT: Duration = Duration::from_secs(2);
/// Vectors moved into a graph per step (about a second of inserts): few locks
/// per point, and a collection's turn comes round often.
pub(crate) const STEP_POINTS: usize = 1_024;
/// How often the thread looks for work when nobody woke it (a safety net).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What the writers and the indexer share.
pub(crate) struct Backpressure {
    limit: usize,
    state: Mutex<Counters>,
    room: Condvar,
    work: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Counters {
    bytes: usize,
    woken: bool,
}

impl Backpressure {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            state: Mutex::new(Counters::default()),
            room: Condvar::new(),
            work: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of vectors waiting in all collections.
    pub(crate) fn bytes(&self) -> usize {
        self.counters().bytes
    }

    /// Waits until `bytes` more fit under the bound (an empty backlog takes any
    /// write, so one larger than the bound still goes through).
    pub(crate) fn wait_for_room(&self, bytes: usize, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut c = self.counters();
        while c.bytes > 0 && c.bytes.saturating_add(bytes) > self.limit {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CollectionError::Busy(format!(
                    "{} MiB of vectors wait to be indexed (the bound is {} MiB); retry shortly",
                    c.bytes >> 20,
                    self.limit >> 20
                )));
            }
            c = self
                .room
                .wait_timeout(c, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// Applies a change in the bytes waiting; a decrease wakes waiting writers.
    pub(crate) fn adjust(&self, before: usize, after: usize) {
        let mut c = self.counters();
        c.bytes = c.bytes.saturating_sub(before).saturating_add(after);
        if after < before {
            self.room.notify_all();
        }
    }

    /// Tells the indexer there is work.
    pub(crate) fn wake(&self) {
        self.counters().woken = true;
        self.work.notify_one();
    }

    fn sleep(&self) {
        let mut c = self.counters();
        if !c.woken && !self.stop.load(Ordering::Acquire) {
            c = self
                .work
                .wait_timeout(c, IDLE_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        c.woken = false;
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }
}

/// The running indexer thread; stopped and joined on drop.
pub(crate) struct Indexer {
    pressure: Arc<Backpressure>,
    thread: Option<JoinHandle<()>>,
}

/// The open collections, as the manager keeps them.
pub(crate) type OpenMap = RwLock<std::collections::BTreeMap<String, Arc<Collection>>>;

impl Indexer {
    pub(crate) fn start(pressure: Arc<Backpressure>, open: Weak<OpenMap>) -> Result<Self> {
        let p = pressure.clone();
        let thread = std::thread::Builder::new()
            .name("osprey-indexer".into())
            .spawn(move || run(&p, &open))
            .map_err(|e| CollectionError::Index(format!("starting the indexer: {e}")))?;
        Ok(Self {
            pressure,
            thread: Some(thread),
        })
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.pressure.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Gives each collection with work a step in turn, until stopped.
fn run(pressure: &Backpressure, open: &Weak<OpenMap>) {
    while !pressure.stop.load(Ordering::Acquire) {
        let Some(open) = open.upgrade() else { return };
        let all: Vec<Arc<Collection>> = open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        drop(open);
        let mut done = 0;
        for c in all {
            if pressure.stop.load(Ordering::Acquire) {
                return;
            }
            done += c.index_step(STEP_POINTS);
        }
        if done == 0 {
            pressure.sleep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_bounded_and_freed() {
        let p = Arc::new(Backpressure::new(100));
        // An empty backlog takes anything.
        p.wait_for_room(1_000, Duration::ZERO).unwrap();
        p.adjust(0, 80);
        p.wait_for_room(20, Duration::ZERO).unwrap();
        let err = p.wait_for_room(21, Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, CollectionError::Busy(_)), "{err}");
        // Room made by another thread wakes the writer.
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            p2.adjust(80, 10);
        });
        p.wait_for_room(50, Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        assert_eq!(p.bytes(), 10);
    }
}
