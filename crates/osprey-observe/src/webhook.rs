//! Alert delivery: each event POSTed as JSON, retried with doubling backoff. One
//! task delivers in order, so an alert's resolution never overtakes its firing.
//!
//! The queue in front of it is bounded (`alerts.webhook_queue`): while the
//! receiver is down, the oldest waiting alert is dropped (and counted) rather than
//! memory growing for as long as the outage lasts. Redirects are not followed: a
//! redirect could send the alert (and the URL's token) to another host. Nothing
//! logged names the URL: its path or query often holds the receiver's secret.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use osprey_metrics::event::name::ALERT_DELIVERIES;
use osprey_metrics::event::{AlertDelivered, AlertDeliveryFailed, AlertDropped, Event};
use tokio::sync::Notify;

use crate::alerts::AlertEvent;
use crate::config::{AlertsConfig, ConfigError};

/// Alerts waiting for delivery, oldest first, at most `capacity`.
struct Queue {
    waiting: Mutex<VecDeque<AlertEvent>>,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    wake: Notify,
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Self {
            waiting: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<AlertEvent>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event`; when full, drops the oldest waiting alert and returns it.
    fn push(&self, event: AlertEvent) -> Option<AlertEvent> {
        let dropped = {
            let mut waiting = self.lock();
            let dropped = (waiting.len() >= self.capacity)
                .then(|| waiting.pop_front())
                .flatten();
            waiting.push_back(event);
            dropped
        };
        // A stored permit wakes the deliverer even if it is not waiting yet.
        self.wake.notify_one();
        if dropped.is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        dropped
    }

    /// The next alert; `None` once the sender is gone and the queue is empty.
    async fn pop(&self) -> Option<AlertEvent> {
        loop {
            if let Some(e) = self.lock().pop_front() {
                return Some(e);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            self.wake.notified().await;
        }
    }
}

/// Hands alerts to the delivery task; dropping it ends the task once the queue
/// is delivered.
pub struct Sender(Arc<Queue>);

impl Sender {
    pub fn send(&self, event: AlertEvent) {
        if let Some(old) = self.0.push(event) {
            metrics::counter!(ALERT_DELIVERIES, "result" => "queue_full").increment(1);
            tracing::warn!(
                alert = old.key,
                dropped = self.dropped(),
                "alert webhook queue full: dropped the oldest alert"
            );
        }
    }

    /// Alerts dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

/// The client every delivery uses: the timeout, no redirects, and the CAs of
/// `webhook_ca_file` instead of the built-in roots when it is set.
pub(crate) fn client(cfg: &AlertsConfig) -> Result<reqwest::Client, ConfigError> {
    let field = "alerts.webhook_ca_file";
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_millis(cfg.webhook_timeout_ms.max(1)))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &cfg.webhook_ca_file {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| ConfigError {
            field,
            rule: format!("cannot be read ({shown}: {e})"),
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError {
            field,
            rule: format!("is not a PEM CA bundle ({shown}: {})", chain(&e)),
        })?;
        if certs.is_empty() {
            return Err(ConfigError {
                field,
                rule: format!("holds no PEM certificate ({shown})"),
            });
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| ConfigError {
        field: if cfg.webhook_ca_file.is_some() {
            field
        } else {
            "alerts.webhook_url"
        },
        rule: format!("gives no HTTP client ({})", chain(&e)),
    })
}

/// Starts the delivery task; `None` (logged) when the URL or the client is
/// unusable, which a checked configuration never is.
pub fn spawn(cfg: &AlertsConfig, url: &str) -> Option<Sender> {
    let built = crate::config::webhook_url(url).and_then(|url| Ok((url, client(cfg)?)));
    let (url, client) = match built {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "alert webhook disabled");
            return None;
        }
    };
    let queue = Arc::new(Queue::new(cfg.webhook_queue));
    let retries = cfg.webhook_retries;
    let backoff = Duration::from_millis(cfg.webhook_backoff_ms.max(1));
    let waiting = queue.clone();
    tokio::spawn(async move {
        while let Some(event) = waiting.pop().await {
            deliver(&client, &url, &event, retries, backoff).await;
        }
    });
    Some(Sender(queue))
}

async fn deliver(
    client: &reqwest::Client,
    url: &reqwest::Url,
    event: &AlertEvent,
    retries: u32,
    backoff: Duration,
) {
    let mut wait = backoff;
    for attempt in 0..=retries {
        let Err(why) = post(client, url, event).await else {
            AlertDelivered { alert: event.key }.emit();
            return;
        };
        AlertDeliveryFailed {
            alert: event.key,
            attempt,
            error: &why,
        }
        .emit();
        if attempt < retries {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2).min(Duration::from_secs(60));
        }
    }
    AlertDropped {
        alert: event.key,
        attempts: retries.saturating_add(1),
    }
    .emit();
}

/// One delivery attempt; the error says why it failed, without the URL.
async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    event: &AlertEvent,
) -> Result<(), String> {
    match client.post(url.clone()).json(event).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        // The target (`Location`) is not logged: it may carry a token too.
        Ok(r) if r.status().is_redirection() => Err(format!(
            "status {} (redirects are not followed)",
            r.status()
        )),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(scrub(chain(&e.without_url()), url)),
    }
}

/// An error and its causes (`error sending request: ...: invalid peer
/// certificate: UnknownIssuer`): the top-level message alone rarely says why.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        // Some layers repeat their cause in their own message.
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Hides any part of the URL that may hold a secret, should a lower layer have
/// put it into its message (`without_url` only covers reqwest's own).
fn scrub(mut text: String, url: &reqwest::Url) -> String {
    text = text.replace(url.as_str(), "***");
    let parts = [
        url.password(),
        Some(url.username()),
        Some(url.path()),
        url.query(),
    ];
    // Shorter parts (`/`, a one-letter user) are no secret, and replacing them
    // would garble the message.
    for part in parts.into_iter().flatten().filter(|p| p.len() >= 4) {
        text = text.replace(part, "***");
    }
    text
}

#[cfg(test)]
mod tests;
