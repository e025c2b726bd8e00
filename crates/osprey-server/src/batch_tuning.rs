//! Batch budgets that follow measured speed, per model, with
//! `autoscale.tune_batches`: every `tune_window_ms`, the batches formed while
//! inputs waited are summed and handed to the model's [`Climber`], whose steps
//! are applied to the queue and recorded as `batch_retuned` actions. A budget
//! changed from outside (`PUT /admin/config`, SIGHUP) restarts the climb from it;
//! a replica added or removed restarts the window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use osprey_engine::{BoundTotals, ClimbSettings, Climber, Engine, Step, Window};

use crate::AppState;
use crate::autoscale::{config_for, text_engines};

/// How often the tuner looks at the models.
const TICK: Duration = Duration::from_millis(250);

/// One model's climb.
struct Tuning {
    climber: Climber,
    /// The totals the window started from (bound batches, real tokens of all),
    /// when it started, and with how many replicas.
    start: BoundTotals,
    start_batches: u64,
    start_real: u64,
    since: Instant,
    replicas: usize,
}

impl Tuning {
    fn new(engine: &Engine) -> Self {
        let mut t = Self {
            climber: engine.climber(ClimbSettings::default()),
            start: BoundTotals::default(),
            start_batches: 0,
            start_real: 0,
            since: Instant::now(),
            replicas: 0,
        };
        t.restart_window(engine);
        t
    }

    fn restart_window(&mut self, engine: &Engine) {
        self.start = engine.bound_batches();
        self.start_batches = engine.batch_counts().0;
        self.start_real = engine.token_counts().1;
        self.since = Instant::now();
        self.replicas = engine.replica_count();
    }

    /// What ran since the window started.
    fn window(&self, engine: &Engine) -> Window {
        Window {
            batches: engine.batch_counts().0.saturating_sub(self.start_batches),
            real_tokens: engine.token_counts().1.saturating_sub(self.start_real),
            wall: self.since.elapsed(),
            bound: engine.bound_batches().since(&self.start),
        }
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
                let window = tuning.window(&engine);
                if window.wall < Duration::from_millis(cfg.tune_window_ms) {
                    continue;
                }
                // A trial is judged on its window whatever its batches; a climb
                // starts only from a window of batches the budgets shaped.
                if !tuning.climber.trying() && !window.saturated() {
                    tuning.restart_window(&engine);
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

fn record(state: &AppState, label: &str, step: &Step, window: &Window) {
    let rate = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let reason = match step.kind {
        "trial" => format!(
            "trying {} {} (was {}): batches filled it at {} real tokens/s",
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
    let bound = &window.bound;
    let detail = serde_json::json!({
        "step": step,
        "window": {
            "ms": window.wall.as_millis() as u64,
            "real_tokens": window.real_tokens,
            "bound_batches": bound.batches,
            "bound_mean_inputs": bound.items as f64 / bound.batches.max(1) as f64,
            "bound_model_ms": bound.inference_ns / 1_000_000,
        },
    });
    state
        .actions
        .record("batch_retuned", Some(label), reason, detail);
}
