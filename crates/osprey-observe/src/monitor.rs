//! The observer: the rolling statistics, the once-a-second sampler that closes each
//! second (CPU, memory, queue, batches, cache), the SLO status, and the alert
//! evaluator with its webhook.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use osprey_metrics::Gauge;
use osprey_metrics::process::Proc;

use crate::alerts::{AlertBook, AlertEvent, AlertStatus, evaluate};
use crate::config::{AlertsConfig, ObserveConfig, SloConfig};
use crate::history::{DAY_MINUTES, DayHistory, minute_of, minute_row};
use crate::slo::{self, SloStatus};
use crate::stats::{RollingStats, Sample, Second, TierSecond};

/// What the engine has done since it started, read once a second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineTotals {
    /// Tokens waiting in the batch queue now.
    pub queue_tokens: u64,
    /// Batches run, and the inputs in them.
    pub batches: u64,
    pub batch_items: u64,
    /// Cache lookups by tier, first tier first.
    pub cache: Vec<TierSecond>,
}

/// The engine as the sampler sees it, supplied by whoever runs one.
pub trait EngineProbe: Send + Sync + 'static {
    /// `None` while no engine is loaded.
    fn totals(&self) -> Option<EngineTotals>;
}

pub struct Observer {
    pub config: ObserveConfig,
    pub stats: RollingStats,
    /// A row a minute for the last day, saved to `history_path` when set.
    day: Arc<DayHistory>,
    /// The newest second summed into the day history: a minute saved at shutdown
    /// and closed again later is not counted twice.
    saved_through: Mutex<u64>,
    /// Requests in flight (`osprey_requests_in_flight`), with metrics on.
    pub in_flight: Gauge,
    book: Mutex<AlertBook>,
    slo: Mutex<SloStatus>,
    /// The SLOs and alert rules in force: `config`'s at start, then whatever was
    /// changed live.
    rules: Mutex<(SloConfig, AlertsConfig)>,
    profiling: AtomicBool,
    started: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Held while a CPU profile runs; only one runs at a time.
pub struct ProfileSlot(Arc<Observer>);

impl Drop for ProfileSlot {
    fn drop(&mut self) {
        self.0.profiling.store(false, Ordering::SeqCst);
    }
}

impl Observer {
    pub fn new(config: ObserveConfig) -> Self {
        Self {
            stats: RollingStats::new(config.slo.latency()),
            day: Arc::new(DayHistory::new(config.history_path.clone())),
            saved_through: Mutex::new(0),
            in_flight: Gauge::default(),
            book: Mutex::new(AlertBook::new(&config.alerts)),
            slo: Mutex::new(SloStatus::default()),
            rules: Mutex::new((config.slo.clone(), config.alerts.clone())),
            profiling: AtomicBool::new(false),
            started: AtomicBool::new(false),
            config,
        }
    }

    /// The SLOs and alert rules in force.
    pub fn rules(&self) -> (SloConfig, AlertsConfig) {
        lock(&self.rules).clone()
    }

    /// New objectives and alert thresholds, used from the next second on. Whether
    /// alerts run and where they are sent stay as started.
    pub fn set_rules(&self, slo: SloConfig, alerts: AlertsConfig) {
        self.stats.set_slow(slo.latency());
        lock(&self.book).retune(&alerts);
        *lock(&self.rules) = (slo, alerts);
    }

    pub fn slo(&self) -> SloStatus {
        lock(&self.slo).clone()
    }

    /// Active alerts, then recently resolved ones (newest first).
    pub fn alerts(&self) -> (Vec<AlertEvent>, Vec<AlertEvent>) {
        let book = lock(&self.book);
        (book.active(), book.recent())
    }

    pub fn begin_profile(self: &Arc<Self>) -> Option<ProfileSlot> {
        self.profiling
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            .then(|| ProfileSlot(self.clone()))
    }

    /// Starts the sampler and the alert evaluator on the current runtime (once).
    pub fn start(self: &Arc<Self>, engine: Arc<dyn EngineProbe>) {
        if !self.config.metrics || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.load_history().await;
            me.sample_every_second(engine).await
        });
        if self.config.alerts.enabled {
            let me = self.clone();
            let webhook = self
                .config
                .alerts
                .webhook_url
                .as_deref()
                .and_then(|url| crate::webhook::spawn(&self.config.alerts, url));
            tokio::spawn(async move { me.evaluate_alerts(webhook).await });
        }
    }

    async fn sample_every_second(self: Arc<Self>, engine: Arc<dyn EngineProbe>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sampler = Sampler::new();
        let mut open_minute = None;
        loop {
            tick.tick().await;
            let mut sample = sampler.next(engine.totals());
            sample.in_flight = self.in_flight.get().max(0) as u64;
            let now = unix_ms() / 1000;
            self.stats.roll(now, sample);
            let minute = minute_of(now);
            if let Some(done) = open_minute.filter(|m| *m != minute) {
                self.save_minute(done, now).await;
            }
            open_minute = Some(minute);
            let (slo, _) = self.rules();
            let status = slo::status(&slo, &self.stats.summary(slo.window_secs));
            *lock(&self.slo) = status;
        }
    }

    /// Reads the day history an earlier run saved, off the runtime.
    async fn load_history(&self) {
        let day = self.day.clone();
        let now = unix_ms() / 1000;
        match tokio::task::spawn_blocking(move || day.load(now)).await {
            Ok(Ok(r)) if r.minutes > 0 || r.skipped_lines > 0 => {
                tracing::info!(
                    minutes = r.minutes,
                    skipped_lines = r.skipped_lines,
                    "statistics history read back"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reading the statistics history"),
            Err(_) => tracing::warn!("reading the statistics history did not complete"),
        }
    }

    /// Sums the not yet saved seconds of `minute` into the day history, writing
    /// it off the runtime.
    async fn save_minute(&self, minute: u64, now: u64) {
        let Some(row) = self.unsaved_row(minute) else {
            return;
        };
        let day = self.day.clone();
        if tokio::task::spawn_blocking(move || day.push(row, now))
            .await
            .is_err()
        {
            tracing::warn!("saving the statistics history did not complete");
        }
    }

    /// Takes the seconds of `minute` not yet in the day history, summed (under
    /// the lock, so the sampler and a shutdown never both take them).
    fn unsaved_row(&self, minute: u64) -> Option<Second> {
        let mut saved = lock(&self.saved_through);
        let (row, newest) = self.unsaved(minute, *saved)?;
        *saved = newest;
        Some(row)
    }

    /// The seconds of `minute` after unix time `after`, summed, and the newest.
    fn unsaved(&self, minute: u64, after: u64) -> Option<(Second, u64)> {
        self.stats.with_last(120, |secs| {
            let own: Vec<&Second> = secs
                .iter()
                .copied()
                .filter(|s| minute_of(s.t) == minute && s.t > after)
                .collect();
            let newest = own.last()?.t;
            Some((minute_row(minute, &own), newest))
        })
    }

    /// Saves the minute in progress (at shutdown, so a restart loses none of it).
    pub async fn save_history(&self) {
        let now = unix_ms() / 1000;
        self.save_minute(minute_of(now), now).await;
    }

    /// The last day a row a minute, the minute in progress included, oldest first.
    pub fn day_rows(&self, minutes: usize) -> Vec<Second> {
        let mut rows = self.day.last(minutes.min(DAY_MINUTES));
        let now = unix_ms() / 1000;
        let after = *lock(&self.saved_through);
        let open = self.unsaved(minute_of(now), after).map(|(row, _)| row);
        if let Some(open) = open {
            match rows.last_mut() {
                Some(last) if last.t == open.t => crate::history::merge(last, &open),
                _ => rows.push(open),
            }
            if rows.len() > minutes.min(DAY_MINUTES) {
                rows.remove(0);
            }
        }
        rows
    }

    async fn evaluate_alerts(self: Arc<Self>, webhook: Option<crate::webhook::Sender>) {
        let mut every = self.config.alerts.eval_interval_ms.max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (_, cfg) = self.rules();
            let cfg = &cfg;
            if cfg.eval_interval_ms.max(1) != every {
                every = cfg.eval_interval_ms.max(1);
                tick = tokio::time::interval(Duration::from_millis(every));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            let window = self.stats.summary(cfg.window_secs);
            let holding = self
                .stats
                .with_range(cfg.window_secs, cfg.baseline_secs, |base| {
                    evaluate(cfg, &window, base)
                });
            let events = lock(&self.book).update(unix_ms(), holding);
            for e in events {
                match e.status {
                    AlertStatus::Firing => {
                        tracing::warn!(alert = e.key, severity = ?e.severity, value = e.value, "alert: {}", e.summary)
                    }
                    AlertStatus::Resolved => {
                        tracing::info!(alert = e.key, "alert {}", e.summary)
                    }
                }
                if let Some(tx) = &webhook {
                    tx.send(e);
                }
            }
        }
    }
}

/// Turns totals read once a second into the second's sample: CPU as a share of
/// all cores since the last reading, batches and cache lookups as differences.
struct Sampler {
    cores: f64,
    cpu_seconds: f64,
    at: Instant,
    batches: (u64, u64),
    cache: Vec<TierSecond>,
}

impl Sampler {
    fn new() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            cpu_seconds: Proc::This.cpu_seconds().unwrap_or(0.0),
            at: Instant::now(),
            batches: (0, 0),
            cache: Vec::new(),
        }
    }

    fn next(&mut self, engine: Option<EngineTotals>) -> Sample {
        let mut sample = Sample::default();
        if let Some(p) = Proc::This.sample() {
            let wall = self.at.elapsed().as_secs_f64().max(1e-3);
            let cpu = (p.cpu_seconds - self.cpu_seconds) / wall / self.cores * 100.0;
            sample.cpu_percent = cpu.max(0.0);
            sample.rss_bytes = p.rss_bytes;
            self.cpu_seconds = p.cpu_seconds;
        }
        self.at = Instant::now();
        if let Some(e) = engine {
            sample.queue_tokens = e.queue_tokens;
            sample.batches = e.batches.saturating_sub(self.batches.0);
            sample.batch_items = e.batch_items.saturating_sub(self.batches.1);
            self.batches = (e.batches, e.batch_items);
            if !e.cache.is_empty() {
                sample.cache = e.cache.iter().map(|t| self.since_last(t)).collect();
                self.cache = e.cache;
            }
        }
        sample
    }

    /// One tier's lookups since the last reading.
    fn since_last(&self, now: &TierSecond) -> TierSecond {
        let before = self.cache.iter().find(|p| p.tier == now.tier);
        TierSecond {
            tier: now.tier,
            hits: now.hits.saturating_sub(before.map_or(0, |b| b.hits)),
            misses: now.misses.saturating_sub(before.map_or(0, |b| b.misses)),
        }
    }
}
