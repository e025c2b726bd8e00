//! The observer: the rolling statistics, the once-a-second sampler that closes each
//! second (CPU, memory, queue, batches, cache), the SLO status, and the alert
//! evaluator with its webhook.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use osprey_metrics::Gauge;
use tokio::sync::mpsc;

use super::alerts::{AlertBook, AlertEvent, AlertStatus, evaluate};
use super::config::ObserveConfig;
use super::process;
use super::slo::{self, SloStatus};
use super::stats::{RollingStats, Sample, TierSecond};
use crate::EngineSlot;

pub struct Observer {
    pub config: ObserveConfig,
    pub stats: RollingStats,
    /// Requests in flight (`osprey_requests_in_flight`), with metrics on.
    pub in_flight: Gauge,
    book: Mutex<AlertBook>,
    slo: Mutex<SloStatus>,
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
        let slow = Duration::from_secs_f64(config.slo.latency_ms.max(0.0) / 1000.0);
        Self {
            stats: RollingStats::new(slow),
            in_flight: Gauge::default(),
            book: Mutex::new(AlertBook::new(&config.alerts)),
            slo: Mutex::new(SloStatus::default()),
            profiling: AtomicBool::new(false),
            started: AtomicBool::new(false),
            config,
        }
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
    pub fn start(self: &Arc<Self>, engine: Arc<EngineSlot>) {
        if !self.config.metrics || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move { me.sample_every_second(engine).await });
        if self.config.alerts.enabled {
            let me = self.clone();
            let webhook = self
                .config
                .alerts
                .webhook_url
                .clone()
                .map(|url| super::webhook::spawn(&self.config.alerts, url));
            tokio::spawn(async move { me.evaluate_alerts(webhook).await });
        }
    }

    async fn sample_every_second(self: Arc<Self>, engine: Arc<EngineSlot>) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prev_cpu = process::sample().map_or(0.0, |p| p.cpu_seconds);
        let mut prev_wall = Instant::now();
        let mut prev_batches = (0u64, 0u64);
        let mut prev_cache: Vec<TierSecond> = Vec::new();
        loop {
            tick.tick().await;
            let mut sample = Sample::default();
            if let Some(p) = process::sample() {
                let wall = prev_wall.elapsed().as_secs_f64().max(1e-3);
                sample.cpu_percent = ((p.cpu_seconds - prev_cpu) / wall / cores * 100.0).max(0.0);
                sample.rss_bytes = p.rss_bytes;
                prev_cpu = p.cpu_seconds;
            }
            prev_wall = Instant::now();
            sample.in_flight = self.in_flight.get().max(0) as u64;
            if let Some(p) = engine.get() {
                sample.queue_tokens = p.engine().queued_tokens() as u64;
                let (b, i) = p.engine().batch_counts();
                sample.batches = b.saturating_sub(prev_batches.0);
                sample.batch_items = i.saturating_sub(prev_batches.1);
                prev_batches = (b, i);
                if let Some(cache) = p.cache() {
                    let now: Vec<TierSecond> = cache
                        .stats()
                        .tiers
                        .iter()
                        .map(|t| TierSecond {
                            tier: t.tier.label(),
                            hits: t.hits,
                            misses: t.misses,
                        })
                        .collect();
                    sample.cache = now
                        .iter()
                        .map(|t| {
                            let before = prev_cache.iter().find(|p| p.tier == t.tier);
                            TierSecond {
                                tier: t.tier,
                                hits: t.hits.saturating_sub(before.map_or(0, |b| b.hits)),
                                misses: t.misses.saturating_sub(before.map_or(0, |b| b.misses)),
                            }
                        })
                        .collect();
                    prev_cache = now;
                }
            }
            self.stats.roll(unix_ms() / 1000, sample);
            let status = slo::status(
                &self.config.slo,
                &self.stats.summary(self.config.slo.window_secs),
            );
            *lock(&self.slo) = status;
        }
    }

    async fn evaluate_alerts(self: Arc<Self>, webhook: Option<mpsc::UnboundedSender<AlertEvent>>) {
        let cfg = &self.config.alerts;
        let mut tick = tokio::time::interval(Duration::from_millis(cfg.eval_interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
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
                    let _ = tx.send(e);
                }
            }
        }
    }
}
