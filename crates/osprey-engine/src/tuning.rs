//! Batch budgets that follow measured speed. A window's speed is the real tokens
//! all batches computed over its wall time: model time alone misses what a
//! budget costs around the model (a large batch's replies, and the requests that
//! follow them, arrive in bursts that leave the model waiting or compete with it
//! for the cores). Only batches formed while more inputs waited say that a budget
//! binds (a quiet queue's batches are as large as the load, not the budget), so
//! those are counted apart, and a climb starts only from a window of them. The
//! climber perturbs one budget at a time (the token budget, the request cap or
//! the padding ratio, whichever the batches ran into), keeps a step that gains
//! more than the noise, takes back one that does not, and rests once no step
//! gains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::Budgets;

/// Running sums over the batches formed while more inputs waited.
#[derive(Debug, Default)]
pub(crate) struct BoundBatches {
    batches: AtomicU64,
    items: AtomicU64,
    real_tokens: AtomicU64,
    computed_tokens: AtomicU64,
    inference_ns: AtomicU64,
}

impl BoundBatches {
    pub fn add(&self, items: usize, real: usize, computed: usize, inference: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
        self.real_tokens.fetch_add(real as u64, Ordering::Relaxed);
        self.computed_tokens
            .fetch_add(computed as u64, Ordering::Relaxed);
        self.inference_ns
            .fetch_add(inference.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn totals(&self) -> BoundTotals {
        BoundTotals {
            batches: self.batches.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            real_tokens: self.real_tokens.load(Ordering::Relaxed),
            computed_tokens: self.computed_tokens.load(Ordering::Relaxed),
            inference_ns: self.inference_ns.load(Ordering::Relaxed),
        }
    }
}

/// [`BoundBatches`] read at one moment; the difference of two readings is a
/// window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BoundTotals {
    pub batches: u64,
    pub items: u64,
    pub real_tokens: u64,
    pub computed_tokens: u64,
    pub inference_ns: u64,
}

impl BoundTotals {
    pub fn since(&self, before: &BoundTotals) -> BoundTotals {
        BoundTotals {
            batches: self.batches.saturating_sub(before.batches),
            items: self.items.saturating_sub(before.items),
            real_tokens: self.real_tokens.saturating_sub(before.real_tokens),
            computed_tokens: self.computed_tokens.saturating_sub(before.computed_tokens),
            inference_ns: self.inference_ns.saturating_sub(before.inference_ns),
        }
    }
}

/// One measured window of a model's batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Window {
    /// Batches of the window, and the real tokens they computed.
    pub batches: u64,
    pub real_tokens: u64,
    #[serde(serialize_with = "millis")]
    pub wall: Duration,
    /// The batches formed while more inputs waited.
    pub bound: BoundTotals,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Window {
    /// Whether the window may serve as the baseline a step is judged against:
    /// most of its batches were formed while more inputs waited, so its speed is
    /// the model's at these budgets rather than the load's.
    pub fn saturated(&self) -> bool {
        self.bound.batches >= 8 && self.bound.batches as f64 >= 0.8 * self.batches as f64
    }

    /// Real tokens per second of wall time.
    pub fn throughput(&self) -> Option<f64> {
        (self.real_tokens > 0 && !self.wall.is_zero())
            .then(|| self.real_tokens as f64 / self.wall.as_secs_f64())
    }
}

/// The budgets the climber moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Knob {
    MaxBatchTokens,
    MaxBatchRequests,
    MaxPaddingRatio,
}

impl Knob {
    pub fn key(self) -> &'static str {
        match self {
            Knob::MaxBatchTokens => "batching.max_batch_tokens",
            Knob::MaxBatchRequests => "batching.max_batch_requests",
            Knob::MaxPaddingRatio => "batching.max_padding_ratio",
        }
    }

    fn get(self, b: &Budgets) -> f64 {
        match self {
            Knob::MaxBatchTokens => b.max_batch_tokens as f64,
            Knob::MaxBatchRequests => b.max_batch_requests as f64,
            Knob::MaxPaddingRatio => b.max_padding_ratio,
        }
    }

    fn set(self, b: &mut Budgets, v: f64) {
        match self {
            Knob::MaxBatchTokens => b.max_batch_tokens = v.round() as usize,
            Knob::MaxBatchRequests => b.max_batch_requests = v.round() as usize,
            Knob::MaxPaddingRatio => b.max_padding_ratio = (v * 100.0).round() / 100.0,
        }
    }
}

const KNOBS: [Knob; 3] = [
    Knob::MaxBatchTokens,
    Knob::MaxBatchRequests,
    Knob::MaxPaddingRatio,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

/// How the climber moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClimbSettings {
    /// A step is kept when it gains more than this share (the noise of a window).
    pub min_gain: f64,
    /// Once no step gains, how long the budgets stay before the climb restarts.
    pub rest: Duration,
}

impl Default for ClimbSettings {
    fn default() -> Self {
        Self {
            min_gain: 0.03,
            rest: Duration::from_secs(120),
        }
    }
}

/// A change of one budget, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub knob: Knob,
    pub from: f64,
    pub to: f64,
    /// `trial`: trying a step; `kept`: the step gained, going on; `reverted`: it
    /// did not, taken back.
    pub kind: &'static str,
    /// Real tokens per model-second before and in the window just measured.
    pub baseline: Option<f64>,
    pub measured: f64,
    pub budgets: Budgets,
}

#[derive(Debug, Clone, Copy)]
struct Trial {
    knob: Knob,
    dir: Direction,
    before: Budgets,
}

/// The hill climber over one model's batch budgets.
#[derive(Debug)]
pub struct Climber {
    settings: ClimbSettings,
    /// Lowest and highest value of each knob, in [`KNOBS`] order.
    bounds: [(f64, f64); 3],
    pads: bool,
    current: Budgets,
    baseline: Option<f64>,
    trial: Option<Trial>,
    /// Steps tried since the last gain that did not gain.
    exhausted: Vec<(Knob, Direction)>,
    resting_until: Option<Instant>,
}

impl Climber {
    /// Climbs from `start` (the configured budgets) between a quarter and twice
    /// each of them: the token budget never under `min_tokens` (the longest
    /// input), the padding ratio between 1 and one more than configured.
    pub fn new(start: Budgets, min_tokens: usize, pads: bool, settings: ClimbSettings) -> Self {
        let t = start.max_batch_tokens as f64;
        let r = start.max_batch_requests as f64;
        let p = start.max_padding_ratio;
        Self {
            settings,
            bounds: [
                (
                    (t / 4.0).max(min_tokens as f64),
                    (t * 2.0).max(min_tokens as f64),
                ),
                ((r / 4.0).max(1.0), (r * 2.0).max(1.0)),
                (1.0, p + 1.0),
            ],
            pads,
            current: start,
            baseline: None,
            trial: None,
            exhausted: Vec::new(),
            resting_until: None,
        }
    }

    pub fn current(&self) -> Budgets {
        self.current
    }

    /// Whether a step waits to be judged (its window counts whether or not its
    /// batches still fill the budgets).
    pub fn trying(&self) -> bool {
        self.trial.is_some()
    }

    /// Takes one measured window of batches formed with [`Self::current`], and
    /// says what to change, if anything.
    pub fn observe(&mut self, now: Instant, window: &Window) -> Option<Step> {
        let measured = window.throughput()?;
        if let Some(until) = self.resting_until {
            if now < until {
                return None;
            }
            self.resting_until = None;
            self.exhausted.clear();
            self.baseline = None;
        }
        let Some(trial) = self.trial.take() else {
            // A window at settled budgets: the baseline the next trial must beat.
            self.baseline = Some(measured);
            return self.next_trial(now, window, measured);
        };
        let baseline = self.baseline.unwrap_or(measured);
        if measured > baseline * (1.0 + self.settings.min_gain) {
            // Kept: the same way again, from the new level.
            self.baseline = Some(measured);
            self.exhausted.clear();
            let from = trial.knob.get(&self.current);
            if let Some(next) = self.stepped(trial.knob, trial.dir) {
                self.trial = Some(Trial {
                    before: self.current,
                    ..trial
                });
                self.current = next;
                return Some(self.step(trial.knob, from, "kept", Some(baseline), measured));
            }
            return Some(self.step(trial.knob, from, "kept", Some(baseline), measured));
        }
        // No gain: back to where it was; the next window re-measures there.
        let from = trial.knob.get(&self.current);
        self.current = trial.before;
        self.exhausted.push((trial.knob, trial.dir));
        Some(self.step(trial.knob, from, "reverted", Some(baseline), measured))
    }

    fn step(
        &self,
        knob: Knob,
        from: f64,
        kind: &'static str,
        baseline: Option<f64>,
        measured: f64,
    ) -> Step {
        Step {
            knob,
            from,
            to: knob.get(&self.current),
            kind,
            baseline,
            measured,
            budgets: self.current,
        }
    }

    /// Starts a trial on a knob that would change the batches, or rests when
    /// none is left.
    fn next_trial(&mut self, now: Instant, window: &Window, measured: f64) -> Option<Step> {
        for (knob, dir) in self.candidates(&window.bound) {
            if self.exhausted.contains(&(knob, dir)) {
                continue;
            }
            match self.stepped(knob, dir) {
                Some(next) => {
                    let from = knob.get(&self.current);
                    self.trial = Some(Trial {
                        knob,
                        dir,
                        before: self.current,
                    });
                    self.current = next;
                    return Some(self.step(knob, from, "trial", Some(measured), measured));
                }
                None => self.exhausted.push((knob, dir)),
            }
        }
        self.resting_until = Some(now + self.settings.rest);
        None
    }

    /// The steps that would change the window's batches, smaller first (shorter
    /// waits for the inputs of a batch and, for a closed loop of clients, replies
    /// in smaller bursts): a limit lowered under what the batches held, or raised
    /// where the batches were full against it.
    fn candidates(&self, w: &BoundTotals) -> Vec<(Knob, Direction)> {
        if w.batches == 0 {
            return Vec::new();
        }
        let n = w.batches as f64;
        let mean_items = w.items as f64 / n;
        let mean_cost = if self.pads {
            w.computed_tokens as f64
        } else {
            w.real_tokens as f64
        } / n;
        let below = |knob: Knob, held: f64| {
            self.stepped(knob, Direction::Down)
                .is_some_and(|b| knob.get(&b) < held)
        };
        let mut out = Vec::new();
        if below(Knob::MaxBatchRequests, mean_items) {
            out.push((Knob::MaxBatchRequests, Direction::Down));
        }
        if below(Knob::MaxBatchTokens, mean_cost) {
            out.push((Knob::MaxBatchTokens, Direction::Down));
        }
        if self.pads {
            out.push((Knob::MaxPaddingRatio, Direction::Down));
        }
        if mean_items >= 0.9 * self.current.max_batch_requests as f64 {
            out.push((Knob::MaxBatchRequests, Direction::Up));
        }
        if mean_cost >= 0.7 * self.current.max_batch_tokens as f64 {
            out.push((Knob::MaxBatchTokens, Direction::Up));
        }
        if self.pads {
            out.push((Knob::MaxPaddingRatio, Direction::Up));
        }
        out
    }

    /// The budgets one step from now on `knob`, if that stays in bounds.
    fn stepped(&self, knob: Knob, dir: Direction) -> Option<Budgets> {
        let i = KNOBS.iter().position(|k| *k == knob).unwrap_or(0);
        let (lo, hi) = self.bounds[i];
        let v = knob.get(&self.current);
        let next = match (knob, dir) {
            (Knob::MaxPaddingRatio, Direction::Up) => v + 0.25,
            (Knob::MaxPaddingRatio, Direction::Down) => v - 0.25,
            (_, Direction::Up) => (v * 1.5).ceil(),
            (_, Direction::Down) => (v / 1.5).floor(),
        }
        .clamp(lo, hi);
        if (next - v).abs() < 1e-9 {
            return None;
        }
        let mut b = self.current;
        knob.set(&mut b, next);
        Some(b)
    }
}

#[cfg(test)]
mod tests;
