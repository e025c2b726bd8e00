//! A real embedding-shaped HTTP server for the tests, on 127.0.0.1:0, whose
//! delays, stalls, failures and credentials the test controls.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use osprey_bench::cli::BenchArgs;

/// What the server does with each (non-probe) request; `n` counts them from 1.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Every request waits this long.
    pub delay: Duration,
    /// Every `k`-th request waits this long instead.
    pub slow_every: Option<(u64, Duration)>,
    /// At request `n`, the whole server stops answering for this long.
    pub stall: Option<(u64, Duration)>,
    /// Every `k`-th request gets 429 with Retry-After.
    pub fail_every: Option<u64>,
    /// Requests must carry `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Most requests served at once; the others queue.
    pub capacity: Option<usize>,
    pub tei: bool,
    pub openai: bool,
}

impl Behaviour {
    pub fn tei(delay: Duration) -> Self {
        Self {
            delay,
            tei: true,
            openai: true,
            ..Default::default()
        }
    }
}

pub struct Seen {
    pub requests: AtomicU64,
    pub texts: Mutex<Vec<String>>,
    pub bodies_openai: AtomicU64,
}

struct Inner {
    b: Behaviour,
    seen: Arc<Seen>,
    paused_until: Mutex<Option<tokio::time::Instant>>,
    permits: Option<tokio::sync::Semaphore>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests counted by the server (the API probe excluded).
    pub fn requests(&self) -> u64 {
        self.seen.requests.load(Ordering::SeqCst)
    }

    pub fn texts(&self) -> Vec<String> {
        self.seen.texts.lock().expect("lock").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn start(b: Behaviour) -> TestServer {
    let seen = Arc::new(Seen {
        requests: AtomicU64::new(0),
        texts: Mutex::new(Vec::new()),
        bodies_openai: AtomicU64::new(0),
    });
    let inner = Arc::new(Inner {
        permits: b.capacity.map(tokio::sync::Semaphore::new),
        b: b.clone(),
        seen: seen.clone(),
        paused_until: Mutex::new(None),
    });
    let mut app = axum::Router::new();
    if b.tei {
        app = app.route("/embed", post(|s, h, body| handle(s, h, body, false)));
    }
    if b.openai {
        app = app.route(
            "/v1/embeddings",
            post(|s, h, body| handle(s, h, body, true)),
        );
    }
    let app = app.with_state(inner);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server started");
    TestServer {
        addr,
        seen,
        stop: Some(tx),
    }
}

fn vectors(n: usize, openai: bool) -> String {
    if openai {
        let data: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"object":"embedding","index":{i},"embedding":[0.1,0.2,0.3]}}"#))
            .collect();
        format!(
            r#"{{"object":"list","data":[{}],"model":"test","usage":{{"prompt_tokens":1,"total_tokens":1}}}}"#,
            data.join(",")
        )
    } else {
        format!("[{}]", vec!["[0.1,0.2,0.3]"; n].join(","))
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(r#"{{"error":{{"type":"test","message":"{message}"}}}}"#);
    let mut r = (status, [("content-type", "application/json")], body).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    r
}

async fn handle(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
    openai: bool,
) -> Response {
    if let Some(key) = &s.b.api_key {
        let want = format!("Bearer {key}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong key");
        }
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "malformed JSON");
    };
    let field = if openai { "input" } else { "inputs" };
    let Some(texts) = v[field].as_array() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "no inputs");
    };
    let texts: Vec<String> = texts
        .iter()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    let ok = (
        StatusCode::OK,
        [("content-type", "application/json")],
        vectors(texts.len(), openai),
    );
    if texts == ["osprey bench probe"] {
        return ok.into_response();
    }
    let n = s.seen.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if openai {
        s.seen.bodies_openai.fetch_add(1, Ordering::SeqCst);
    }
    s.seen.texts.lock().expect("lock").extend(texts);
    if let Some((at, dur)) = s.b.stall
        && n == at
    {
        *s.paused_until.lock().expect("lock") = Some(tokio::time::Instant::now() + dur);
    }
    let paused = *s.paused_until.lock().expect("lock");
    if let Some(until) = paused {
        tokio::time::sleep_until(until).await;
    }
    let _permit = match &s.permits {
        Some(p) => Some(p.acquire().await.expect("semaphore")),
        None => None,
    };
    let delay = match s.b.slow_every {
        Some((k, slow)) if n % k == 0 => slow,
        _ => s.b.delay,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if s.b.fail_every.is_some_and(|k| n % k == 0) {
        return error(StatusCode::TOO_MANY_REQUESTS, "queue full");
    }
    ok.into_response()
}

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    bench: BenchArgs,
}

/// Parses `osprey bench` flags as the binary would.
pub fn args(flags: &[&str]) -> BenchArgs {
    let mut argv = vec!["bench"];
    argv.extend_from_slice(flags);
    Cmd::try_parse_from(argv).expect("flags parse").bench
}

/// Flags a test always wants: no progress line, fixed seed.
pub fn quiet(url: &str, flags: &[&str]) -> BenchArgs {
    let mut all = vec!["--url", url, "--quiet", "--seed", "7"];
    all.extend_from_slice(flags);
    args(&all)
}
