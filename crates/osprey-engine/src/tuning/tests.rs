use super::*;

fn budgets(tokens: usize, requests: usize) -> Budgets {
    Budgets {
        max_batch_tokens: tokens,
        max_batch_requests: requests,
        max_queue_tokens: 32_768,
        max_padding_ratio: 1.25,
    }
}

/// Two seconds of full batches (as many inputs as the cap, short inputs) at
/// `speed` real tokens a second.
fn full_batches(b: &Budgets, speed: f64) -> Window {
    let real_tokens = (speed * 2.0) as u64;
    Window {
        batches: 20,
        real_tokens,
        wall: Duration::from_secs(2),
        bound: BoundTotals {
            batches: 20,
            items: 20 * b.max_batch_requests as u64,
            real_tokens,
            computed_tokens: real_tokens,
            inference_ns: 1_900_000_000,
        },
    }
}

/// Runs the climber against `speed` until it rests; returns the steps taken.
fn climb(c: &mut Climber, speed: impl Fn(&Budgets) -> f64) -> Vec<Step> {
    let now = Instant::now();
    let mut steps = Vec::new();
    for _ in 0..50 {
        let b = c.current();
        let w = full_batches(&b, speed(&b));
        if let Some(s) = c.observe(now, &w) {
            steps.push(s);
        } else if c.trial.is_none() && c.resting_until.is_some() {
            break;
        }
    }
    steps
}

#[test]
fn climbs_the_request_cap_while_bigger_batches_run_faster() {
    let mut c = Climber::new(budgets(100_000, 32), 128, false, ClimbSettings::default());
    // Faster up to 64 inputs a batch, then flat.
    let steps = climb(&mut c, |b| {
        1000.0 * (b.max_batch_requests.min(64) as f64).sqrt()
    });
    assert_eq!(c.current().max_batch_requests, 64, "{steps:#?}");
    assert!(steps.iter().all(|s| s.knob == Knob::MaxBatchRequests));
    let kinds: Vec<&str> = steps.iter().map(|s| s.kind).collect();
    // Down first, taken back; then up, kept.
    assert_eq!(
        kinds[..4],
        ["trial", "reverted", "trial", "kept"],
        "{steps:#?}"
    );
    assert_eq!((steps[2].from, steps[2].to), (32.0, 48.0));
    assert!(c.resting_until.is_some(), "rests once no step gains");
}

#[test]
fn comes_back_down_when_smaller_batches_run_faster() {
    let mut c = Climber::new(budgets(100_000, 32), 128, false, ClimbSettings::default());
    let steps = climb(&mut c, |b| 10_000.0 / b.max_batch_requests as f64);
    assert_eq!(c.current().max_batch_requests, 8, "a quarter: {steps:#?}");
    assert_eq!((steps[0].from, steps[0].to), (32.0, 21.0));
    assert_eq!(steps[1].kind, "kept");
}

#[test]
fn noise_alone_moves_nothing_for_good() {
    let mut c = Climber::new(budgets(100_000, 32), 128, false, ClimbSettings::default());
    let wobble = std::cell::Cell::new(0u32);
    let steps = climb(&mut c, |_| {
        wobble.set(wobble.get() + 1);
        1000.0 * (1.0 + 0.02 * f64::from(wobble.get() % 2))
    });
    assert_eq!(c.current(), budgets(100_000, 32), "{steps:#?}");
    assert!(steps.len() <= 4, "{steps:#?}");
}

#[test]
fn a_budget_the_batches_never_reach_is_left_alone() {
    let mut c = Climber::new(budgets(4096, 32), 128, false, ClimbSettings::default());
    let mut w = full_batches(&c.current(), 1000.0);
    w.bound.items = 20 * 4;
    assert_eq!(c.observe(Instant::now(), &w), None);
    assert!(c.resting_until.is_some());
    assert_eq!(c.current(), budgets(4096, 32));
}

#[test]
fn the_token_budget_moves_when_batches_fill_it_and_stays_in_bounds() {
    let start = budgets(1024, 1000);
    let mut c = Climber::new(start, 512, false, ClimbSettings::default());
    let now = Instant::now();
    // Batches as full in tokens as the budget allows, faster the larger.
    for _ in 0..40 {
        let b = c.current();
        let tokens = 10 * b.max_batch_tokens as u64;
        let w = Window {
            batches: 10,
            real_tokens: (100.0 * (b.max_batch_tokens as f64).sqrt()) as u64,
            wall: Duration::from_secs(1),
            bound: BoundTotals {
                batches: 10,
                items: 100,
                real_tokens: tokens,
                computed_tokens: tokens,
                inference_ns: 900_000_000,
            },
        };
        c.observe(now, &w);
    }
    assert_eq!(
        c.current().max_batch_tokens,
        2048,
        "twice the configured at most"
    );
    assert_eq!(c.current().max_batch_requests, 1000);
}

#[test]
fn an_empty_window_says_nothing() {
    let mut c = Climber::new(budgets(4096, 32), 128, true, ClimbSettings::default());
    assert_eq!(c.observe(Instant::now(), &Window::default()), None);
    assert!(c.resting_until.is_none());
}
