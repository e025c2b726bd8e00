//! Counters striped across threads: each thread adds to its own cache line, and
//! readers sum the stripes. A request updates a few dozen counters; on one shared
//! line each update would wait for the line to travel between cores.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter: more than the runtime threads of a small machine, so two
/// busy threads rarely share one.
pub const STRIPES: usize = 8;

/// The stripe this thread writes to, given out round-robin on first use.
pub fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

/// A value on cache lines of its own (two, for the adjacent-line prefetcher).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// The stripes of a `T`, one per [`stripe`].
#[derive(Debug)]
pub struct Striped<T>(Box<[Padded<T>; STRIPES]>);

impl<T: Default> Default for Striped<T> {
    fn default() -> Self {
        Self(Box::new(std::array::from_fn(|_| Padded::default())))
    }
}

impl<T> Striped<T> {
    /// This thread's stripe.
    pub fn local(&self) -> &T {
        &self.0[stripe()].0
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|p| &p.0)
    }
}

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(Striped<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.local().fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}

/// A gauge moved up and down, possibly by different threads (a request may end on
/// another thread than it began): single stripes can go negative, the sum cannot.
#[derive(Debug, Default)]
pub struct Gauge(Striped<AtomicI64>);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.local().fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_sum_across_threads() {
        let c = std::sync::Arc::new(Counter::default());
        let g = std::sync::Arc::new(Gauge::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (c, g) = (c.clone(), g.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(2);
                        g.add(1);
                    }
                    stripe()
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok_and(|s| s < STRIPES));
        }
        // Taken back on this thread: its own stripe goes far below zero.
        g.add(-12_000);
        assert_eq!(c.get(), 24_000);
        assert_eq!(g.get(), 0);
    }
}
