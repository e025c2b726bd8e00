//! What the replicas can do right now. Every batch a replica runs tells its rate
//! (real tokens per second of inference), kept as a moving average per replica and
//! seeded by the warm-up, so it is known before the first request; each replica also
//! says what it is running. From both, admission control predicts when new work
//! would finish, without waiting for requests to complete.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Weight of the newest batch in a replica's rate: a few batches follow a change in
/// load (other processes taking the cores) without one odd batch swinging it.
const NEW_WEIGHT: f64 = 0.3;

/// What the spread of batch times is taken to be before batches have shown it:
/// the warm-up's small batches say little about how much real ones vary.
const INITIAL_SPREAD: f64 = 0.25;

/// A batch running past the time its replica's rate gives it is taken to be this
/// fraction of its time so far from done: how much longer is unknown, only that the
/// rate was too optimistic.
const OVERDUE_REST: f64 = 0.25;

/// Batches simulated for one prediction at most: beyond this many, a batch's
/// granularity no longer changes the answer, so larger queues move in larger steps.
const MAX_STEPS: f64 = 64.0;

struct Replica {
    /// Real tokens per second; 0 until a batch was timed.
    rate: f64,
    /// How far batch times stray from what the rate predicts, relative to it
    /// (a moving average of |actual / predicted - 1|).
    spread: f64,
    /// The batch running now: when it started and its real tokens.
    running: Option<(Instant, usize)>,
    /// Whether a replica holds this slot now (replicas come and go).
    active: bool,
}

impl Replica {
    fn fresh(active: bool) -> Self {
        Self {
            rate: 0.0,
            spread: INITIAL_SPREAD,
            running: None,
            active,
        }
    }
}

pub(crate) struct Capacity {
    /// One slot per replica the model may ever run; the first `replicas` start
    /// active.
    replicas: Box<[Mutex<Replica>]>,
}

impl Capacity {
    #[cfg(test)]
    pub fn new(replicas: usize) -> Self {
        Self::with_slots(replicas, replicas)
    }

    /// `active` replicas now, room for `slots` in all.
    pub fn with_slots(active: usize, slots: usize) -> Self {
        Self {
            replicas: (0..slots.max(active))
                .map(|i| Mutex::new(Replica::fresh(i < active)))
                .collect(),
        }
    }

    fn replica(&self, i: usize) -> Option<MutexGuard<'_, Replica>> {
        // A poisoned lock holds two plain numbers, still consistent.
        self.replicas
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes a free slot for a new replica; `None` when every slot is held.
    pub fn claim(&self) -> Option<usize> {
        (0..self.replicas.len()).find(|&i| {
            self.replica(i).is_some_and(|mut r| {
                if r.active {
                    return false;
                }
                *r = Replica::fresh(true);
                true
            })
        })
    }

    /// Frees the slot of a replica that stopped.
    pub fn release(&self, i: usize) {
        if let Some(mut r) = self.replica(i) {
            *r = Replica::fresh(false);
        }
    }

    /// Slots a replica may take.
    pub fn slots(&self) -> usize {
        self.replicas.len()
    }

    /// Replica `i` starts a batch of `tokens` real tokens.
    pub fn begin(&self, i: usize, tokens: usize) {
        if let Some(mut r) = self.replica(i) {
            r.running = Some((Instant::now(), tokens));
        }
    }

    /// Replica `i` is done with its batch; `took` is its inference time, or `None`
    /// when it failed (a failure says nothing of the rate).
    pub fn finish(&self, i: usize, tokens: usize, took: Option<Duration>) {
        let Some(mut r) = self.replica(i) else {
            return;
        };
        r.running = None;
        let Some(took) = took.filter(|t| !t.is_zero() && tokens > 0) else {
            return;
        };
        let rate = tokens as f64 / took.as_secs_f64();
        if r.rate > 0.0 {
            // The batch took rate-predicted time × (old rate / its rate).
            let strayed = (r.rate / rate - 1.0).abs();
            r.spread = (1.0 - NEW_WEIGHT) * r.spread + NEW_WEIGHT * strayed;
            r.rate = (1.0 - NEW_WEIGHT) * r.rate + NEW_WEIGHT * rate;
        } else {
            r.rate = rate;
        }
    }

    /// The replicas running now.
    pub fn replicas(&self) -> Vec<ReplicaLoad> {
        let now = Instant::now();
        (0..self.replicas.len())
            .filter_map(|i| {
                self.replica(i)
                    .filter(|r| r.active)
                    .map(|r| ReplicaLoad::of(&r, now))
            })
            .collect()
    }
}

/// One replica at one moment, as admission control sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaLoad {
    /// Real tokens per second it runs (0: not known yet).
    pub tokens_per_second: f64,
    /// How long the batch it runs should still take; zero when idle.
    pub busy_for: Duration,
    /// Real tokens of that batch.
    pub running_tokens: usize,
    /// How far its batch times stray from what its rate predicts, relative to it.
    pub spread: f64,
}

impl ReplicaLoad {
    fn of(r: &Replica, now: Instant) -> Self {
        let Some((started, tokens)) = r.running else {
            return Self {
                tokens_per_second: r.rate,
                busy_for: Duration::ZERO,
                running_tokens: 0,
                spread: r.spread,
            };
        };
        let elapsed = now.saturating_duration_since(started).as_secs_f64();
        let expected = if r.rate > 0.0 {
            tokens as f64 / r.rate
        } else {
            0.0
        };
        let (rate, rest) = if elapsed < expected {
            (r.rate, expected - elapsed)
        } else {
            // Slower than its average: the pace so far bounds its rate from above.
            let pace = tokens as f64 / elapsed;
            let rate = if pace > 0.0 { r.rate.min(pace) } else { r.rate };
            (rate, elapsed * OVERDUE_REST)
        };
        Self {
            tokens_per_second: rate,
            busy_for: saturating_secs(rest),
            running_tokens: tokens,
            spread: r.spread,
        }
    }
}

/// Seconds as a duration, saturating (a near-zero rate gives absurd times, not a
/// panic).
fn saturating_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

/// The engine's load at one moment: what admission control decides on.
#[derive(Debug, Clone)]
pub struct Load {
    pub replicas: Vec<ReplicaLoad>,
    pub queued_tokens: usize,
    pub max_queue_tokens: usize,
    pub max_batch_tokens: usize,
    pub max_batch_requests: usize,
}

impl Load {
    /// Real tokens per second of all replicas together; `None` until every replica
    /// has timed a batch.
    pub fn tokens_per_second(&self) -> Option<f64> {
        let known =
            !self.replicas.is_empty() && self.replicas.iter().all(|r| r.tokens_per_second > 0.0);
        known.then(|| self.replicas.iter().map(|r| r.tokens_per_second).sum())
    }

    /// The largest spread of batch times among the replicas: how much slack a
    /// prediction needs.
    pub fn spread(&self) -> f64 {
        self.replicas.iter().map(|r| r.spread).fold(0.0, f64::max)
    }

    /// Real tokens in the batches running now.
    pub fn running_tokens(&self) -> usize {
        self.replicas.iter().map(|r| r.running_tokens).sum()
    }

    /// How long until a request of `own_tokens` in `own_inputs` inputs would be
    /// done, queued behind `ahead` tokens not started yet, at the replicas' rates:
    /// batches are handed to whichever replica frees up first, as the queue does.
    /// `None` while the rates are not known.
    pub fn finish_in(
        &self,
        ahead: usize,
        own_tokens: usize,
        own_inputs: usize,
    ) -> Option<Duration> {
        self.tokens_per_second()?;
        let mut free: Vec<(f64, f64)> = self
            .replicas
            .iter()
            .map(|r| (r.busy_for.as_secs_f64(), r.tokens_per_second))
            .collect();
        // A batch holds at most `max_batch_requests` inputs of about this request's size.
        let per_input = own_tokens.div_ceil(own_inputs.max(1)).max(1);
        let batch = (per_input * self.max_batch_requests.max(1))
            .min(self.max_batch_tokens)
            .max(1) as f64;
        let step = batch.max((ahead + own_tokens) as f64 / MAX_STEPS);
        let (mut ahead, mut own) = (ahead as f64, own_tokens as f64);
        let mut done = 0.0_f64;
        while own > 0.0 {
            let (i, start) = free
                .iter()
                .enumerate()
                .map(|(i, f)| (i, f.0))
                .min_by(|a, b| a.1.total_cmp(&b.1))?;
            let from_ahead = ahead.min(step);
            ahead -= from_ahead;
            let from_own = own.min(step - from_ahead);
            own -= from_own;
            // A batch holding this request's inputs that cannot start at once is
            // formed later, and what arrives meanwhile joins it: count it full.
            let size = if from_own > 0.0 && start > 0.0 {
                (from_ahead + from_own).max(batch)
            } else {
                from_ahead + from_own
            };
            let end = start + size / free[i].1;
            free[i].0 = end;
            if from_own > 0.0 {
                done = done.max(end);
            }
        }
        Some(saturating_secs(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(replicas: &[(f64, u64)]) -> Load {
        Load {
            replicas: replicas
                .iter()
                .map(|&(rate, busy_ms)| ReplicaLoad {
                    tokens_per_second: rate,
                    busy_for: Duration::from_millis(busy_ms),
                    running_tokens: if busy_ms > 0 { 100 } else { 0 },
                    spread: 0.0,
                })
                .collect(),
            queued_tokens: 0,
            max_queue_tokens: 10_000,
            max_batch_tokens: 4096,
            max_batch_requests: 32,
        }
    }

    fn secs(d: Option<Duration>) -> f64 {
        d.expect("known rates").as_secs_f64()
    }

    #[test]
    fn unknown_until_every_replica_timed_a_batch() {
        assert_eq!(load(&[(1000.0, 0), (0.0, 0)]).tokens_per_second(), None);
        assert_eq!(load(&[(1000.0, 0), (0.0, 0)]).finish_in(0, 10, 1), None);
        assert_eq!(load(&[]).tokens_per_second(), None);
        assert_eq!(
            load(&[(1000.0, 0), (500.0, 0)]).tokens_per_second(),
            Some(1500.0)
        );
    }

    #[test]
    fn an_idle_replica_runs_a_request_alone() {
        // 500 tokens at 1,000 a second on a free replica: half a second.
        let l = load(&[(1000.0, 0), (1000.0, 300)]);
        assert!((secs(l.finish_in(0, 500, 10)) - 0.5).abs() < 1e-9);
        assert_eq!(l.running_tokens(), 100);
        let mut l = l;
        l.replicas[1].spread = 0.4;
        assert_eq!(l.spread(), 0.4, "the largest");
    }

    #[test]
    fn behind_busy_replicas_the_batch_counts_full() {
        // Both busy; the first frees after 0.2 s and then runs a full batch of 32
        // inputs of 10 tokens (320 tokens) at 1,000 a second.
        let l = load(&[(1000.0, 200), (1000.0, 400)]);
        assert!((secs(l.finish_in(0, 100, 10)) - 0.52).abs() < 1e-9);
    }

    #[test]
    fn queued_work_goes_to_whichever_replica_frees_first() {
        // 640 tokens ahead in two full batches, one per idle replica; the request
        // waits for the first to free (0.32 s) and runs in a full batch after it.
        let l = load(&[(1000.0, 0), (1000.0, 0)]);
        assert!((secs(l.finish_in(640, 100, 10)) - 0.64).abs() < 1e-9);
        // A larger request is split into batches on both replicas.
        assert!((secs(l.finish_in(0, 640, 64)) - 0.32).abs() < 1e-9);
    }

    #[test]
    fn huge_queues_take_few_steps() {
        let l = load(&[(1000.0, 0), (1000.0, 0)]);
        // 10 million tokens at 2,000 a second: about 5,000 s, found in ~64 steps.
        let t = secs(l.finish_in(10_000_000, 10, 1));
        assert!((4_900.0..5_300.0).contains(&t), "{t}");
    }

    #[test]
    fn rates_follow_batches_and_overdue_batches_lower_them() {
        let c = Capacity::new(2);
        assert_eq!(c.replicas()[0].tokens_per_second, 0.0);
        c.finish(0, 1000, Some(Duration::from_secs(1)));
        assert_eq!(c.replicas()[0].tokens_per_second, 1000.0);
        assert_eq!(c.replicas()[0].spread, INITIAL_SPREAD);
        // Twice as fast as predicted: it strayed by half its predicted time.
        c.finish(0, 2000, Some(Duration::from_secs(1)));
        assert!((c.replicas()[0].tokens_per_second - 1300.0).abs() < 1e-9);
        assert!((c.replicas()[0].spread - (0.7 * INITIAL_SPREAD + 0.3 * 0.5)).abs() < 1e-9);
        // A failed batch clears the replica and leaves its rate alone.
        c.begin(1, 50);
        assert_eq!(c.replicas()[1].running_tokens, 50);
        c.finish(1, 50, None);
        assert_eq!(c.replicas()[1].tokens_per_second, 0.0);
        assert_eq!(c.replicas()[1].running_tokens, 0);

        // A slot freed and claimed again starts afresh; a full set has none free.
        c.release(1);
        assert_eq!(c.replicas().len(), 1);
        assert_eq!(c.claim(), Some(1));
        assert_eq!(c.replicas()[1].tokens_per_second, 0.0);
        assert_eq!(c.claim(), None);

        // Running far past what its rate gives it: the pace so far caps the rate.
        let r = Replica {
            rate: 1000.0,
            spread: 0.1,
            running: Some((Instant::now(), 100)),
            active: true,
        };
        let later = Instant::now() + Duration::from_secs(1);
        let seen = ReplicaLoad::of(&r, later);
        assert!(seen.tokens_per_second <= 100.0 + 1e-9);
        assert!(seen.busy_for > Duration::ZERO);
        // On time: the rest of its expected time.
        let seen = ReplicaLoad::of(&r, Instant::now());
        assert_eq!(seen.tokens_per_second, 1000.0);
        assert!(seen.busy_for <= Duration::from_millis(100));
    }
}
