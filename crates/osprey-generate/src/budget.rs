//! The KV cache's token budget: each running sequence holds the tokens it may
//! grow to (prompt plus `max_tokens`) from admission until it ends, so the
//! engine never runs out of cache cells mid-answer, and memory stays bounded.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Budget {
    total: u64,
    used: AtomicU64,
}

impl Budget {
    pub fn new(total: u32) -> Self {
        Self {
            total: u64::from(total),
            used: AtomicU64::new(0),
        }
    }

    /// Takes `n` tokens if they fit.
    pub fn reserve(&self, n: u32) -> bool {
        let n = u64::from(n);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.total).then_some(used + n)
            })
            .is_ok()
    }

    pub fn release(&self, n: u32) {
        let n = u64::from(n);
        // Saturating: a double release must not wrap into a huge free budget.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_total() {
        let b = Budget::new(100);
        assert!(b.reserve(60));
        assert!(!b.reserve(41));
        assert!(b.reserve(40));
        assert_eq!(b.used(), 100);
        b.release(60);
        assert!(b.reserve(50));
        b.release(1000);
        assert_eq!(b.used(), 0);
    }
}
