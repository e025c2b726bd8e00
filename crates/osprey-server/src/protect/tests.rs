//! The middleware in front of the real router, in process and on tokio's paused
//! clock: which routes need which scope, the headers of a rate-limited answer, and
//! per-input limits charged by the handlers.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::auth::digest_hex;
use crate::{AppState, ServerConfig, install_metrics};

const INFER: &str = "osp_test_infer_0123456789";
const ADMIN: &str = "osp_test_admin_0123456789";

fn state(auth: &AuthConfig, limits: &LimitsConfig) -> AppState {
    let p = Protection::new(auth, limits).expect("valid protection");
    AppState::new(ServerConfig::default(), install_metrics()).with_protection(p)
}

fn auth_on(dir: &tempfile::TempDir, metrics_public: bool) -> AuthConfig {
    let path = dir.path().join("keys.toml");
    std::fs::write(
        &path,
        format!(
            "[[keys]]\nname = \"i\"\nscope = \"infer\"\nsha256 = \"{}\"\n[[keys]]\nname = \"a\"\nscope = \"admin\"\nsha256 = \"{}\"\n",
            digest_hex(INFER),
            digest_hex(ADMIN)
        ),
    )
    .expect("write keys");
    AuthConfig {
        enabled: true,
        keys_file: Some(path),
        keys_env: String::new(),
        metrics_public,
        jwt: None,
    }
}

async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> axum::response::Response {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    crate::router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible")
}

async fn status(state: &AppState, method: &str, path: &str, key: Option<&str>) -> StatusCode {
    call(state, method, path, key, None).await.status()
}

#[tokio::test]
async fn scopes_per_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = state(&auth_on(&dir, false), &LimitsConfig::default());
    // Open.
    assert_eq!(status(&s, "GET", "/health/live", None).await, 200);
    // Any valid key; without one, 401 with a Bearer challenge.
    let r = call(&s, "GET", "/info", None, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"].to_str().expect("text"),
        r#"Bearer realm="osprey""#
    );
    let r = call(&s, "GET", "/info", Some("osp_wrong_key_000000000"), None).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("text")
            .contains("invalid_token")
    );
    // Past auth, the model is not loaded: 503.
    assert_eq!(status(&s, "GET", "/info", Some(INFER)).await, 503);
    assert_eq!(status(&s, "GET", "/health/ready", None).await, 401);
    assert_eq!(status(&s, "GET", "/health/ready", Some(INFER)).await, 503);
    assert_eq!(status(&s, "GET", "/metrics", None).await, 401);
    assert_eq!(status(&s, "GET", "/metrics", Some(INFER)).await, 200);
    assert_eq!(status(&s, "POST", "/embed", None).await, 401);
    // Unknown routes do not tell an anonymous caller what exists.
    assert_eq!(status(&s, "GET", "/nope", None).await, 401);
    assert_eq!(status(&s, "GET", "/nope", Some(INFER)).await, 404);
    // Everything under /admin/ needs the admin scope, whatever the route.
    for path in [
        "/admin/cache",
        "/admin/stats",
        "/admin/anything/else",
        "/admin",
    ] {
        assert_eq!(status(&s, "GET", path, None).await, 401, "{path}");
        let r = call(&s, "DELETE", path, Some(INFER), None).await;
        assert_eq!(r.status(), 403, "{path}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .expect("text")
                .contains("insufficient_scope")
        );
        let past = status(&s, "GET", path, Some(ADMIN)).await;
        assert!(!matches!(past.as_u16(), 401 | 403), "{path}: {past}");
    }
    assert_eq!(
        status(&s, "GET", "/administrator", Some(INFER)).await,
        404,
        "prefix is /admin/"
    );

    let public = state(&auth_on(&dir, true), &LimitsConfig::default());
    assert_eq!(status(&public, "GET", "/metrics", None).await, 200);
    assert_eq!(status(&public, "GET", "/info", None).await, 401);
}

#[tokio::test]
async fn auth_off_serves_everything() {
    let s = state(&AuthConfig::default(), &LimitsConfig::default());
    assert_eq!(status(&s, "GET", "/metrics", None).await, 200);
    assert_eq!(status(&s, "GET", "/info", None).await, 503);
    let admin = status(&s, "GET", "/admin/cache", None).await;
    assert!(!matches!(admin.as_u16(), 401 | 403), "{admin}");
}

#[tokio::test(start_paused = true)]
async fn rate_limited_answers_carry_their_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = LimitsConfig {
        requests_per_second: 1,
        requests_burst: 2,
        ..LimitsConfig::default()
    };
    let s = state(&auth_on(&dir, false), &limits);
    let r = call(&s, "GET", "/info", Some(INFER), None).await;
    assert_eq!(r.status(), 503, "passed the limiter");
    assert_eq!(r.headers()["ratelimit-limit"], "2");
    assert_eq!(r.headers()["ratelimit-remaining"], "1");
    assert_eq!(status(&s, "GET", "/info", Some(INFER)).await, 503);
    let r = call(&s, "GET", "/info", Some(INFER), None).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    assert_eq!(r.headers()["ratelimit-reset"], "1");
    let body = axum::body::to_bytes(r.into_body(), 10_000)
        .await
        .expect("body");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert_eq!(json["error"]["code"], "rate_limited");

    // Keys have separate buckets; probes and metrics are not counted.
    assert_eq!(status(&s, "GET", "/info", Some(ADMIN)).await, 503);
    for _ in 0..5 {
        assert_eq!(status(&s, "GET", "/health/ready", Some(INFER)).await, 503);
        assert_eq!(status(&s, "GET", "/metrics", Some(INFER)).await, 200);
    }
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(status(&s, "GET", "/info", Some(INFER)).await, 429);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status(&s, "GET", "/info", Some(INFER)).await, 503);
}

#[tokio::test(start_paused = true)]
async fn inputs_are_charged_after_parsing() {
    let limits = LimitsConfig {
        items_per_second: 4,
        ..LimitsConfig::default()
    };
    let s = state(&AuthConfig::default(), &limits);
    let three = r#"{"inputs":["a","b","c"]}"#;
    let embed = |body| call(&s, "POST", "/embed", None, Some(body));
    assert_eq!(
        embed(three).await.status(),
        503,
        "3 of 4, then the model is not loaded"
    );
    let r = embed(three).await;
    assert_eq!(r.status(), 429, "1 left");
    assert_eq!(r.headers()["retry-after"], "1");
    // Malformed bodies are refused before any input is charged.
    assert_eq!(embed(r#"{"inputs":"#).await.status(), 400);
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(embed(three).await.status(), 503, "2 back + 1 left");
    assert_eq!(
        embed(r#"{"inputs":["1","2","3","4","5"]}"#).await.status(),
        413,
        "more than the burst"
    );
}

#[tokio::test]
async fn in_flight_cap_and_deadline_header() {
    let limits = LimitsConfig {
        max_in_flight: 1,
        ..LimitsConfig::default()
    };
    let s = state(&AuthConfig::default(), &limits);
    // Hold the only slot, as a long request would.
    let slot = s.protection.admission.admit().expect("first slot");
    let r = call(&s, "POST", "/embed", None, Some(r#"{"inputs":"a"}"#)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        s.protection.in_flight(),
        1,
        "the refused request gave its slot back"
    );
    // GETs are not inference: no slot needed.
    assert_eq!(status(&s, "GET", "/info", None).await, 503);
    drop(slot);
    assert_eq!(s.protection.in_flight(), 0);

    for bad in ["0", "-5", "soon", "1.5"] {
        let req = Request::post("/embed")
            .header("content-type", "application/json")
            .header(crate::DEADLINE_HEADER, bad)
            .body(Body::from(r#"{"inputs":"a"}"#))
            .expect("request");
        let r = crate::router(s.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        assert_eq!(r.status(), 400, "deadline {bad:?}");
    }
}

/// Two replicas at 1,000 tokens a second, each busy for `busy_ms` with 300 tokens.
fn load(busy_ms: u64, queued: usize) -> Load {
    let replica = osprey_engine::ReplicaLoad {
        tokens_per_second: 1000.0,
        busy_for: Duration::from_millis(busy_ms),
        running_tokens: if busy_ms > 0 { 300 } else { 0 },
        // Batch times stray by 5%: predictions are stretched by 10%.
        spread: 0.05,
    };
    Load {
        replicas: vec![replica; 2],
        queued_tokens: queued,
        max_queue_tokens: 10_000,
        max_batch_tokens: 4096,
        max_batch_requests: 32,
    }
}

#[tokio::test(start_paused = true)]
async fn unreachable_deadlines_are_refused_from_the_replicas_load() {
    let p = Protection::default();
    let ctx = |ms: u64| RequestContext {
        client: ClientKey::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        deadline: Some((
            tokio::time::Instant::now() + Duration::from_millis(ms),
            Duration::from_millis(ms),
        )),
    };
    let pr = &p;
    let check = move |load: Load, ms: u64| {
        REQUEST.scope(ctx(ms), async move {
            pr.check_queue(&load, 512, &["a short input"])
        })
    };
    // Alone on an idle replica, 5 tokens take 5 ms.
    check(load(0, 0), 400).await.expect("alone");
    // Both replicas busy for 300 ms more, then a batch of up to 32 such inputs (what
    // arrives meanwhile joins it): about half a second. Fits 1 s, not 400 ms.
    check(load(300, 0), 1000).await.expect("fits");
    let e = check(load(300, 0), 400).await.expect_err("does not fit");
    assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(e.to_string().contains("deadline of 400 ms"), "{e}");
    assert_eq!(e.into_response().headers()["retry-after"], "1");
    // Batches that stray more from their rate stretch predictions more: by half
    // their time, the same wait no longer fits 800 ms.
    check(load(300, 0), 800).await.expect("steady batches");
    let mut noisy = load(300, 0);
    for r in &mut noisy.replicas {
        r.spread = 0.5;
    }
    check(noisy, 800).await.expect_err("noisy batches");
    // Queued work waits its turn: 9,000 tokens take seconds, and the advice to
    // retry says so.
    let e = check(load(0, 9000), 400).await.expect_err("long queue");
    let retry: u64 = e.into_response().headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("whole seconds");
    assert!(retry >= 4, "{retry}");

    // Admitted requests count as outstanding until their ticket drops, also before
    // their inputs reach the queue: behind 900 such tokens, 400 ms is too short.
    let held = p
        .check_queue(&load(0, 0), 512, &["x".repeat(1792), "x".repeat(1792)])
        .expect("outside a request");
    assert_eq!(p.outstanding.load(Ordering::Acquire), 900);
    check(load(0, 0), 400)
        .await
        .expect_err("behind outstanding work");
    // What the replicas run is outstanding too, but counted once: by them.
    let running = Load {
        replicas: vec![
            osprey_engine::ReplicaLoad {
                tokens_per_second: 1000.0,
                busy_for: Duration::from_millis(10),
                running_tokens: 450,
                spread: 0.05,
            };
            2
        ],
        ..load(0, 0)
    };
    check(running, 400)
        .await
        .expect("the outstanding work is running");
    drop(held);
    assert_eq!(p.outstanding.load(Ordering::Acquire), 0);
    check(load(0, 0), 400).await.expect("alone again");

    // An idle engine takes a request even when its rate says it is too slow: only
    // running batches can correct the rate.
    let mut slow = load(0, 0);
    for r in &mut slow.replicas {
        r.tokens_per_second = 1.0;
    }
    check(slow.clone(), 400).await.expect("idle engine");
    slow.queued_tokens = 1;
    check(slow, 400).await.expect_err("not idle");
    // Rates not known yet (no batch timed): admitted.
    let mut unknown = load(0, 9000);
    unknown.replicas[1].tokens_per_second = 0.0;
    check(unknown, 400).await.expect("rates unknown");
    // Without a deadline, or outside a request, only the capacity counts.
    p.check_queue(&load(0, 9000), 512, &["a short input"])
        .expect("outside a request");
    // Over the queue's capacity: 429 before any tokenizing. An empty queue takes
    // any request (the engine then judges its real size).
    let big = vec!["x".repeat(4000); 8];
    let mut small = load(0, 100);
    small.max_queue_tokens = 4096;
    let e = p.check_queue(&small, 512, &big).expect_err("over capacity");
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    small.queued_tokens = 0;
    p.check_queue(&small, 512, &big).expect("empty queue");
}
