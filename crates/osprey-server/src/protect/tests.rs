//! The middleware in front of the real router, in process and on tokio's paused
//! clock: which routes need which scope, the headers of a rate-limited answer,
//! per-input limits charged by the handlers, and the deadline header. Admission
//! control's own decisions are tested in the engine.

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
        ..AuthConfig::default()
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
    // As the server records it: this machine's loopback is the peer.
    let mut req = req;
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40_000,
        ))));
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
    // Probes are open by default (the model is not loaded: 503).
    assert_eq!(status(&s, "GET", "/health/ready", None).await, 503);
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
async fn bad_deadline_headers_are_400() {
    let s = state(&AuthConfig::default(), &LimitsConfig::default());
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

#[tokio::test]
async fn probes_are_open_unless_public_probes_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = state(&auth_on(&dir, false), &LimitsConfig::default());
    let closed = state(
        &AuthConfig {
            public_probes: false,
            ..auth_on(&dir, false)
        },
        &LimitsConfig::default(),
    );
    // Nothing is loaded: readiness says so (503), unknown models are 404.
    let probes = [
        ("/health/ready", 503),
        ("/v2/health/live", 200),
        ("/v2/health/ready", 503),
        ("/v2/models/m/ready", 404),
        ("/v2/models/m/versions/1/ready", 404),
    ];
    for (path, answer) in probes {
        assert_eq!(status(&open, "GET", path, None).await, answer, "{path}");
        assert_eq!(
            status(&open, "HEAD", path, None).await,
            answer,
            "HEAD {path}"
        );
        assert_eq!(status(&closed, "GET", path, None).await, 401, "{path}");
        assert_eq!(
            status(&closed, "GET", path, Some(INFER)).await,
            answer,
            "{path}"
        );
    }
    // Liveness is open either way.
    assert_eq!(status(&closed, "GET", "/health/live", None).await, 200);
    // Only the probes: model metadata, other methods and look-alikes still need a key.
    for (method, path) in [
        ("GET", "/v2/models/m"),
        ("POST", "/v2/models/m/ready"),
        ("GET", "/v2/models/m/infer"),
        ("GET", "/v2/models//ready"),
        ("GET", "/v2/models/m/x/ready"),
        ("GET", "/v2/models/m/versions//ready"),
        ("GET", "/health/ready/x"),
    ] {
        assert_eq!(
            status(&open, method, path, None).await,
            401,
            "{method} {path}"
        );
    }
}

/// A dashboard request as a browser sends it: a cookie, no credentials header.
async fn browse(
    state: &AppState,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> axum::response::Response {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("{}={c}", session::COOKIE));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("request");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [192, 0, 2, 1],
            40_000,
        ))));
    crate::router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible")
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml");

/// The session id a response set, if it set one.
fn set_cookie(r: &axum::response::Response) -> Option<String> {
    let v = r.headers().get("set-cookie")?.to_str().ok()?;
    let value = v.strip_prefix("osprey_dashboard=")?.split(';').next()?;
    (!value.is_empty()).then(|| value.to_owned())
}

async fn text(r: axum::response::Response) -> String {
    let body = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(start_paused = true)]
async fn dashboard_login_gives_a_session_for_the_dashboard_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = AuthConfig {
        dashboard_session_secs: 600,
        ..auth_on(&dir, false)
    };
    let s = state(&auth, &LimitsConfig::default());

    // A browser without a session gets the login form; a script gets a 401.
    let r = browse(&s, "GET", "/dashboard", None, &[HTML], None).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    assert!(text(r).await.contains(r#"action="/dashboard/login""#));
    assert_eq!(status(&s, "GET", "/dashboard", None).await, 401);
    assert_eq!(status(&s, "GET", "/dashboard/data", None).await, 401);

    // Wrong key, infer key, empty form: the page again, with why.
    for (form, code, why) in [
        ("key=osp_wrong_key_000000000", 401, "invalid API key"),
        ("key=osp_test_infer_0123456789", 403, "admin"),
        ("key=", 401, "paste"),
    ] {
        let r = browse(&s, "POST", "/dashboard/login", None, &[FORM], Some(form)).await;
        assert_eq!(r.status(), code, "{form}");
        assert!(set_cookie(&r).is_none(), "{form}");
        let page = text(r).await;
        assert!(page.contains(why), "{form}: {page}");
        assert!(!page.contains("osp_wrong_key"), "the key is not echoed");
    }

    // The admin key: a session cookie, and back to the dashboard.
    let form = format!("key={ADMIN}");
    let r = browse(&s, "POST", "/dashboard/login", None, &[FORM], Some(&form)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/dashboard");
    let cookie_header = r.headers()["set-cookie"].to_str().expect("text").to_owned();
    assert!(
        cookie_header.ends_with("; Path=/dashboard; Max-Age=600; HttpOnly; SameSite=Strict"),
        "{cookie_header}"
    );
    let id = set_cookie(&r).expect("a session id");
    assert!(!id.contains(ADMIN) && id.len() == 43, "an opaque id: {id}");

    // The cookie opens the dashboard (with a logout) and its data...
    let r = browse(&s, "GET", "/dashboard", Some(&id), &[HTML], None).await;
    assert_eq!(r.status(), 200);
    assert!(text(r).await.contains(r#"action="/dashboard/logout""#));
    assert_eq!(
        browse(&s, "GET", "/dashboard/data", Some(&id), &[], None)
            .await
            .status(),
        200
    );
    // ...and nothing else.
    for (method, path) in [
        ("POST", "/embed"),
        ("POST", "/v1/embeddings"),
        ("GET", "/admin/stats"),
        ("GET", "/info"),
        ("GET", "/metrics"),
    ] {
        let r = browse(&s, method, path, Some(&id), &[], Some("{}")).await;
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    // A header decides when there is one, cookie or not.
    let r = browse(
        &s,
        "GET",
        "/dashboard/data",
        Some(&id),
        &[("authorization", "Bearer osp_wrong_key_000000000")],
        None,
    )
    .await;
    assert_eq!(r.status(), 401);

    // The session expires.
    tokio::time::advance(Duration::from_secs(601)).await;
    let r = browse(&s, "GET", "/dashboard", Some(&id), &[HTML], None).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .is_ok_and(|v| v.contains("Max-Age=0")),
        "a stale cookie is cleared"
    );
    assert!(text(r).await.contains("session has ended"));

    // Logout ends a session at once, server-side.
    let r = browse(&s, "POST", "/dashboard/login", None, &[FORM], Some(&form)).await;
    let id = set_cookie(&r).expect("a session id");
    let r = browse(&s, "POST", "/dashboard/logout", Some(&id), &[FORM], None).await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .is_ok_and(|v| v.contains("Max-Age=0")),
        "the browser forgets it"
    );
    assert_eq!(
        browse(&s, "GET", "/dashboard/data", Some(&id), &[], None)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn logins_from_other_sites_and_odd_bodies_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = state(&auth_on(&dir, false), &LimitsConfig::default());
    let form = format!("key={ADMIN}");
    let host = ("host", "osprey.test:8080");
    for (origin, expect) in [
        ("http://osprey.test:8080", 303),
        ("https://osprey.test:8080", 303),
        ("http://evil.test", 403),
        ("http://osprey.test:9999", 403),
        ("null", 403),
    ] {
        let r = browse(
            &s,
            "POST",
            "/dashboard/login",
            None,
            &[FORM, host, ("origin", origin)],
            Some(&form),
        )
        .await;
        assert_eq!(r.status(), expect, "origin {origin}");
    }
    let r = browse(
        &s,
        "POST",
        "/dashboard/login",
        None,
        &[FORM, ("sec-fetch-site", "cross-site")],
        Some(&form),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = browse(
        &s,
        "POST",
        "/dashboard/logout",
        None,
        &[FORM, host, ("origin", "http://evil.test")],
        None,
    )
    .await;
    assert_eq!(r.status(), 403);

    // JSON works too, and answers in JSON.
    let json = ("content-type", "application/json");
    let body = format!(r#"{{"key":"{ADMIN}"}}"#);
    let r = browse(&s, "POST", "/dashboard/login", None, &[json], Some(&body)).await;
    assert_eq!(r.status(), 200);
    assert!(set_cookie(&r).is_some());
    assert!(text(r).await.contains("expires_in"));
    for (headers, body, code) in [
        (&[json][..], r#"{"key":"#, 400),
        (&[json][..], r#"{"key":"x","more":1}"#, 400),
        (&[("content-type", "text/plain")][..], "key", 415),
        (&[][..], "key", 415),
        (&[FORM][..], "key=%ff%fe", 400),
    ] {
        let r = browse(&s, "POST", "/dashboard/login", None, headers, Some(body)).await;
        assert_eq!(r.status(), code, "{body}");
    }
    let big = format!("key={}", "a".repeat(20_000));
    let r = browse(&s, "POST", "/dashboard/login", None, &[FORM], Some(&big)).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        browse(&s, "PUT", "/dashboard/login", None, &[], None)
            .await
            .status(),
        405
    );
    assert_eq!(
        browse(&s, "GET", "/dashboard/login", None, &[], None)
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn failed_logins_count_against_the_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = LimitsConfig {
        auth_failures_per_second: 0.1,
        auth_failures_burst: 2,
        ..LimitsConfig::default()
    };
    let s = state(&auth_on(&dir, false), &limits);
    let wrong = "key=osp_wrong_key_000000000";
    for _ in 0..2 {
        let r = browse(&s, "POST", "/dashboard/login", None, &[FORM], Some(wrong)).await;
        assert_eq!(r.status(), 401);
    }
    let form = format!("key={ADMIN}");
    let r = browse(&s, "POST", "/dashboard/login", None, &[FORM], Some(&form)).await;
    assert_eq!(r.status(), 429, "throttled before the key is checked");
    assert!(r.headers().contains_key("retry-after"));
    assert!(text(r).await.contains(r#"action="/dashboard/login""#));
}

#[tokio::test]
async fn no_login_when_sessions_are_off_or_auth_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let off = state(
        &AuthConfig {
            dashboard_session_secs: 0,
            ..auth_on(&dir, false)
        },
        &LimitsConfig::default(),
    );
    let form = format!("key={ADMIN}");
    let r = browse(&off, "POST", "/dashboard/login", None, &[FORM], Some(&form)).await;
    assert_eq!(r.status(), 401, "an admin route like any other");
    let r = browse(&off, "GET", "/dashboard", None, &[HTML], None).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/json"))
    );
    assert_eq!(status(&off, "GET", "/dashboard", Some(ADMIN)).await, 200);

    // With auth off (and a local client), the dashboard needs no login.
    let open = state(&AuthConfig::default(), &LimitsConfig::default());
    assert_eq!(status(&open, "GET", "/dashboard", None).await, 200);
    assert_eq!(status(&open, "POST", "/dashboard/login", None).await, 404);
}
