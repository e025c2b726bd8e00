use super::*;

fn limits(pads: bool) -> Limits {
    Limits {
        max_batch_tokens: 100,
        max_batch_requests: 4,
        max_queue_tokens: 200,
        pads,
        max_padding_ratio: 10.0,
    }
}

fn item(request: u64, len: usize) -> (Item, oneshot::Receiver<ItemResult>) {
    let (tx, rx) = oneshot::channel();
    (
        Item {
            ids: vec![1; len],
            second: None,
            request,
            enqueued: Instant::now(),
            reply: tx,
        },
        rx,
    )
}

fn push(
    q: &BatchQueue,
    request: u64,
    lens: &[usize],
) -> Result<Vec<oneshot::Receiver<ItemResult>>, Rejected> {
    let (items, rxs): (Vec<_>, Vec<_>) = lens.iter().map(|&l| item(request, l)).unzip();
    q.push(items).map(|_| rxs)
}

/// The lengths of the inputs in the next batch, in batch order.
fn next_lens(q: &BatchQueue) -> Vec<usize> {
    q.next_batch(&AtomicBool::new(false))
        .expect("batch")
        .iter()
        .map(|i| i.ids.len())
        .collect()
}

#[test]
fn small_queue_goes_in_one_batch() {
    let q = BatchQueue::new(limits(true));
    let _r = push(&q, 1, &[10, 20, 30]).expect("admitted");
    let batch = q.next_batch(&AtomicBool::new(false)).expect("batch");
    assert_eq!(batch.len(), 3);
    assert_eq!(q.queued_tokens(), 0);
}

#[test]
fn batches_respect_count_and_group_by_length() {
    let q = BatchQueue::new(limits(true));
    // Oldest is 10 tokens; the other 10s and 11 are closer than the 40s.
    let _r = push(&q, 1, &[10, 40, 11, 40, 10, 10, 12]).expect("admitted");
    let batch = q.next_batch(&AtomicBool::new(false)).expect("batch");
    let lens: Vec<usize> = batch.iter().map(|i| i.ids.len()).collect();
    assert_eq!(lens, vec![10, 11, 10, 10]);
    assert_eq!(next_lens(&q), [40, 40]);
    assert_eq!(
        q.next_batch(&AtomicBool::new(false)).expect("batch").len(),
        1
    );
}

#[test]
fn unpadded_batches_keep_arrival_order() {
    let q = BatchQueue::new(limits(false));
    let _a = push(&q, 1, &[20, 30]).expect("admitted");
    let _b = push(&q, 2, &[20, 20]).expect("admitted");
    let _c = push(&q, 3, &[21]).expect("admitted");
    // Grouping by length would take 20, 20, 20, 21 and leave request 1's 30 behind
    // a later request; without padding nothing is gained by it.
    let requests: Vec<u64> = q
        .next_batch(&AtomicBool::new(false))
        .expect("batch")
        .iter()
        .map(|i| i.request)
        .collect();
    assert_eq!(requests, vec![1, 1, 2, 2]);
}

#[test]
fn padded_cost_limits_the_batch() {
    let q = BatchQueue::new(limits(true));
    // 3 × 30 = 90 fits, a 4th at 30 would cost 120 > 100.
    let _r = push(&q, 1, &[30, 30, 30, 30]).expect("admitted");
    assert_eq!(
        q.next_batch(&AtomicBool::new(false)).expect("batch").len(),
        3
    );
    assert_eq!(
        q.next_batch(&AtomicBool::new(false)).expect("batch").len(),
        1
    );
}

#[test]
fn packed_cost_counts_real_tokens() {
    let q = BatchQueue::new(Limits {
        max_batch_tokens: 60,
        ..limits(false)
    });
    let _r = push(&q, 1, &[50, 5, 5, 5, 5]).expect("admitted");
    // 50 + 5 + 5 = 60; count limit 4 is not reached but the next 5 would exceed 60.
    assert_eq!(next_lens(&q), [50, 5, 5]);
}

#[test]
fn oversized_anchor_still_runs_alone() {
    let q = BatchQueue::new(limits(true));
    let _r = push(&q, 1, &[150]).expect("an empty queue admits anything");
    assert_eq!(
        q.next_batch(&AtomicBool::new(false)).expect("batch").len(),
        1
    );
}

#[test]
fn full_queue_refuses_at_once() {
    let q = BatchQueue::new(limits(true));
    let _a = push(&q, 1, &[100, 90]).expect("admitted");
    match push(&q, 2, &[20]) {
        Err(Rejected::Full { queued }) => assert_eq!(queued, 190),
        other => panic!("expected Full, got {:?}", other.map(|_| ())),
    }
    let _b = push(&q, 3, &[10]).expect("room for 10");
}

#[test]
fn cancel_frees_tokens_of_that_request_only() {
    let q = BatchQueue::new(limits(true));
    let _a = push(&q, 1, &[10, 10]).expect("admitted");
    let _b = push(&q, 2, &[20]).expect("admitted");
    assert_eq!(q.cancel(1), 2);
    assert_eq!(q.queued_tokens(), 20);
    let batch = q.next_batch(&AtomicBool::new(false)).expect("batch");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].request, 2);
}

#[test]
fn close_drains_then_stops() {
    let q = BatchQueue::new(limits(true));
    let _a = push(&q, 1, &[10]).expect("admitted");
    q.close();
    assert_eq!(push(&q, 2, &[10]).map(|_| ()), Err(Rejected::Closed));
    assert!(q.next_batch(&AtomicBool::new(false)).is_some());
    assert!(q.next_batch(&AtomicBool::new(false)).is_none());
}

#[test]
fn padding_waste_is_bounded() {
    let q = BatchQueue::new(Limits {
        max_batch_tokens: 1000,
        max_batch_requests: 10,
        max_padding_ratio: 1.25,
        ..limits(true)
    });
    // All fit the budget, but padding 10 to 40 would waste most of the batch.
    let _r = push(&q, 1, &[10, 40, 11, 12, 38]).expect("admitted");
    assert_eq!(next_lens(&q), [10, 11, 12]);
    assert_eq!(next_lens(&q), [40, 38]);
}

#[test]
fn grouping_looks_only_at_the_oldest_requests() {
    let q = BatchQueue::new(Limits {
        max_batch_tokens: 10_000,
        max_batch_requests: GROUPING_REQUESTS,
        max_queue_tokens: 10_000,
        max_padding_ratio: 1.25,
        ..limits(true)
    });
    let _first = push(&q, 0, &[10]).expect("admitted");
    let mut _middle = Vec::new();
    for r in 1..GROUPING_REQUESTS as u64 {
        _middle.push(push(&q, r, &[40]).expect("admitted"));
    }
    // The 10 of the request after the window waits its turn instead of
    // overtaking the 40s queued before it (without the window it would join
    // the first 10).
    let _late = push(&q, 99, &[10]).expect("admitted");
    assert_eq!(next_lens(&q), [10]);
    // The rest fit one batch within the padding bound.
    let mut rest = vec![40; GROUPING_REQUESTS - 1];
    rest.push(10);
    assert_eq!(next_lens(&q), rest);
}

#[test]
fn a_request_s_inputs_are_grouped_together() {
    let q = BatchQueue::new(Limits {
        max_batch_tokens: 10_000,
        max_batch_requests: 64,
        max_queue_tokens: 10_000,
        max_padding_ratio: 1.25,
        ..limits(true)
    });
    // One request of many inputs counts once: all of them are in the window.
    let lens: Vec<usize> = (0..40).map(|i| if i % 2 == 0 { 10 } else { 40 }).collect();
    let _r = push(&q, 1, &lens).expect("admitted");
    let _s = push(&q, 2, &[10]).expect("admitted");
    assert_eq!(next_lens(&q), vec![10; 21]);
    assert_eq!(next_lens(&q), vec![40; 20]);
}
