//! With auth on: health probes without credentials (or not, with
//! `auth.public_probes = false`), and the dashboard's login over HTTP and in
//! headless Chromium: a session cookie for the dashboard only, that expires, ends
//! at logout, and is marked Secure over TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

use super::*;

/// Auth on as `auth` says, on fake replicas: these tests are about the guard, not
/// the model.
fn login_server(auth: AuthConfig, tls: bool) -> TestServer {
    let limits = LimitsConfig {
        max_queue_ms: 0,
        ..LimitsConfig::default()
    };
    let p = Protection::new(&auth, &limits).expect("auth config");
    let server = if tls {
        ServerConfig {
            tls: TlsConfig {
                cert_file: Some(test_data("tls-server.pem")),
                key_file: Some(test_data("tls-server-key.pem")),
            },
            ..small_limits()
        }
    } else {
        small_limits()
    };
    start_fake(server, BatchingConfig::default(), p, None, &Script::new())
}

/// Sessions of an hour; probes public (the default).
fn sessions_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let auth = AuthConfig {
            dashboard_session_secs: 3600,
            ..auth_config("dashboard", false)
        };
        login_server(auth, false)
    })
}

/// Sessions of one second, and probes that need a key.
fn strict_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let auth = AuthConfig {
            dashboard_session_secs: 1,
            public_probes: false,
            ..auth_config("dashboard-strict", false)
        };
        login_server(auth, false)
    })
}

/// A client that does not follow redirects, so the login's answer can be read.
fn no_redirects(tls: bool) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60));
    let b = if tls {
        let pem = std::fs::read(test_data("tls-ca.pem")).expect("test CA");
        b.use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
    } else {
        b
    };
    b.build().expect("HTTP client")
}

async fn login_form(c: &reqwest::Client, base: &str, key: &str) -> Reply {
    let resp = c
        .post(format!("{base}/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={key}"))
        .send()
        .await
        .expect("send");
    Reply::read(resp).await
}

/// The session id a login set.
fn session_of(r: &Reply) -> String {
    let set = r.header("set-cookie").expect("a Set-Cookie");
    let value = set
        .strip_prefix("osprey_dashboard=")
        .and_then(|v| v.split(';').next())
        .expect("the session cookie");
    value.to_owned()
}

fn cookie(id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "cookie",
        HeaderValue::from_str(&format!("osprey_dashboard={id}")).expect("header"),
    );
    h
}

async fn get_with(c: &reqwest::Client, url: &str, headers: HeaderMap) -> Reply {
    Reply::read(c.get(url).headers(headers).send().await.expect("send")).await
}

#[tokio::test]
async fn probes_answer_without_a_key_unless_turned_off() {
    let _g = shared().await;
    let c = client();
    let name = DEFAULT_NAME;
    let probes = [
        "/health/ready".to_owned(),
        "/v2/health/live".to_owned(),
        "/v2/health/ready".to_owned(),
        format!("/v2/models/{name}/ready"),
        format!("/v2/models/{name}/versions/1/ready"),
    ];
    let open = sessions_server();
    let strict = strict_server();
    for path in &probes {
        assert_eq!(
            get(&c, &format!("{}{path}", open.base)).await.status,
            200,
            "{path}"
        );
        get(&c, &format!("{}{path}", strict.base))
            .await
            .assert_error(401, path);
        let r = Reply::read(
            c.get(format!("{}{path}", strict.base))
                .bearer_auth(INFER_KEY)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(r.status, 200, "{path} with a key: {}", r.text);
    }
    // What a public probe says: statuses only; no paths, errors, revisions or
    // queue numbers.
    let ready = get(&c, &format!("{}/health/ready", open.base)).await;
    assert_eq!(ready.json["status"], "ready", "{}", ready.text);
    assert_eq!(
        ready.json["components"]["model"],
        json!({"status": "ready"})
    );
    assert_eq!(ready.json["components"]["queue"], json!({"status": "ok"}));
    for detail in ["reason", "revision", "queued_tokens", "osp_"] {
        assert!(!ready.text.contains(detail), "{detail}: {}", ready.text);
    }
    // With a key, the same probe gets the details.
    let detailed = Reply::read(
        c.get(format!("{}/health/ready", open.base))
            .bearer_auth(INFER_KEY)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(detailed.status, 200, "{}", detailed.text);
    assert!(
        detailed.json["components"]["queue"]["capacity_tokens"].is_u64(),
        "{}",
        detailed.text
    );
    // A wrong key is refused, not quietly served the short answer.
    let wrong = Reply::read(
        c.get(format!("{}/health/ready", open.base))
            .bearer_auth("osp_not-a-key")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    // Everything else still needs a key.
    for path in ["/info", &format!("/v2/models/{name}"), "/v1/models"] {
        get(&c, &format!("{}{path}", open.base))
            .await
            .assert_error(401, path);
    }
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_for_the_dashboard_only() {
    let _g = shared().await;
    let s = sessions_server();
    let c = no_redirects(false);
    let base = &s.base;

    // A browser without a session is offered the login form.
    let page = get_with(&c, &format!("{base}/dashboard"), {
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("text/html"));
        h
    })
    .await;
    assert_eq!(page.status, 401);
    assert!(
        page.text.contains(r#"action="/dashboard/login""#),
        "{}",
        page.text
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));

    // Wrong key, and an infer key: refused, saying why, no cookie.
    let r = login_form(&c, base, "osp_wrong_key_0123456789abcdef").await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("invalid API key"), "{}", r.text);
    assert!(!r.text.contains("osp_wrong_key"), "the key is not echoed");
    assert!(r.header("set-cookie").is_none());
    let r = login_form(&c, base, INFER_KEY).await;
    assert_eq!(r.status, 403);
    assert!(r.text.contains("admin"), "{}", r.text);

    // The admin key: a cookie with every attribute, and back to the dashboard.
    let r = login_form(&c, base, ADMIN_KEY).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/dashboard"));
    let set = r.header("set-cookie").expect("Set-Cookie").to_owned();
    for attribute in [
        "; Path=/dashboard",
        "; Max-Age=3600",
        "; HttpOnly",
        "; SameSite=Strict",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let id = session_of(&r);
    assert_eq!(id.len(), 43, "a random id: {id}");
    assert!(!set.contains(ADMIN_KEY) && !set.contains(&digest_hex(ADMIN_KEY)));

    let page = get_with(&c, &format!("{base}/dashboard"), cookie(&id)).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains(r#"action="/dashboard/logout""#));
    let data = get_with(&c, &format!("{base}/dashboard/data"), cookie(&id)).await;
    assert_eq!(data.status, 200, "{}", data.text);
    assert!(data.json.is_object());

    // The cookie is no credential anywhere else.
    let r = Reply::read(
        c.post(format!("{base}/v1/embeddings"))
            .headers(cookie(&id))
            .json(&json!({"input": "cookie"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(401, "a session cookie on /v1/embeddings");
    for path in ["/admin/stats", "/info", "/metrics"] {
        get_with(&c, &format!("{base}{path}"), cookie(&id))
            .await
            .assert_error(401, path);
    }

    // A JWT's session ends with the token.
    let token = jwt(&json!({"sub": "ops", "aud": "osprey", "exp": now() + 30, "scope": "admin"}));
    let r = Reply::read(
        c.post(format!("{base}/dashboard/login"))
            .json(&json!({"key": token}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secs = r.json["expires_in"].as_u64().expect("expires_in");
    assert!((1..=30).contains(&secs), "{secs}");
    assert!(
        r.header("set-cookie")
            .is_some_and(|v| v.contains(&format!("Max-Age={secs};"))),
        "{:?}",
        r.header("set-cookie")
    );

    // Logout ends the session on the server, and clears the cookie.
    let r = Reply::read(
        c.post(format!("{base}/dashboard/logout"))
            .headers(cookie(&id))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("set-cookie")
            .is_some_and(|v| v.starts_with("osprey_dashboard=;") && v.contains("Max-Age=0")),
        "{:?}",
        r.header("set-cookie")
    );
    get_with(&c, &format!("{base}/dashboard/data"), cookie(&id))
        .await
        .assert_error(401, "a session after logout");

    // Another site's form cannot log in.
    let r = Reply::read(
        c.post(format!("{base}/dashboard/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://evil.example")
            .body(format!("key={ADMIN_KEY}"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
}

#[tokio::test]
async fn sessions_expire() {
    let _g = shared().await;
    let s = strict_server();
    let c = no_redirects(false);
    let r = login_form(&c, &s.base, ADMIN_KEY).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(
        r.header("set-cookie")
            .is_some_and(|v| v.contains("Max-Age=1;"))
    );
    let id = session_of(&r);
    let url = format!("{}/dashboard/data", s.base);
    assert_eq!(get_with(&c, &url, cookie(&id)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get_with(&c, &url, cookie(&id)).await;
    r.assert_error(401, "an expired session");
    assert!(
        r.header("set-cookie")
            .is_some_and(|v| v.contains("Max-Age=0")),
        "the stale cookie is cleared"
    );
}

#[tokio::test]
async fn over_tls_the_cookie_is_secure() {
    let _g = shared().await;
    static S: OnceLock<TestServer> = OnceLock::new();
    let s = S.get_or_init(|| login_server(auth_config("dashboard-tls", false), true));
    let c = no_redirects(true);
    // The origin a browser would send over HTTPS (HTTP/2 names the host in the URI).
    let origin = s.base.clone();
    let r = Reply::read(
        c.post(format!("{}/dashboard/login", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .body(format!("key={ADMIN_KEY}"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let set = r.header("set-cookie").expect("Set-Cookie");
    assert!(set.ends_with("; Secure"), "{set}");
    assert!(set.contains("Max-Age=28800"), "the default, 8 hours: {set}");
}

/// Inference requests with the infer key until `stop`, so the dashboard has data.
fn traffic(base: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let c = client();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let _ = embed_with(&c, &base, Some(INFER_KEY), &format!("dashboard {i}")).await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test]
async fn dashboard_login_and_logout_in_headless_chromium() {
    let _g = shared().await;
    let s = sessions_server();
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(s.base.clone(), stop.clone());
    let base = s.base.clone();
    let wait = Duration::from_secs(30);
    let run = tokio::task::spawn_blocking(move || {
        let mut b = cdp::Browser::start();
        b.navigate(&format!("{base}/dashboard"));
        b.wait_for("login form", "!!document.getElementById('login')", wait);
        let submit = |key: &str| {
            format!(
                "document.getElementById('key').value = {}; \
                 document.querySelector('#login button').click(); true",
                json!(key)
            )
        };

        // A wrong key: the form again, saying why.
        b.eval(&submit("osp_wrong_key_0123456789abcdef"));
        let notice = b.wait_for(
            "refusal",
            "document.getElementById('notice') && document.getElementById('notice').textContent",
            wait,
        );
        assert!(
            notice
                .as_str()
                .is_some_and(|n| n.contains("invalid API key")),
            "{notice}"
        );

        // The admin key: the dashboard, drawing data.
        b.eval(&submit(ADMIN_KEY));
        let selftest = b.wait_for(
            "dashboard with data",
            "(() => { const e = document.getElementById('selftest'); if (!e) return null; \
             const s = JSON.parse(e.textContent); \
             return s.polls >= 2 && ((s.charts.rps || {})['req/s'] > 0) ? s : null; })()",
            wait,
        );
        assert_eq!(selftest["errors"], json!([]), "{selftest}");
        assert_eq!(
            b.eval("location.pathname"),
            Some(json!("/dashboard")),
            "redirected to the dashboard"
        );
        assert_eq!(
            b.eval("document.cookie"),
            Some(json!("")),
            "script cannot read the session cookie"
        );

        // Logout: back to the login form, and the session is gone.
        b.eval("document.getElementById('logout').click(); true");
        b.wait_for(
            "login form after logout",
            "!!document.getElementById('login') && location.pathname === '/dashboard'",
            wait,
        );
        let status = b.eval("fetch('/dashboard/data').then(r => r.status)");
        assert_eq!(status, Some(json!(401)));
    });
    let outcome = tokio::time::timeout(Duration::from_secs(180), run).await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("traffic");
    outcome
        .expect("the browser finished within 3 minutes")
        .expect("the browser test");
}
