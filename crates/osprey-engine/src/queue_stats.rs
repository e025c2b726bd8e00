//! What autoscalers read off a model's queue: how many inputs wait now, and the
//! time spent waiting by every input that has left it. Shaped like Triton's
//! `nv_inference_queue_duration_us` (a running sum) and text-embeddings-inference's
//! `te_queue_size` (a gauge), so the same HPA rules carry over: the mean queue time
//! over a window is the rise of the sum over the rise of the count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A snapshot of one model's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Inputs (text models) or requests (tensor models) waiting now.
    pub queued: u64,
    /// Inputs or requests that have left the queue for a replica, since start.
    pub dequeued: u64,
    /// Microseconds those spent queued, summed.
    pub waited_us: u64,
}

/// Running sums, updated under the queue's lock when a batch leaves it.
#[derive(Debug, Default)]
pub(crate) struct QueueTimes {
    dequeued: AtomicU64,
    waited_us: AtomicU64,
}

impl QueueTimes {
    /// Counts the inputs of a batch taken at `now` that were enqueued at `since`.
    pub fn left(&self, now: Instant, since: impl Iterator<Item = Instant>) {
        let (mut n, mut us) = (0u64, 0u64);
        for t in since {
            n += 1;
            us = us.saturating_add(now.saturating_duration_since(t).as_micros() as u64);
        }
        self.dequeued.fetch_add(n, Ordering::Relaxed);
        self.waited_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self, queued: usize) -> QueueStats {
        QueueStats {
            queued: queued as u64,
            dequeued: self.dequeued.load(Ordering::Relaxed),
            waited_us: self.waited_us.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn sums_the_wait_of_each_input_that_left() {
        let times = QueueTimes::default();
        let now = Instant::now();
        let waits = [Duration::from_millis(3), Duration::from_millis(7)];
        times.left(now, waits.iter().map(|w| now - *w));
        times.left(now, std::iter::once(now));
        let s = times.snapshot(4);
        assert_eq!(s.queued, 4);
        assert_eq!(s.dequeued, 3);
        assert_eq!(s.waited_us, 10_000);
    }
}
