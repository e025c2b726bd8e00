#![allow(clippy::expect_used)]

use std::sync::atomic::AtomicUsize;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post as route_post;

use super::*;
use crate::alerts::{AlertStatus, Severity};

fn event(id: &str) -> AlertEvent {
    AlertEvent {
        id: id.into(),
        key: "latency",
        status: AlertStatus::Firing,
        severity: Severity::Warning,
        summary: "test".into(),
        value: 1.0,
        threshold: 0.5,
        started_at_ms: 0,
        resolved_at_ms: None,
    }
}

#[derive(Default)]
struct Hits {
    hook: AtomicUsize,
    elsewhere: AtomicUsize,
    bodies: Mutex<Vec<String>>,
}

/// A real HTTP receiver on an ephemeral port: `/hook` accepts, `/redirect`
/// answers 307 to `/elsewhere`, which would accept too.
async fn receiver() -> (String, Arc<Hits>) {
    let hits = Arc::new(Hits::default());
    let (h1, h2, h3) = (hits.clone(), hits.clone(), hits.clone());
    let app = axum::Router::new()
        .route(
            "/hook",
            route_post(move |body: String| async move {
                h1.hook.fetch_add(1, Ordering::SeqCst);
                h1.bodies.lock().expect("bodies").push(body);
                StatusCode::OK
            }),
        )
        .route(
            "/redirect",
            route_post(move || async move {
                h2.hook.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/elsewhere?token=T0KEN")],
                )
                    .into_response()
            }),
        )
        .route(
            "/elsewhere",
            route_post(move || async move {
                h3.elsewhere.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

fn url(s: &str) -> reqwest::Url {
    reqwest::Url::parse(s).expect("test URL")
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_it() {
    let tx = Sender(Arc::new(Queue::new(3)));
    for i in 0..5 {
        tx.send(event(&i.to_string()));
    }
    assert_eq!(tx.dropped(), 2);
    let queue = tx.0.clone();
    drop(tx);
    let mut left = Vec::new();
    while let Some(e) = queue.pop().await {
        left.push(e.id);
    }
    assert_eq!(left, ["2", "3", "4"], "the newest are kept, in order");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (base, hits) = receiver().await;
    let client = client(&AlertsConfig::default()).expect("client");
    let why = post(&client, &url(&format!("{base}/redirect")), &event("a"))
        .await
        .expect_err("a redirect is a failed delivery");
    assert!(why.contains("307") && why.contains("not followed"), "{why}");
    assert!(!why.contains("T0KEN"), "{why}");
    assert_eq!(hits.hook.load(Ordering::SeqCst), 1);
    assert_eq!(hits.elsewhere.load(Ordering::SeqCst), 0, "followed");
}

#[tokio::test]
async fn failures_never_name_the_url() {
    let (base, _hits) = receiver().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let client = client(&AlertsConfig {
        webhook_timeout_ms: 2000,
        ..AlertsConfig::default()
    })
    .expect("client");
    let secret = "/services/T0KEN-PATH?token=T0KEN-QUERY";
    let port = base.rsplit(':').next().unwrap_or_default();
    for (target, expect) in [
        (format!("http://127.0.0.1:{closed}{secret}"), "connect"),
        // TLS to a plain-HTTP receiver: the handshake fails.
        (format!("https://127.0.0.1:{port}{secret}"), "error"),
        (
            format!("http://user:T0KEN-PASS@127.0.0.1:{closed}{secret}"),
            "connect",
        ),
    ] {
        let why = post(&client, &url(&target), &event("a"))
            .await
            .expect_err("nothing accepts");
        assert!(!why.contains("T0KEN"), "{target}: {why}");
        assert!(why.contains(expect), "{target}: {why}");
    }
}

#[test]
fn scrub_hides_every_part_of_the_url() {
    let u = url("https://bob:T0KEN-PASS@hooks.example/T0KEN-PATH?T0KEN-QUERY");
    let text = format!(
        "failed for {u} (path {}, query {}, pass {}, user bob)",
        u.path(),
        u.query().unwrap_or_default(),
        u.password().unwrap_or_default()
    );
    let clean = scrub(text, &u);
    assert!(!clean.contains("T0KEN"), "{clean}");
    assert!(clean.contains("user bob"), "short parts stay: {clean}");
}

#[tokio::test]
async fn spawned_task_delivers_in_order_and_ends_with_its_sender() {
    let (base, hits) = receiver().await;
    let cfg = AlertsConfig {
        webhook_queue: 16,
        ..AlertsConfig::default()
    };
    let tx = spawn(&cfg, &format!("{base}/hook")).expect("webhook");
    for id in ["one", "two", "three"] {
        tx.send(event(id));
    }
    let queue = tx.0.clone();
    drop(tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hits.hook.load(Ordering::SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ids: Vec<String> = hits
        .bodies
        .lock()
        .expect("bodies")
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).expect("JSON body");
            v["id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(ids, ["one", "two", "three"]);
    // The task let go of the queue once the sender was gone.
    while Arc::strong_count(&queue) > 1 {
        assert!(tokio::time::Instant::now() < deadline, "task still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(spawn(&cfg, "ftp://x/T0KEN").is_none());
}
