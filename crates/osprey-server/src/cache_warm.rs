//! Filling the result cache ahead of traffic: a list of texts (or a file of
//! them, one per line) embedded in the background through a model's pipeline,
//! at the pace its admission control allows, with progress to read. One job at
//! a time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osprey_engine::{EmbedOptions, EngineError, Pipeline};
use serde::Serialize;

/// Texts sent to the pipeline at once: a batch's worth, so live requests
/// interleave with the job.
const CHUNK: usize = 32;
/// How long a chunk the model refused (busy, queue full) waits to try again.
const BACK_OFF: Duration = Duration::from_millis(200);
/// Tries per chunk before its texts are counted as failed.
const TRIES: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WarmState {
    /// No job has run since start.
    #[default]
    Idle,
    Running,
    Done,
}

/// A job's progress, as `GET /admin/cache/warm` shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WarmProgress {
    pub state: WarmState,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    pub total: usize,
    /// Texts now in the cache (embedded, or found there).
    pub done: usize,
    /// Texts that could not be embedded (too long, or refused every try).
    pub failed: usize,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Default)]
pub struct Warming {
    progress: Mutex<(WarmProgress, Option<Instant>)>,
}

impl Warming {
    fn lock(&self) -> std::sync::MutexGuard<'_, (WarmProgress, Option<Instant>)> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn progress(&self) -> WarmProgress {
        let g = self.lock();
        let mut p = g.0.clone();
        if p.state == WarmState::Running
            && let Some(started) = g.1
        {
            p.elapsed_ms = started.elapsed().as_millis() as u64;
        }
        p
    }

    /// Starts a job unless one runs; returns its first progress, or `None`.
    pub fn start(
        self: &Arc<Self>,
        model: String,
        pipeline: Arc<Pipeline>,
        texts: Vec<String>,
        max_chars: usize,
    ) -> Option<WarmProgress> {
        {
            let mut g = self.lock();
            if g.0.state == WarmState::Running {
                return None;
            }
            *g = (
                WarmProgress {
                    state: WarmState::Running,
                    model,
                    total: texts.len(),
                    ..WarmProgress::default()
                },
                Some(Instant::now()),
            );
        }
        let me = self.clone();
        tokio::spawn(async move { me.run(pipeline, texts, max_chars).await });
        Some(self.progress())
    }

    async fn run(self: Arc<Self>, pipeline: Arc<Pipeline>, texts: Vec<String>, max_chars: usize) {
        let (fit, too_long): (Vec<String>, Vec<String>) = texts
            .into_iter()
            .partition(|t| t.chars().count() <= max_chars);
        if !too_long.is_empty() {
            let mut g = self.lock();
            g.0.failed += too_long.len();
            g.0.last_error = Some(format!(
                "{} texts longer than server.max_input_chars ({max_chars}) were skipped",
                too_long.len()
            ));
        }
        for chunk in fit.chunks(CHUNK) {
            let outcome = embed_chunk(&pipeline, chunk).await;
            let mut g = self.lock();
            match outcome {
                Ok(()) => g.0.done += chunk.len(),
                Err(e) => {
                    g.0.failed += chunk.len();
                    g.0.last_error = Some(e.to_string());
                }
            }
        }
        let mut g = self.lock();
        g.0.state = WarmState::Done;
        if let Some(started) = g.1 {
            g.0.elapsed_ms = started.elapsed().as_millis() as u64;
        }
        tracing::info!(
            model = %g.0.model, done = g.0.done, failed = g.0.failed,
            ms = g.0.elapsed_ms, "cache warmed"
        );
    }
}

/// Embeds one chunk, waiting while the model is too busy to take it.
async fn embed_chunk(pipeline: &Pipeline, chunk: &[String]) -> Result<(), EngineError> {
    let mut tries = 0;
    loop {
        match pipeline.embed(chunk, EmbedOptions::default()).await {
            Ok(_) => return Ok(()),
            Err(
                e @ (EngineError::Busy { .. }
                | EngineError::Overloaded { .. }
                | EngineError::QueueTooLong { .. }
                | EngineError::DeadlineExceeded { .. }),
            ) => {
                tries += 1;
                if tries >= TRIES {
                    return Err(e);
                }
                tokio::time::sleep(BACK_OFF).await;
            }
            Err(e) => return Err(e),
        }
    }
}
