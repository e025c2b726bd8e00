//! `/metrics` scrapes, kept off the async workers and shared when they overlap.
//!
//! A scrape reads /proc (the open-file count lists a directory) and runs the cache's
//! pending maintenance: blocking work, so it runs on tokio's blocking pool. One
//! scrape renders at a time; a scrape that arrives while another renders waits for
//! it, and takes the next rendering that started after it arrived, so a flood of
//! scrapes costs about one rendering at a time and none sees stale figures. A
//! scraper that hangs up does not free the gate early: the rendering it started
//! runs to its end holding it, so hanging up and retrying cannot pile renderings
//! up on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("the metrics rendering failed: {0}")]
pub struct ScrapeError(#[from] tokio::task::JoinError);

struct Rendered {
    started: Instant,
    text: Bytes,
}

#[derive(Default)]
pub struct ScrapeGate {
    last: Mutex<Option<Rendered>>,
}

impl ScrapeGate {
    /// The output of `render`, run on the blocking pool, or of a rendering that
    /// started after this call.
    pub async fn scrape<F>(self: Arc<Self>, render: F) -> Result<Bytes, ScrapeError>
    where
        F: FnOnce() -> String + Send + 'static,
    {
        let arrived = Instant::now();
        // A task of its own, so dropping this future does not release the gate
        // while the rendering goes on.
        tokio::spawn(async move { self.render_once(arrived, render).await }).await?
    }

    async fn render_once<F>(&self, arrived: Instant, render: F) -> Result<Bytes, ScrapeError>
    where
        F: FnOnce() -> String + Send + 'static,
    {
        let mut last = self.last.lock().await;
        if let Some(r) = last.as_ref().filter(|r| r.started >= arrived) {
            return Ok(r.text.clone());
        }
        let started = Instant::now();
        let text = Bytes::from(tokio::task::spawn_blocking(render).await?);
        *last = Some(Rendered {
            started,
            text: text.clone(),
        });
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
