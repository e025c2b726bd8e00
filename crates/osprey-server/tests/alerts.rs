//! Alerts end to end: a real server whose (fake) replicas are made slow pushes p99 latency
//! over the objective; a real webhook receiver must get exactly one alert (after
//! a failed first delivery is retried) and, once the model is fast again, exactly
//! one resolution of the same alert.

#![allow(clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use common::{client, get, post_json};
use osprey_engine::BatchingConfig;
use osprey_server::{AlertsConfig, ObserveConfig, Protection, ServerConfig, SloConfig};
use osprey_testkit::Script;
use serde_json::{Value, json};

#[derive(Default)]
struct Inbox {
    attempts: usize,
    accepted: Vec<Value>,
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, Json(body): Json<Value>) -> StatusCode {
    let mut inbox = inbox.lock().expect("inbox");
    inbox.attempts += 1;
    // The first delivery fails: the server must retry it.
    if inbox.attempts == 1 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    inbox.accepted.push(body);
    StatusCode::OK
}

async fn receiver() -> (String, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), inbox)
}

fn accepted(inbox: &Arc<Mutex<Inbox>>) -> Vec<Value> {
    inbox.lock().expect("inbox").accepted.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_model_fires_one_latency_alert_then_resolves_it() {
    let (hook, inbox) = receiver().await;
    let observe = ObserveConfig {
        slo: SloConfig {
            latency_ms: 50.0,
            ..SloConfig::default()
        },
        alerts: AlertsConfig {
            webhook_url: Some(hook),
            eval_interval_ms: 200,
            window_secs: 2,
            min_requests: 3,
            resolve_after: 3,
            // Only the latency rule is under test: nothing else may fire.
            anomaly_sigma: 0.0,
            cpu_percent: 0.0,
            memory_mb: 0.0,
            latency_ms: 50.0,
            critical_factor: 1000.0,
            webhook_backoff_ms: 50,
            ..AlertsConfig::default()
        },
        ..ObserveConfig::default()
    };
    // Fake replicas: the test scripts how long each batch takes.
    let script = Script::new();
    let server = common::start_fake(
        ServerConfig::default(),
        BatchingConfig::default(),
        Protection::default(),
        Some(observe),
        &script,
    );
    let c = client();
    let url = format!("{}/embed", server.base);
    let mut n = 0u64;
    let mut send = async || {
        n += 1;
        let r = post_json(
            &c,
            &url,
            json!({"inputs": format!("alert test sentence {n}")}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    };

    // Slow: each batch takes 120 ms.
    script.set_latency(Duration::from_millis(120));
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted(&inbox).is_empty() {
        assert!(Instant::now() < deadline, "no alert within 60 s");
        send().await;
    }
    let alerts = get(&c, &format!("{}/admin/alerts", server.base)).await;
    assert_eq!(
        alerts.json["active"][0]["key"], "latency",
        "{}",
        alerts.text
    );

    // Fast again (as fast as the real model): the alert resolves once the window
    // holds only fast requests.
    script.set_latency(Duration::from_millis(10));
    while accepted(&inbox).len() < 2 {
        assert!(Instant::now() < deadline, "no resolution within 60 s");
        send().await;
    }
    // Nothing more arrives: no duplicate of either message.
    for _ in 0..15 {
        send().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let got = accepted(&inbox);
    assert_eq!(got.len(), 2, "{got:#?}");
    let (fired, resolved) = (&got[0], &got[1]);
    assert_eq!(fired["status"], "firing", "{fired}");
    assert_eq!(fired["key"], "latency");
    assert_eq!(fired["severity"], "warning");
    assert!(fired["value"].as_f64().unwrap_or(0.0) > 50.0, "{fired}");
    assert_eq!(fired["threshold"], 50.0);
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(
        resolved["id"], fired["id"],
        "the resolution names its alert"
    );
    assert!(resolved["resolved_at_ms"].as_u64() >= fired["started_at_ms"].as_u64());
    assert_eq!(
        inbox.lock().expect("inbox").attempts,
        3,
        "one failed delivery retried, then one resolution"
    );

    let alerts = get(&c, &format!("{}/admin/alerts", server.base)).await;
    assert_eq!(alerts.json["active"], json!([]), "{}", alerts.text);
    assert_eq!(
        alerts.json["recent"][0]["id"], fired["id"],
        "{}",
        alerts.text
    );
    let stats = get(&c, &format!("{}/admin/stats", server.base)).await;
    let burn = stats.json["slo"]["latency"]["burn_rate"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        burn > 1.0,
        "slow requests burn the latency budget: {}",
        stats.text
    );
}
