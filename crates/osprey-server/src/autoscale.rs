//! Replicas that follow the load: a model whose inputs wait in its queue longer
//! than `target_queue_ms` for `scale_up_after_ms` gets another replica (warmed
//! before it takes work); one whose queue stays under a quarter of the target for
//! `scale_down_after_secs` gives one back. Always within `min_replicas` and
//! `max_replicas`, within the cores (replicas with threads of their own never
//! hold more threads in all than there are cores), and not while resident memory
//! is near the `self_heal` ceiling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use osprey_engine::{Backing, Engine, QueueStats};
use osprey_metrics::event::{Event, ReplicasRunning};
use osprey_metrics::process::Proc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;

/// The `[autoscale]` section, and a `[[models]]` entry's own `autoscale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscaleConfig {
    pub enabled: bool,
    pub min_replicas: usize,
    /// 0: as many as the cores allow.
    pub max_replicas: usize,
    /// Mean time inputs may wait in the queue before a replica is added (ms).
    pub target_queue_ms: u64,
    /// How long the queue must stay over the target before a replica is added.
    pub scale_up_after_ms: u64,
    /// How long the queue must stay quiet before a replica is removed.
    pub scale_down_after_secs: u64,
    /// How often each model's queue is read (ms).
    pub check_interval_ms: u64,
    /// Batch budgets that follow measured speed (`batch_tuning`): the token
    /// budget, request cap and padding ratio climb or back off, one step per
    /// window, between a quarter and twice their configured values.
    pub tune_batches: bool,
    /// How long each budget is measured before it is judged (ms).
    pub tune_window_ms: u64,
}

impl Default for AutoscaleConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            min_replicas: 1,
            max_replicas: 0,
            target_queue_ms: 50,
            scale_up_after_ms: 2000,
            scale_down_after_secs: 60,
            check_interval_ms: 250,
            tune_batches: false,
            tune_window_ms: 3000,
        }
    }
}

impl AutoscaleConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.min_replicas == 0 {
            return Err("autoscale.min_replicas must be at least 1".into());
        }
        if self.max_replicas != 0 && self.max_replicas < self.min_replicas {
            return Err(format!(
                "autoscale.max_replicas ({}) must be 0 (as the cores allow) or at least \
                 min_replicas ({})",
                self.max_replicas, self.min_replicas
            ));
        }
        if self.tune_window_ms < 200 {
            return Err("autoscale.tune_window_ms must be at least 200".into());
        }
        if self.target_queue_ms == 0 || self.check_interval_ms < 10 {
            return Err(
                "autoscale.target_queue_ms must be at least 1 and check_interval_ms at least 10"
                    .into(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Up,
    Down,
}

/// One model's queue as the autoscaler last saw it.
#[derive(Debug, Default)]
struct Track {
    last: QueueStats,
    over_since: Option<Instant>,
    calm_since: Option<Instant>,
    /// A replica is being added or removed.
    changing: bool,
}

/// Mean queue time (ms) since the last reading; a queue that holds inputs none
/// of which left counts as far over any target.
fn mean_queue_ms(before: QueueStats, now: QueueStats) -> f64 {
    let left = now.dequeued.saturating_sub(before.dequeued);
    if left == 0 {
        return if now.queued > 0 { f64::INFINITY } else { 0.0 };
    }
    now.waited_us.saturating_sub(before.waited_us) as f64 / left as f64 / 1000.0
}

fn decide(
    cfg: &AutoscaleConfig,
    track: &mut Track,
    now: Instant,
    queue_ms: f64,
    replicas: usize,
    max: usize,
) -> Option<Scale> {
    if replicas < cfg.min_replicas && replicas < max {
        return Some(Scale::Up);
    }
    let target = cfg.target_queue_ms as f64;
    if queue_ms > target {
        track.calm_since = None;
        let since = *track.over_since.get_or_insert(now);
        if now.duration_since(since) >= Duration::from_millis(cfg.scale_up_after_ms)
            && replicas < max
        {
            return Some(Scale::Up);
        }
        return None;
    }
    track.over_since = None;
    if queue_ms > target / 4.0 {
        track.calm_since = None;
        return None;
    }
    let since = *track.calm_since.get_or_insert(now);
    (now.duration_since(since) >= Duration::from_secs(cfg.scale_down_after_secs)
        && replicas > cfg.min_replicas.max(1))
    .then_some(Scale::Down)
}

/// A model's own `autoscale`, else the `[autoscale]` section.
pub(crate) fn config_for(
    specs: &[crate::models::ModelSpec],
    global: &AutoscaleConfig,
    label: &str,
) -> AutoscaleConfig {
    specs
        .iter()
        .find(|s| s.label() == label)
        .and_then(|s| s.autoscale.clone())
        .unwrap_or_else(|| global.clone())
}

/// The text models being served, by label.
pub(crate) fn text_engines(state: &AppState) -> Vec<(String, Arc<Engine>)> {
    state
        .models
        .registry()
        .all()
        .iter()
        .filter_map(|m| match &m.backing {
            Backing::Text(p) => Some((m.label.clone(), p.engine().clone())),
            _ => None,
        })
        .collect()
}

/// Whether a model's replicas run on threads of their own (not a shared pool).
fn owns_threads(engine: &Engine) -> bool {
    engine.info().thread_pool != "shared"
}

/// Threads a model's replicas hold of their own (0 on a shared pool).
fn own_threads(engine: &Engine) -> usize {
    if owns_threads(engine) {
        engine.layout().iter().sum()
    } else {
        0
    }
}

/// Watches every text model's queue while the server runs.
pub fn spawn_autoscaler(state: AppState) {
    tokio::spawn(async move {
        let tracks: Arc<std::sync::Mutex<HashMap<String, Track>>> = Arc::default();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        loop {
            let global = state.autoscale.load_full();
            tokio::time::sleep(Duration::from_millis(global.check_interval_ms.max(10))).await;
            let specs = state.models.specs().clone();
            let texts = text_engines(&state);
            let mut threads_used: usize = texts.iter().map(|(_, e)| own_threads(e)).sum();
            let near_ceiling = memory_near_ceiling(&state);
            for (label, engine) in texts {
                ReplicasRunning {
                    model: &label,
                    replicas: engine.replica_count(),
                }
                .emit();
                let cfg = config_for(&specs, &global, &label);
                let stats = engine.queue_stats();
                let mut all = tracks.lock().unwrap_or_else(|p| p.into_inner());
                let track = all.entry(label.clone()).or_default();
                let queue_ms = mean_queue_ms(track.last, stats);
                track.last = stats;
                if !cfg.enabled || track.changing {
                    continue;
                }
                let replicas = engine.replica_count();
                let own = own_threads(&engine);
                // The cores this model's replicas may hold: all but the other
                // models' own threads.
                let budget = cores.saturating_sub(threads_used - own).max(1);
                let mut max = engine.max_replicas();
                if cfg.max_replicas > 0 {
                    max = max.min(cfg.max_replicas);
                }
                if owns_threads(&engine) {
                    // Never more replica threads in all than cores: at most one
                    // replica per core of the budget, the budget split among them.
                    max = max.min(budget);
                }
                if near_ceiling {
                    max = max.min(replicas);
                }
                let Some(step) = decide(&cfg, track, Instant::now(), queue_ms, replicas, max)
                else {
                    continue;
                };
                track.changing = true;
                track.over_since = None;
                track.calm_since = None;
                drop(all);
                if owns_threads(&engine) {
                    threads_used = threads_used - own + budget;
                }
                let evidence = json!({
                    "mean_queue_ms": if queue_ms.is_finite() { json!(queue_ms) } else { json!("stalled") },
                    "target_queue_ms": cfg.target_queue_ms,
                    "replicas_before": replicas,
                    "min_replicas": cfg.min_replicas,
                    "max_replicas": max,
                });
                let (state, tracks) = (state.clone(), tracks.clone());
                tokio::spawn(async move {
                    change(
                        &state, &label, engine, step, budget, &cfg, queue_ms, evidence,
                    )
                    .await;
                    if let Some(t) = tracks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&label)
                    {
                        t.changing = false;
                        t.last = QueueStats::default();
                    }
                });
            }
        }
    });
}

/// Adds or removes one replica off the runtime, and records it. Replicas with
/// threads of their own share the `budget` of cores evenly: one replica holds
/// them all, two half each, and so on (each change starts the new replicas
/// before the old ones stop).
#[allow(clippy::too_many_arguments)]
async fn change(
    state: &AppState,
    label: &str,
    engine: Arc<Engine>,
    step: Scale,
    budget: usize,
    cfg: &AutoscaleConfig,
    queue_ms: f64,
    mut evidence: serde_json::Value,
) {
    let started = Instant::now();
    let worker = engine.clone();
    let own = owns_threads(&engine);
    let done = tokio::task::spawn_blocking(move || {
        let now = worker.replica_count();
        let next = match step {
            Scale::Up => now + 1,
            Scale::Down => now.saturating_sub(1).max(1),
        };
        match (own, step) {
            (true, _) => worker.relayout(next, (budget / next).max(1)),
            (false, Scale::Up) => worker.add_replica(),
            (false, Scale::Down) => Ok(worker.remove_replica()),
        }
    })
    .await;
    let after = match done {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tracing::warn!(model = label, error = %e, "a replica could not be added");
            return;
        }
        Err(_) => return,
    };
    evidence["replicas_after"] = json!(after);
    evidence["threads_per_replica"] = json!(engine.layout());
    evidence["ms"] = json!(started.elapsed().as_millis() as u64);
    ReplicasRunning {
        model: label,
        replicas: after,
    }
    .emit();
    let (action, reason) = match step {
        Scale::Up if engine.replica_count() <= cfg.min_replicas => (
            "replica_added",
            format!(
                "fewer replicas than autoscale.min_replicas ({})",
                cfg.min_replicas
            ),
        ),
        Scale::Up => (
            "replica_added",
            format!(
                "inputs waited {} in the queue, over the {} ms target, for {} ms",
                if queue_ms.is_finite() {
                    format!("{queue_ms:.1} ms")
                } else {
                    "without moving".into()
                },
                cfg.target_queue_ms,
                cfg.scale_up_after_ms
            ),
        ),
        Scale::Down => (
            "replica_removed",
            format!(
                "the queue stayed under a quarter of the {} ms target for {} s",
                cfg.target_queue_ms, cfg.scale_down_after_secs
            ),
        ),
    };
    state.actions.record(action, Some(label), reason, evidence);
}

/// Whether resident memory is within a fifth of the `self_heal` ceiling: no
/// replica is added then (each holds its own activations, and weights on some
/// backends).
fn memory_near_ceiling(state: &AppState) -> bool {
    let ceiling = state.self_heal.load().max_rss_mb;
    ceiling > 0
        && Proc::This
            .rss_bytes()
            .is_some_and(|rss| rss as f64 > 0.8 * (ceiling * 1024 * 1024) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AutoscaleConfig {
        AutoscaleConfig {
            enabled: true,
            min_replicas: 1,
            max_replicas: 3,
            target_queue_ms: 10,
            scale_up_after_ms: 1000,
            scale_down_after_secs: 5,
            check_interval_ms: 100,
            ..AutoscaleConfig::default()
        }
    }

    #[test]
    fn scales_up_after_sustained_queueing_and_down_after_sustained_calm() {
        let c = cfg();
        let mut t = Track::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(decide(&c, &mut t, at(0), 30.0, 1, 3), None);
        assert_eq!(decide(&c, &mut t, at(500), 30.0, 1, 3), None);
        assert_eq!(decide(&c, &mut t, at(1000), 30.0, 1, 3), Some(Scale::Up));
        // At the bound: no more.
        assert_eq!(decide(&c, &mut t, at(2000), 30.0, 3, 3), None);
        // A dip under the target restarts the count.
        let mut t = Track::default();
        assert_eq!(decide(&c, &mut t, at(0), 30.0, 1, 3), None);
        assert_eq!(decide(&c, &mut t, at(900), 5.0, 1, 3), None);
        assert_eq!(decide(&c, &mut t, at(1500), 30.0, 1, 3), None);
        // Calm for 5 s gives one back, never below the minimum.
        let mut t = Track::default();
        assert_eq!(decide(&c, &mut t, at(0), 0.0, 2, 3), None);
        assert_eq!(decide(&c, &mut t, at(4000), 1.0, 2, 3), None);
        assert_eq!(decide(&c, &mut t, at(5000), 0.0, 2, 3), Some(Scale::Down));
        let mut t = Track::default();
        assert_eq!(decide(&c, &mut t, at(0), 0.0, 1, 3), None);
        assert_eq!(decide(&c, &mut t, at(9000), 0.0, 1, 3), None);
        // Between a quarter of the target and the target: neither.
        let mut t = Track::default();
        assert_eq!(decide(&c, &mut t, at(0), 5.0, 2, 3), None);
        assert_eq!(decide(&c, &mut t, at(9000), 5.0, 2, 3), None);
        // Below the minimum: up at once.
        let c2 = AutoscaleConfig {
            min_replicas: 2,
            ..c
        };
        assert_eq!(
            decide(&c2, &mut Track::default(), at(0), 0.0, 1, 3),
            Some(Scale::Up)
        );
    }

    #[test]
    fn the_mean_queue_time_is_the_rise_of_the_sum_over_the_rise_of_the_count() {
        let a = QueueStats {
            queued: 0,
            dequeued: 10,
            waited_us: 10_000,
        };
        let b = QueueStats {
            queued: 3,
            dequeued: 20,
            waited_us: 60_000,
        };
        assert!((mean_queue_ms(a, b) - 5.0).abs() < 1e-9);
        assert_eq!(mean_queue_ms(b, b), f64::INFINITY, "inputs wait, none left");
        let idle = QueueStats { queued: 0, ..b };
        assert_eq!(mean_queue_ms(idle, idle), 0.0);
    }

    #[test]
    fn bad_bounds_are_refused() {
        assert!(AutoscaleConfig::default().validate().is_ok());
        for bad in [
            AutoscaleConfig {
                min_replicas: 0,
                ..cfg()
            },
            AutoscaleConfig {
                min_replicas: 4,
                max_replicas: 2,
                ..cfg()
            },
            AutoscaleConfig {
                target_queue_ms: 0,
                ..cfg()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
