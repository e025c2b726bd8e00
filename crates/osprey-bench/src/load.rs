//! The two load models. Closed loop: `concurrency` workers, each sending its
//! next request when the last one answers. Open loop: requests fall due on a
//! schedule (constant or Poisson) whatever the server does, and latency counts
//! from the time a request was due, so a stall is charged to every request it
//! held back rather than hidden (coordinated omission).
//!
//! Everything runs on one thread: workers are local tasks sharing the recorder
//! and the workload through `RefCell`s, which costs nothing next to a syscall.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use osprey_metrics::process::Proc;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp};
use tokio::task::JoinHandle;

use crate::client::Conn;
use crate::progress::Progress;
use crate::recorder::{Recorder, Sample};
use crate::report::{RunReport, ServerStats};
use crate::spec::{Arrival, Load, RunSpec};
use crate::target::Target;
use crate::workload::Workload;

/// Set at Ctrl-C: workers stop sending, and the runs so far are reported.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Interval of the latency-over-time timeline: at most about 60 points, so each
/// holds enough requests for its percentiles to mean something.
fn interval_for(duration: Duration) -> Duration {
    const STEPS_MS: [u64; 9] = [50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000];
    let ms = duration.as_millis() as u64;
    let step = STEPS_MS
        .iter()
        .copied()
        .find(|s| ms / s <= 60)
        .unwrap_or(60_000);
    Duration::from_millis(step)
}

/// When open-loop requests fall due.
struct Schedule {
    start: Instant,
    end: Instant,
    measure_from: Instant,
    rate: f64,
    poisson: Option<(Exp<f64>, SmallRng)>,
    index: u64,
    /// Offset of the next arrival from `start`, in seconds.
    next_s: f64,
    measured: u64,
    limit: Option<u64>,
}

impl Schedule {
    fn new(spec: &RunSpec, clock: Clock, rate: f64, arrival: Arrival) -> Self {
        let poisson = match arrival {
            Arrival::Poisson => Exp::new(rate)
                .ok()
                .map(|e| (e, SmallRng::seed_from_u64(spec.seed ^ 0x9e37))),
            Arrival::Constant => None,
        };
        Self {
            start: clock.begin,
            end: clock.deadline,
            measure_from: clock.measure_from,
            rate,
            poisson,
            index: 0,
            next_s: 0.0,
            measured: 0,
            limit: spec.requests,
        }
    }

    fn claim(&mut self) -> Option<Instant> {
        if interrupted() || self.limit.is_some_and(|l| self.measured >= l) {
            return None;
        }
        let due = self.start + Duration::from_secs_f64(self.next_s);
        if due >= self.end {
            return None;
        }
        self.index += 1;
        self.next_s = match self.poisson.as_mut() {
            Some((exp, rng)) => self.next_s + exp.sample(rng),
            // From the index, not by adding gaps, so rounding never drifts.
            None => self.index as f64 / self.rate,
        };
        if due >= self.measure_from {
            self.measured += 1;
        }
        Some(due)
    }
}

struct Shared {
    recorder: RefCell<Recorder>,
    workload: RefCell<Workload>,
    /// Measured requests started, for `--requests` and the open loop's real rate.
    started: Cell<u64>,
}

impl Shared {
    /// Sends the workload's next body on `conn` and records the exchange, its
    /// latency counted from `start` (when the request was due).
    async fn send(&self, conn: &mut Conn, start: Option<Instant>) {
        let next = self.workload.borrow_mut().next_body();
        let body_len = next.body.len() as u64;
        let sent = Instant::now();
        let ex = conn.post(next.body).await;
        let done = Instant::now();
        self.recorder.borrow_mut().record(Sample {
            start: start.map_or(sent, |s| s.min(sent)),
            sent,
            done,
            result: &ex.result,
            items: next.items,
            bytes_sent: body_len,
            bytes_received: ex.bytes_received,
        });
    }

    fn count_started(&self) {
        self.started.set(self.started.get() + 1);
    }
}

/// The instants a run is laid out by.
#[derive(Clone, Copy)]
struct Clock {
    begin: Instant,
    measure_from: Instant,
    deadline: Instant,
}

/// Runs one load level and returns its report (assertions not yet checked).
pub async fn run(
    spec: &RunSpec,
    target: &Target,
    workload: Workload,
    progress: &Progress,
) -> RunReport {
    let begin = Instant::now();
    let measure_from = begin + spec.warmup;
    let clock = Clock {
        begin,
        measure_from,
        deadline: measure_from + spec.duration,
    };
    let open = matches!(spec.load, Load::Open { .. });
    let interval = interval_for(spec.duration);
    let shared = Rc::new(Shared {
        recorder: RefCell::new(Recorder::new(measure_from, interval, open)),
        workload: RefCell::new(workload),
        started: Cell::new(0),
    });
    let cpu_at_start = spawn_cpu_probe(spec.pid, measure_from);
    let done = Cell::new(false);
    let ticker = tick_progress(&shared, &done, clock, spec.warmup + spec.duration, progress);
    let workers = match spec.load {
        Load::Closed { concurrency } => {
            spawn_closed(&shared, target, clock, concurrency, spec.requests)
        }
        Load::Open {
            rate,
            arrival,
            connections,
        } => {
            let schedule = Schedule::new(spec, clock, rate, arrival);
            spawn_open(&shared, target, schedule, connections, spec.timeout)
        }
    };
    let workers_done = async {
        for w in workers {
            let _ = w.await;
        }
        done.set(true);
    };
    tokio::join!(workers_done, ticker);
    progress.finish();

    let (recorder, started) = match Rc::try_unwrap(shared) {
        Ok(s) => (s.recorder.into_inner(), s.started.get()),
        // A task still holds a handle (cannot happen once all are joined);
        // report from a snapshot instead of failing.
        Err(rc) => (
            rc.recorder
                .replace(Recorder::new(measure_from, interval, open)),
            rc.started.get(),
        ),
    };
    finish(
        spec,
        target,
        recorder,
        started,
        cpu_at_start.get(),
        clock.deadline,
    )
}

/// The server's CPU time when measuring starts, for its CPU share over the run.
fn spawn_cpu_probe(pid: Option<u32>, measure_from: Instant) -> Rc<Cell<Option<(f64, Instant)>>> {
    let cpu_at_start = Rc::new(Cell::new(None));
    if let Some(pid) = pid {
        let cell = cpu_at_start.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            cell.set(Proc::Pid(pid).cpu_seconds().map(|c| (c, Instant::now())));
        });
    }
    cpu_at_start
}

/// Updates the progress line four times a second until `done`.
async fn tick_progress(
    shared: &Shared,
    done: &Cell<bool>,
    clock: Clock,
    total: Duration,
    progress: &Progress,
) {
    if progress.is_hidden() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (Instant::now(), 0u64);
    while !done.get() {
        tick.tick().await;
        let now = Instant::now();
        let snap = shared.recorder.borrow().snapshot();
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let rate = snap.completed.saturating_sub(last.1) as f64 / dt;
        last = (now, snap.completed);
        progress.update(
            now.duration_since(clock.begin),
            total,
            now < clock.measure_from,
            rate,
            &snap,
        );
    }
}

/// `concurrency` workers, each sending its next request when the last answers.
fn spawn_closed(
    shared: &Rc<Shared>,
    target: &Target,
    clock: Clock,
    concurrency: usize,
    limit: Option<u64>,
) -> Vec<JoinHandle<()>> {
    (0..concurrency)
        .map(|_| {
            let shared = shared.clone();
            let mut conn = Conn::new(target.endpoint.clone());
            tokio::task::spawn_local(async move {
                loop {
                    let now = Instant::now();
                    if now >= clock.deadline || interrupted() {
                        break;
                    }
                    if now >= clock.measure_from {
                        if limit.is_some_and(|l| shared.started.get() >= l) {
                            break;
                        }
                        shared.count_started();
                    }
                    shared.send(&mut conn, None).await;
                }
            })
        })
        .collect()
}

/// `connections` workers taking requests off the schedule as they fall due.
fn spawn_open(
    shared: &Rc<Shared>,
    target: &Target,
    schedule: Schedule,
    connections: usize,
    timeout: Duration,
) -> Vec<JoinHandle<()>> {
    let measure_from = schedule.measure_from;
    let schedule = Rc::new(RefCell::new(schedule));
    (0..connections)
        .map(|_| {
            let shared = shared.clone();
            let schedule = schedule.clone();
            let mut conn = Conn::new(target.endpoint.clone());
            tokio::task::spawn_local(async move {
                loop {
                    let Some(due) = schedule.borrow_mut().claim() else {
                        break;
                    };
                    let now = Instant::now();
                    if now.saturating_duration_since(due) > timeout {
                        // Already a whole timeout late: the client would have given up.
                        shared.recorder.borrow_mut().record_dropped(due, now);
                        continue;
                    }
                    // Ahead of schedule: wait, and measure from when the timer
                    // let us go (its slack is the generator's, not the
                    // server's). Behind schedule: the server held us back, so
                    // measure from when the request was due.
                    let start = if due > now {
                        tokio::time::sleep_until(due.into()).await;
                        Instant::now()
                    } else {
                        due
                    };
                    if due >= measure_from {
                        shared.count_started();
                    }
                    shared.send(&mut conn, Some(start)).await;
                }
            })
        })
        .collect()
}

fn finish(
    spec: &RunSpec,
    target: &Target,
    mut rec: Recorder,
    started: u64,
    cpu_at_start: Option<(f64, Instant)>,
    deadline: Instant,
) -> RunReport {
    let min = if spec.requests.is_some() || interrupted() {
        Duration::from_millis(1)
    } else {
        spec.duration
    };
    let elapsed = rec.elapsed(min);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let end = rec.last_done.unwrap_or(deadline).max(rec.measure_from);
    let timeline = rec.finish_timeline(end);
    let server = spec.pid.and_then(|pid| server_stats(pid, cpu_at_start?));
    let (mode, concurrency, rate, arrival, connections) = load_columns(spec.load);
    RunReport {
        name: spec.name.clone(),
        url: target.url.clone(),
        api: target.api.name().into(),
        mode: mode.into(),
        concurrency,
        rate,
        arrival,
        connections,
        workload: spec.workload.describe(),
        duration_s: secs,
        requests: rec.requests,
        successes: rec.successes,
        items: rec.items,
        requests_per_s: rec.requests as f64 / secs,
        items_per_s: rec.items as f64 / secs,
        sent_per_s: rate.map(|_| started as f64 / secs),
        error_count: rec.error_count,
        error_rate: if rec.requests == 0 {
            0.0
        } else {
            rec.error_count as f64 / rec.requests as f64
        },
        errors: std::mem::take(&mut rec.errors),
        bytes_sent: rec.bytes_sent,
        bytes_received: rec.bytes_received,
        latency_ms: rec.latency(),
        service_ms: rec.service(),
        histogram: rec.buckets(),
        interval_s: rec_interval(spec),
        timeline,
        server,
        assertions: Vec::new(),
        objective: Vec::new(),
    }
}

/// The server's CPU share since `start` and its resident memory now.
fn server_stats(pid: u32, (cpu0, t0): (f64, Instant)) -> Option<ServerStats> {
    let cpu1 = Proc::Pid(pid).cpu_seconds()?;
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    Some(ServerStats {
        cpu_percent: (cpu1 - cpu0) / wall * 100.0,
        rss_mb: Proc::Pid(pid).rss_bytes()? as f64 / (1024.0 * 1024.0),
    })
}

type LoadColumns = (
    &'static str,
    Option<usize>,
    Option<f64>,
    Option<String>,
    usize,
);

/// The report's mode, concurrency, rate, arrival and connections.
fn load_columns(load: Load) -> LoadColumns {
    match load {
        Load::Closed { concurrency } => ("closed", Some(concurrency), None, None, concurrency),
        Load::Open {
            rate,
            arrival,
            connections,
        } => (
            "open",
            None,
            Some(rate),
            Some(arrival.name().to_string()),
            connections,
        ),
    }
}

fn rec_interval(spec: &RunSpec) -> f64 {
    interval_for(spec.duration).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: f64, poisson: bool, secs: f64) -> Schedule {
        let start = Instant::now();
        Schedule {
            start,
            end: start + Duration::from_secs_f64(secs),
            measure_from: start,
            rate,
            poisson: poisson.then(|| {
                (
                    Exp::new(rate).expect("rate > 0"),
                    SmallRng::seed_from_u64(1),
                )
            }),
            index: 0,
            next_s: 0.0,
            measured: 0,
            limit: None,
        }
    }

    #[test]
    fn constant_schedule_is_evenly_spaced() {
        let mut s = schedule(100.0, false, 1.0);
        let start = s.start;
        let times: Vec<Instant> = std::iter::from_fn(|| s.claim()).collect();
        assert_eq!(times.len(), 100);
        assert_eq!(times[10].duration_since(start), Duration::from_millis(100));
        assert!(times.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn poisson_schedule_has_the_right_mean_rate_and_varies() {
        let mut s = schedule(1000.0, true, 10.0);
        let start = s.start;
        let times: Vec<Instant> = std::iter::from_fn(|| s.claim()).collect();
        assert!((9_000..11_000).contains(&times.len()), "{}", times.len());
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| w[1].duration_since(w[0]).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // Exponential gaps: standard deviation equals the mean.
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.1,
            "cv {}",
            var.sqrt() / mean
        );
        assert!(times[0] >= start);
    }

    #[test]
    fn schedule_stops_at_the_request_limit() {
        let mut s = schedule(1000.0, false, 10.0);
        s.limit = Some(5);
        assert_eq!(std::iter::from_fn(|| s.claim()).count(), 5);
    }

    #[test]
    fn timeline_intervals_stay_under_about_60_points() {
        for (run_s, step_ms) in [(2, 50), (5, 100), (20, 500), (60, 1000), (600, 10_000)] {
            assert_eq!(
                interval_for(Duration::from_secs(run_s)),
                Duration::from_millis(step_ms),
                "{run_s} s"
            );
        }
    }
}
