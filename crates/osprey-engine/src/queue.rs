//! The batch queue: bounded in tokens, shared by the async handlers that fill it and
//! the replica threads that drain it. A batch is formed when a worker is free, around
//! the oldest waiting input: in arrival order, or from inputs of similar length on
//! backends that pad a batch to its longest input.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use osprey_metrics::event::{Event, QueueDepth};

use crate::queue_stats::{QueueStats, QueueTimes};
use crate::tuning::BoundBatches;
use tokio::sync::oneshot;

/// What a worker sends back for one input.
pub(crate) struct ItemResult {
    pub embedding: Result<Vec<f32>, String>,
    pub queued: Duration,
    pub inference: Duration,
}

pub(crate) struct Item {
    pub ids: Vec<u32>,
    /// For a text pair, where its second text begins.
    pub second: Option<usize>,
    pub request: u64,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<ItemResult>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_batch_tokens: usize,
    pub max_batch_requests: usize,
    pub max_queue_tokens: usize,
    /// Batch cost is `count × longest` (padding backends) rather than the sum.
    pub pads: bool,
    /// On padding backends, most computed tokens per real token in a batch.
    pub max_padding_ratio: f64,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    Full { queued: usize },
    Closed,
}

struct State {
    items: VecDeque<Item>,
    tokens: usize,
    closed: bool,
    /// Under the same lock as the items: a budget changed live applies from the
    /// next batch formed.
    limits: Limits,
}

pub(crate) struct BatchQueue {
    state: Mutex<State>,
    wake: Condvar,
    batches: AtomicU64,
    batched_items: AtomicU64,
    /// Tokens the model computed (padding included) and real tokens, since start.
    computed_tokens: AtomicU64,
    real_tokens: AtomicU64,
    times: QueueTimes,
    /// Batches formed while more inputs waited: what the batch tuner measures.
    pub bound: BoundBatches,
}

impl BatchQueue {
    pub fn new(limits: Limits) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                tokens: 0,
                closed: false,
                limits,
            }),
            wake: Condvar::new(),
            batches: AtomicU64::new(0),
            batched_items: AtomicU64::new(0),
            computed_tokens: AtomicU64::new(0),
            real_tokens: AtomicU64::new(0),
            times: QueueTimes::default(),
            bound: BoundBatches::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.lock().limits
    }

    /// The budgets batches are formed within from now on (the backend's padding
    /// stays what it is).
    pub fn set_limits(&self, limits: Limits) {
        let mut st = self.lock();
        st.limits = Limits {
            pads: st.limits.pads,
            ..limits
        };
        drop(st);
        // A larger budget may let a waiting worker take more at once.
        self.wake.notify_all();
    }

    /// The queued tokens and the budgets, under one lock.
    pub fn occupancy(&self) -> (usize, Limits) {
        let st = self.lock();
        (st.tokens, st.limits)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked while holding it; the
        // queue's data stays consistent (each change is a single push or retain).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits all of a request's inputs or none. An empty queue admits any request,
    /// so one larger than the capacity still runs when nothing else waits.
    pub fn push(&self, items: Vec<Item>) -> Result<(), Rejected> {
        let tokens: usize = items.iter().map(|i| i.ids.len()).sum();
        let mut st = self.lock();
        if st.closed {
            return Err(Rejected::Closed);
        }
        if !crate::admission::fits_queue(st.tokens, tokens, st.limits.max_queue_tokens) {
            return Err(Rejected::Full { queued: st.tokens });
        }
        st.tokens += tokens;
        st.items.extend(items);
        QueueDepth {
            tokens: st.tokens as u64,
        }
        .emit();
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Drops the still-queued inputs of `request` (its client went away).
    pub fn cancel(&self, request: u64) -> usize {
        let mut st = self.lock();
        let before = st.items.len();
        let mut freed = 0;
        st.items.retain(|i| {
            let keep = i.request != request;
            if !keep {
                freed += i.ids.len();
            }
            keep
        });
        st.tokens -= freed;
        QueueDepth {
            tokens: st.tokens as u64,
        }
        .emit();
        before - st.items.len()
    }

    /// Batches formed and inputs they held, since start.
    pub fn batch_counts(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.batched_items.load(Ordering::Relaxed),
        )
    }

    /// Counts a batch's computed (padded) and real tokens.
    pub fn ran(&self, computed: usize, real: usize) {
        self.computed_tokens
            .fetch_add(computed as u64, Ordering::Relaxed);
        self.real_tokens.fetch_add(real as u64, Ordering::Relaxed);
    }

    /// Computed and real tokens since start: their ratio is the padding ratio.
    pub fn token_counts(&self) -> (u64, u64) {
        (
            self.computed_tokens.load(Ordering::Relaxed),
            self.real_tokens.load(Ordering::Relaxed),
        )
    }

    pub fn queued_tokens(&self) -> usize {
        self.lock().tokens
    }

    pub fn stats(&self) -> QueueStats {
        let queued = self.lock().items.len();
        self.times.snapshot(queued)
    }

    /// Stops admitting; workers drain what is queued and then stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    /// Wakes every waiting worker, so one told to stop sees it.
    pub fn wake_all(&self) {
        let _st = self.lock();
        self.wake.notify_all();
    }

    #[cfg(test)]
    pub fn next_batch(&self, stop: &AtomicBool) -> Option<Vec<Item>> {
        self.next_formed(stop).map(|(batch, _)| batch)
    }

    /// Blocks until a batch is ready; `None` once closed and drained, or once
    /// `stop` is set (checked between batches: a replica being removed finishes
    /// its batch, and what is queued goes to the others). With the batch, whether
    /// inputs were left waiting (the budgets, not the load, shaped it).
    pub fn next_formed(&self, stop: &AtomicBool) -> Option<(Vec<Item>, bool)> {
        let mut st = self.lock();
        loop {
            if stop.load(Ordering::Acquire) {
                return None;
            }
            if !st.items.is_empty() {
                let limits = st.limits;
                let batch = take_batch(&mut st.items, &limits);
                self.times
                    .left(Instant::now(), batch.iter().map(|i| i.enqueued));
                self.batches.fetch_add(1, Ordering::Relaxed);
                self.batched_items
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                st.tokens -= batch.iter().map(|i| i.ids.len()).sum::<usize>();
                QueueDepth {
                    tokens: st.tokens as u64,
                }
                .emit();
                let more = !st.items.is_empty();
                drop(st);
                if more {
                    // Another free replica can start on the rest at once.
                    self.wake.notify_one();
                }
                return Some((batch, more));
            }
            if st.closed {
                return None;
            }
            st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Of how many of the oldest requests a padded batch is grouped.
const GROUPING_REQUESTS: usize = 16;

/// How many of the oldest inputs belong to the oldest [`GROUPING_REQUESTS`]
/// requests (a request's inputs are queued together).
fn grouping_window(items: &VecDeque<Item>) -> usize {
    let mut requests = 0;
    let mut last = None;
    for (i, item) in items.iter().enumerate() {
        if last != Some(item.request) {
            requests += 1;
            if requests > GROUPING_REQUESTS {
                return i;
            }
            last = Some(item.request);
        }
    }
    items.len()
}

/// Picks a batch around the oldest input: the inputs closest to its length first
/// when batches are padded, else in arrival order, as long as the batch stays within
/// the token, count and padding limits.
fn take_batch(items: &mut VecDeque<Item>, limits: &Limits) -> Vec<Item> {
    let cost =
        |count: usize, sum: usize, longest: usize| if limits.pads { count * longest } else { sum };
    let wasteful = |count: usize, sum: usize, longest: usize| {
        limits.pads && (count * longest) as f64 > limits.max_padding_ratio * sum as f64
    };
    let total: usize = items.iter().map(|i| i.ids.len()).sum();
    let longest = items.iter().map(|i| i.ids.len()).max().unwrap_or(0);
    if items.len() <= limits.max_batch_requests
        && cost(items.len(), total, longest) <= limits.max_batch_tokens
        && !wasteful(items.len(), total, longest)
    {
        return items.drain(..).collect();
    }

    // Padded batches group inputs of similar length, from the oldest requests
    // only: an input of an unusual length is then passed over by the inputs of
    // a few requests at most, which bounds its wait (at 64 clients, p99 fell by
    // a third at the same throughput; BENCHMARKS.md). Unpadded batches cost the
    // same in any order, so they keep arrival order: a request then waits only
    // for the work queued before it, which is what admission control predicts.
    let window = if limits.pads {
        grouping_window(items)
    } else {
        items.len()
    };
    let mut order: Vec<usize> = (0..window).collect();
    if limits.pads {
        let anchor = items.front().map_or(0, |i| i.ids.len());
        // Stable: equally close inputs keep their arrival order.
        order.sort_by_key(|&i| items[i].ids.len().abs_diff(anchor));
    }
    let mut chosen = vec![false; items.len()];
    let (mut count, mut sum, mut max_len) = (0usize, 0usize, 0usize);
    for i in order {
        if count == limits.max_batch_requests {
            break;
        }
        let len = items[i].ids.len();
        let new_max = max_len.max(len);
        // The anchor always goes, even alone over the budget, so nothing starves.
        if count > 0
            && (cost(count + 1, sum + len, new_max) > limits.max_batch_tokens
                || wasteful(count + 1, sum + len, new_max))
        {
            continue;
        }
        chosen[i] = true;
        count += 1;
        sum += len;
        max_len = new_max;
    }
    let mut batch = Vec::with_capacity(count);
    let mut rest = VecDeque::with_capacity(items.len() - count);
    for (item, take) in items.drain(..).zip(chosen) {
        if take {
            batch.push(item);
        } else {
            rest.push_back(item);
        }
    }
    *items = rest;
    batch
}

#[cfg(test)]
mod tests;
