//! Alert delivery: each event POSTed as JSON, retried with doubling backoff. One
//! task delivers in order, so an alert's resolution never overtakes its firing.

use std::time::Duration;

use osprey_metrics::event::{AlertDelivered, AlertDeliveryFailed, AlertDropped, Event};
use tokio::sync::mpsc;

use crate::alerts::AlertEvent;
use crate::config::AlertsConfig;

pub fn spawn(cfg: &AlertsConfig, url: String) -> mpsc::UnboundedSender<AlertEvent> {
    let (tx, mut rx) = mpsc::unbounded_channel::<AlertEvent>();
    let timeout = Duration::from_millis(cfg.webhook_timeout_ms.max(1));
    let retries = cfg.webhook_retries;
    let backoff = Duration::from_millis(cfg.webhook_backoff_ms.max(1));
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().timeout(timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "alert webhook client could not be built");
                return;
            }
        };
        while let Some(event) = rx.recv().await {
            deliver(&client, &url, &event, retries, backoff).await;
        }
    });
    tx
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    event: &AlertEvent,
    retries: u32,
    backoff: Duration,
) {
    let mut wait = backoff;
    for attempt in 0..=retries {
        let outcome = client.post(url).json(event).send().await;
        let why = match outcome {
            Ok(r) if r.status().is_success() => {
                AlertDelivered { alert: event.key }.emit();
                return;
            }
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.to_string(),
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
