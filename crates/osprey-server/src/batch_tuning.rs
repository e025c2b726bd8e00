//! Batch budgets that follow measured speed, per model, with
//! `autoscale.tune_batches`: every `tune_window_ms`, the batches formed while
//! inputs waited are summed and handed to the model's [`Climber`], whose steps
//! are applied to the queue and recorded as `batch_retuned` actions. A budget
//! changed from outside (`PUT /admin/config`, SIGHUP) restarts the climb from it;
//! a replica added or removed restarts the window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use osprey_engine::{BoundTotals, ClimbSettings, Climber, Engine, Step};

use crate::AppState;
use crate::autoscale::{config_for, text_engines};

/// Fewest budget-bound batches a window needs before it is judged.
const MIN_BATCHES: u64 = 8;

/// How often the tuner looks at the models.
const TICK: Duration = Duration::from_millis(250);

/// One model's climb.
struct Tuning {
    climber: Climber,
    /// The totals the window started from, when it started, and with how many
    /// replicas.
    start: BoundTotals,
    since: Instant,
    replicas: usize,
}

impl Tuning {
    fn new(engine: &Engine) -> Self {
        Self {
            climber: engine.climber(ClimbSettings::default()),
            start: engine.bound_batches(),
            since: Instant::now(),
            replicas: engine.replica_count(),
        }
    }

    fn restart_window(&mut self, engine: &Engine) {
        self.start = engine.bound_batches();
        self.since = Instant::now();
        self.replicas = engine.replica_count();
    }
}

pub fn spawn_batch_tuner(state: AppState) {
    tokio::spawn(async move {
        let mut tunings: HashMap<String, Tuning> = HashMap::new();
        loop {
            tokio::time::sleep(TICK).await;
            let global = state.autoscale.load_full();
            let specs = state.models.specs().clone();
            let mut seen = Vec::new();
            for (label, engine) in text_engines(&state) {
                let cfg = config_for(&specs, &global, &label);
                if !cfg.tune_batches {
                    continue;
                }
                let tuning = tunings
                    .entry(label.clone())
                    .or_insert_with(|| Tuning::new(&engine));
                seen.push(label.clone());
                if engine.budgets() != tuning.climber.current() {
                    *tuning = Tuning::new(&engine);
                    continue;
                }
                if engine.replica_count() != tuning.replicas {
                    tuning.restart_window(&engine);
                    continue;
                }
                let window = engine.bound_batches().since(&tuning.start);
                if window.batches < MIN_BATCHES
                    || tuning.since.elapsed() < Duration::from_millis(cfg.tune_window_ms)
                {
                    continue;
                }
                let step = tuning.climber.observe(Instant::now(), &window);
                tuning.restart_window(&engine);
                if let Some(step) = step {
                    engine.set_budgets(step.budgets);
                    record(&state, &label, &step, &window);
                }
            }
            // Models gone, or no longer tuned, start afresh if they come back.
            tunings.retain(|label, _| seen.contains(label));
        }
    });
}

fn record(state: &AppState, label: &str, step: &Step, window: &BoundTotals) {
    let rate = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let reason = match step.kind {
        "trial" => format!(
            "trying {} {} (was {}): batches filled it at {} real tokens/s of model time",
            step.knob.key(),
            step.to,
            step.from,
            rate(Some(step.measured))
        ),
        "kept" if step.from != step.to => format!(
            "{} gained over the last setting ({} against {} real tokens/s); trying {}",
            step.knob.key(),
            rate(Some(step.measured)),
            rate(step.baseline),
            step.to
        ),
        "kept" => format!(
            "{} {} gained ({} against {} real tokens/s) and is as far as it goes",
            step.knob.key(),
            step.to,
            rate(Some(step.measured)),
            rate(step.baseline)
        ),
        _ => format!(
            "{} {} gained nothing ({} against {} real tokens/s); back to {}",
            step.knob.key(),
            step.from,
            rate(Some(step.measured)),
            rate(step.baseline),
            step.to
        ),
    };
    tracing::info!(model = label, "{reason}");
    let detail = serde_json::json!({
        "step": step,
        "window": {
            "batches": window.batches,
            "mean_inputs": window.items as f64 / window.batches.max(1) as f64,
            "real_tokens": window.real_tokens,
            "computed_tokens": window.computed_tokens,
            "model_ms": window.inference_ns / 1_000_000,
        },
    });
    state
        .actions
        .record("batch_retuned", Some(label), reason, detail);
}
