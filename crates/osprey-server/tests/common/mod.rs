//! Shared fixtures for the HTTP tests: the real server started in-process once per
//! test binary, the reference vectors, and a few small HTTP helpers.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use osprey_engine::cache::{CacheConfig, TieredCache};
use osprey_engine::{BackendKind, BatchingConfig, Engine, EngineConfig, Pipeline, Served};
use osprey_server::{AppState, AuthConfig, LimitsConfig, ObserveConfig, Protection, ServerConfig};
use osprey_testkit::{Script, fake_engine};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const DIMS: usize = 384;
/// What the test server names its one model.
pub const DEFAULT_NAME: &str = "all-MiniLM-L6-v2";
pub const MAX_INPUTS: usize = 64;
pub const MAX_INPUT_CHARS: usize = 20_000;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A server running on its own thread and tokio runtime for the whole test binary.
pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub pipeline: Arc<Pipeline>,
    pub protection: Arc<Protection>,
    /// What the server answered while the model was still loading (not asked of
    /// an observed server, whose statistics the probe would enter).
    pub while_loading: Option<LoadingProbe>,
}

#[derive(Debug, Clone)]
pub struct LoadingProbe {
    pub ready_status: u16,
    pub ready_body: Value,
    pub embed_status: u16,
    pub embed_retry_after: Option<String>,
    pub embed_body: Value,
}

pub use osprey_models::testkit::model_dir;

/// The server most tests share: small request limits, default batching.
///
/// Its deadline is long: its tests check answers, and a burst of them on a machine
/// whose cores are busy elsewhere would otherwise be refused as unable to finish in
/// 30 s (admission control is tested on servers of its own).
pub fn main_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        // A debug build runs the model many times slower than a release build:
        // neither the deadline nor the queue bound is what these tests are about.
        let limits = LimitsConfig {
            deadline_ms: 300_000,
            max_queue_ms: 0,
            ..LimitsConfig::default()
        };
        let protection =
            Protection::new(&AuthConfig::default(), &limits).expect("default auth, long deadline");
        start_with(
            ServerConfig {
                max_inputs: MAX_INPUTS,
                max_input_chars: MAX_INPUT_CHARS,
                max_body_bytes: MAX_BODY_BYTES,
                ..ServerConfig::default()
            },
            BatchingConfig::default(),
            protection,
        )
    })
}

/// A server with a tiny queue, for overload tests.
pub fn small_queue_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        start(
            ServerConfig::default(),
            BatchingConfig {
                max_batch_tokens: 256,
                max_queue_tokens: 300,
                ..BatchingConfig::default()
            },
        )
    })
}

fn start(server: ServerConfig, batching: BatchingConfig) -> TestServer {
    start_full(server, batching, unbounded_queue(), None, None, None)
}

/// A server of its own on fake replicas driven by `script`: for queueing,
/// deadline and alert logic, never for numbers.
pub fn start_fake(
    server: ServerConfig,
    batching: BatchingConfig,
    protection: Protection,
    observe: Option<ObserveConfig>,
    script: &Arc<Script>,
) -> TestServer {
    start_full(
        server,
        batching,
        protection,
        None,
        observe,
        Some(script.clone()),
    )
}

/// A server with auth, limits or TLS as given; `https://` when TLS is on.
pub fn start_with(
    server: ServerConfig,
    batching: BatchingConfig,
    protection: Protection,
) -> TestServer {
    start_full(server, batching, protection, None, None, None)
}

/// A server of its own (it lives until the test binary exits), with a cache when
/// `cache` is given.
pub fn start_with_cache(
    server: ServerConfig,
    batching: BatchingConfig,
    cache: Option<CacheConfig>,
) -> TestServer {
    start_full(server, batching, unbounded_queue(), cache, None, None)
}

/// Default protection without the queue bound: a debug build's model is many times
/// slower than a release build's, and these servers are not about queueing.
pub fn unbounded_queue() -> Protection {
    let limits = LimitsConfig {
        max_queue_ms: 0,
        ..LimitsConfig::default()
    };
    Protection::new(&AuthConfig::default(), &limits).expect("default limits")
}

/// A server of its own observed as a test asks (its own SLO and alert settings).
pub fn start_observed(observe: ObserveConfig, cache: Option<CacheConfig>) -> TestServer {
    start_full(
        ServerConfig::default(),
        BatchingConfig::default(),
        unbounded_queue(),
        cache,
        Some(observe),
        None,
    )
}

fn start_full(
    server: ServerConfig,
    batching: BatchingConfig,
    protection: Protection,
    cache: Option<CacheConfig>,
    observe: Option<ObserveConfig>,
    fake: Option<Arc<Script>>,
) -> TestServer {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("osprey-test-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind an ephemeral port");
                let addr = listener.local_addr().expect("local address");
                let cache = match cache {
                    Some(c) => Some(Arc::new(TieredCache::open(&c).await.expect("open the cache"))),
                    None => None,
                };
                let scheme = if server.tls.enabled() { "https://127.0.0.1" } else { "http://127.0.0.1" };
                let probe_while_loading = observe.is_none();
                let mut state = AppState::new(server, osprey_server::install_metrics())
                    .with_protection(protection);
                if let Some(observe) = observe {
                    state = state.with_observe(observe);
                }
                let protection = state.protection.load_full();
                state.models.registry().loading(DEFAULT_NAME);
                // Serve at once, like `osprey serve`: the engine arrives later.
                tokio::spawn(osprey_server::serve(
                    listener,
                    state.clone(),
                    std::future::pending(),
                ));
                let config = EngineConfig {
                    model_path: model_dir(),
                    backend: BackendKind::Candle,
                    precision: Default::default(),
                    profile: String::new(),
                    onnxruntime_lib: None,
                    onnx_prepack: false,
                    batching,
                    admission: protection.limits().admission(),
                };
                let loading = tokio::task::spawn_blocking(move || match fake {
                    Some(script) => fake_engine(&config.batching, config.admission, &script),
                    None => Engine::start(&config),
                });

                // The engine slot is only filled below, so these see the loading state.
                let base = format!("{scheme}:{}", addr.port());
                let probe = if probe_while_loading {
                    Some(probe_loading(&base).await)
                } else {
                    None
                };

                let engine = loading
                    .await
                    .expect("engine start task")
                    .unwrap_or_else(|e| {
                        panic!(
                            "engine failed to start from {} (set OSPREY_TEST_MODEL or run `make model`): {e}",
                            model_dir().display()
                        )
                    });
                let engine = Arc::new(engine);
                let pipeline = Arc::new(Pipeline::new(engine.clone(), cache));
                state.engine.set(pipeline.clone());
                let served = Served::new(DEFAULT_NAME.into(), "1".into(), None, pipeline.clone());
                if state.models.registry().add(served).is_err() {
                    panic!("the default model is served twice");
                }
                state.models.registry().loaded(Some(DEFAULT_NAME));
                tx.send((base, addr, engine, pipeline, protection, probe))
                    .expect("report the server");
                std::future::pending::<()>().await;
            });
        })
        .expect("spawn the server thread");
    let (base, addr, engine, pipeline, protection, while_loading) = rx
        .recv()
        .expect("the server thread failed to start (see its panic above)");
    TestServer {
        base,
        addr,
        engine,
        pipeline,
        protection,
        while_loading,
    }
}

async fn probe_loading(base: &str) -> LoadingProbe {
    let client = if base.starts_with("https") {
        tls_client()
    } else {
        client()
    };
    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .expect("GET /health/ready while loading");
    let ready_status = ready.status().as_u16();
    let ready_body: Value = ready.json().await.expect("ready body is JSON");
    let embed = client
        .post(format!("{base}/embed"))
        .json(&serde_json::json!({"inputs": "hello"}))
        .send()
        .await
        .expect("POST /embed while loading");
    let embed_status = embed.status().as_u16();
    let embed_retry_after = embed
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let embed_body: Value = embed.json().await.expect("embed body is JSON");
    LoadingProbe {
        ready_status,
        ready_body,
        embed_status,
        embed_retry_after,
        embed_body,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("HTTP client")
}

/// A client that trusts the test CA (`tests/data/tls-ca.pem`), and only it.
pub fn tls_client() -> reqwest::Client {
    let pem = std::fs::read(test_data("tls-ca.pem")).expect("test CA");
    let ca = reqwest::Certificate::from_pem(&pem).expect("test CA is PEM");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(300))
        .build()
        .expect("HTTPS client")
}

pub fn test_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A response read whole: status, headers and the body parsed as JSON (or `Null`).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("response body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the error body `{"error":{"type","message"}}`.
    pub fn assert_error(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: body {}", self.text);
        assert_error_body(&self.json, what);
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "{what}: content-type {ct}"
        );
    }

    pub fn error_message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// The body as a list of vectors (the `/embed` shape).
    pub fn vectors(&self) -> Vec<Vec<f32>> {
        assert_eq!(self.status, 200, "body: {}", self.text);
        serde_json::from_value(self.json.clone()).expect("a list of vectors")
    }
}

pub fn assert_error_body(json: &Value, what: &str) {
    let err = json
        .get("error")
        .unwrap_or_else(|| panic!("{what}: no `error` object in {json}"));
    assert!(
        err.get("type")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        "{what}: error.type missing in {json}"
    );
    assert!(
        err.get("message")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        "{what}: error.message missing in {json}"
    );
}

pub async fn post_json(client: &reqwest::Client, url: &str, body: Value) -> Reply {
    let resp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Reply::read(resp).await
}

/// `POST {base}/embed` with `inputs`, on a fresh client.
pub async fn embed_reply(base: &str, inputs: Value) -> Reply {
    post_json(
        &client(),
        &format!("{base}/embed"),
        serde_json::json!({ "inputs": inputs }),
    )
    .await
}

pub async fn get(client: &reqwest::Client, url: &str) -> Reply {
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Reply::read(resp).await
}

/// `POST /embed` and the vectors; panics unless 200.
pub async fn embed(client: &reqwest::Client, base: &str, body: Value) -> Vec<Vec<f32>> {
    post_json(client, &format!("{base}/embed"), body)
        .await
        .vectors()
}

/// An HTTP/1.1 exchange over a raw socket, for requests reqwest will not send (bodies
/// larger than announced, chunked bodies). Returns the status and the body.
pub async fn raw_request(addr: SocketAddr, head: String, body: Vec<u8>) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    let (mut rd, mut wr) = stream.into_split();
    // The server may answer before reading the whole body, so write concurrently and
    // ignore a write cut short by its answer.
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_ok() {
            let _ = wr.write_all(&body).await;
        }
        wr
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(done) = complete_response(&buf) {
                        return Some(done);
                    }
                }
            }
        }
        complete_response(&buf)
    };
    let parsed = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("a response within 60 s");
    writer.abort();
    let (status, body) = parsed.unwrap_or_else(|| {
        panic!(
            "incomplete HTTP response: {:?}",
            String::from_utf8_lossy(&buf)
        )
    });
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

/// Status and body once a `content-length` response is complete.
fn complete_response(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())?;
    let body = &buf[end + 4..];
    (body.len() >= len).then(|| (status, body[..len].to_vec()))
}

#[derive(Deserialize)]
pub struct Reference {
    pub cases: Vec<Case>,
}

#[derive(Deserialize, Clone)]
pub struct Case {
    pub text: String,
    pub token_count: usize,
    pub untruncated_token_count: usize,
    pub embedding: Vec<f64>,
    pub embedding_unnormalized: Vec<f64>,
}

pub fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../osprey-models/tests/data/reference.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

pub fn cosine(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn cosine32(a: &[f32], b: &[f32]) -> f64 {
    let b: Vec<f64> = b.iter().map(|x| f64::from(*x)).collect();
    cosine(a, &b)
}

pub fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

pub fn assert_unit(v: &[f32], what: &str) {
    let n = norm(v);
    assert!((n - 1.0).abs() < 1e-4, "{what}: norm {n}");
}

/// Standard base64 (with padding), decoded.
pub fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("not standard base64 ({e}): {s:?}"))
}

/// One counter or histogram-count sample summed over its labels, from /metrics text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every `from` replaced by `to`, on bytes (bodies here need not be UTF-8).
pub fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// Reads one HTTP/1.1 response with a content-length from a raw stream: its status,
/// its head lower-cased, and its body.
pub async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read the head");
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.expect("read the body");
    (status, head, body)
}
