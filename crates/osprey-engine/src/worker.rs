//! A replica worker: one OS thread that owns one backend instance and runs batches
//! from the queue until it is closed and drained.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use osprey_metrics::event::{BatchRan, Event, InferenceFailed, InferenceSucceeded};
use osprey_models::Backend;

use crate::capacity::Capacity;
use crate::queue::{BatchQueue, ItemResult};

/// What a replica thread shares with the engine.
pub(crate) struct Shared {
    pub queue: Arc<BatchQueue>,
    pub capacity: Arc<Capacity>,
    /// Set to remove this replica: it stops between batches.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Runs the warm-up batches (the first runs allocate buffers and pick kernels); the
/// last one, past those first-run costs, seeds the replica's rate so admission
/// control can judge requests from the start.
pub(crate) fn warm_up(
    backend: &mut dyn Backend,
    batches: &[Vec<Vec<u32>>],
    capacity: &Capacity,
    replica: usize,
) -> Result<(), String> {
    let mut last = None;
    for batch in batches {
        let seqs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
        let started = Instant::now();
        backend.embed(&seqs).map_err(|e| e.to_string())?;
        last = Some((seqs.iter().map(|s| s.len()).sum(), started.elapsed()));
    }
    if let Some((tokens, took)) = last {
        capacity.finish(replica, tokens, Some(took));
    }
    Ok(())
}

pub(crate) fn run(mut backend: Box<dyn Backend>, replica: usize, shared: Shared) {
    let Shared {
        queue,
        capacity,
        stop,
    } = shared;
    let pads = queue.limits().pads;
    while let Some((batch, bound)) = queue.next_formed(&stop) {
        // Inputs whose client left while queued are not worth computing.
        let batch: Vec<_> = batch.into_iter().filter(|i| !i.reply.is_closed()).collect();
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let seqs: Vec<&[u32]> = batch.iter().map(|i| i.ids.as_slice()).collect();
        let second: Vec<Option<usize>> = batch.iter().map(|i| i.second).collect();
        let real: usize = seqs.iter().map(|s| s.len()).sum();
        capacity.begin(replica, real);
        if queue.queued_tokens() == 0 {
            backend.idle_after_next();
        }
        // A backend bug must fail the batch, not kill the replica and hang the queue.
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| backend.embed_segments(&seqs, &second)))
                .unwrap_or_else(|_| {
                    Err(osprey_models::ModelError::Unsupported(
                        "backend panicked".into(),
                    ))
                });
        let inference = started.elapsed();
        capacity.finish(replica, real, result.is_ok().then_some(inference));

        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let computed = if pads { longest * seqs.len() } else { real };
        queue.ran(computed, real);
        if bound && result.is_ok() {
            queue.bound.add(seqs.len(), real, computed, inference);
        }
        BatchRan {
            items: seqs.len(),
            real_tokens: real,
            computed_tokens: computed,
            inference,
        }
        .emit();

        match result {
            Ok(vectors) if vectors.len() == batch.len() => {
                InferenceSucceeded { items: batch.len() }.emit();
                for (item, v) in batch.into_iter().zip(vectors) {
                    let _ = item.reply.send(ItemResult {
                        embedding: Ok(v),
                        queued: started.saturating_duration_since(item.enqueued),
                        inference,
                    });
                }
            }
            other => {
                let message = match other {
                    Err(e) => e.to_string(),
                    Ok(v) => format!(
                        "backend returned {} vectors for {} inputs",
                        v.len(),
                        batch.len()
                    ),
                };
                InferenceFailed {
                    items: batch.len(),
                    error: &message,
                }
                .emit();
                for item in batch {
                    let _ = item.reply.send(ItemResult {
                        embedding: Err(message.clone()),
                        queued: started.saturating_duration_since(item.enqueued),
                        inference,
                    });
                }
            }
        }
    }
    // The backend goes with this thread; its slot is free for another.
    drop(backend);
    capacity.release(replica);
}
