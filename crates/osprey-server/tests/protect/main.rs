//! Protection end to end, against real servers on ephemeral ports with the real
//! model: API keys and JWTs over HTTP, TLS handshakes with HTTP/1.1 and HTTP/2,
//! compression both ways, per-client rate limits, admission control under
//! overload, deadlines, a corpus of hostile inputs, and the dashboard's login
//! (in headless Chromium too).

#![allow(clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod auth_failures;
mod cdp;
mod compression;
mod dashboard;
mod hostile;
mod open_admin;
mod overload;
mod rate_limit;
mod tls;

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use futures::future::join_all;
use osprey_engine::BatchingConfig;
use osprey_server::auth::{JwtAlgorithm, JwtConfig, digest_hex};
use osprey_server::{AuthConfig, LimitsConfig, Protection, ServerConfig, TlsConfig};
use osprey_testkit::Script;
use serde_json::{Value, json};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const INFER_KEY: &str = "osp_it_infer_0123456789abcdef";
const ADMIN_KEY: &str = "osp_it_admin_0123456789abcdef";
const JWT_SECRET: &str = "integration-test-secret-32-bytes-long";

/// Tests that flood the guarded server take this exclusively.
static TRAFFIC: RwLock<()> = RwLock::const_new(());

async fn shared() -> RwLockReadGuard<'static, ()> {
    TRAFFIC.read().await
}

async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    TRAFFIC.write().await
}

fn small_limits() -> ServerConfig {
    ServerConfig {
        max_inputs: MAX_INPUTS,
        max_input_chars: MAX_INPUT_CHARS,
        max_body_bytes: MAX_BODY_BYTES,
        ..ServerConfig::default()
    }
}

/// Auth on: a keys file (one infer key, one admin key) and HS256 JWTs; `tag`
/// names the keys file's directory.
fn auth_config(tag: &str, metrics_public: bool) -> AuthConfig {
    let dir = std::env::temp_dir().join(format!("osprey-{tag}-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let keys = dir.join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\nname = \"app\"\nscope = \"infer\"\nsha256 = \"{}\"\n\n[[keys]]\nname = \"ops\"\nscope = \"admin\"\nsha256 = \"{}\"\n",
            digest_hex(INFER_KEY),
            digest_hex(ADMIN_KEY)
        ),
    )
    .expect("write keys");
    AuthConfig {
        enabled: true,
        keys_file: Some(keys),
        keys_env: String::new(),
        metrics_public,
        jwt: Some(JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: Some(JWT_SECRET.into()),
            public_key_file: None,
            audience: Some("osprey".into()),
            issuer: None,
            scope_claim: "scope".into(),
            leeway_secs: 0,
        }),
        ..AuthConfig::default()
    }
}

/// Auth on, the default limits.
fn auth_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let p = Protection::new(&auth_config("auth", false), &LimitsConfig::default())
            .expect("auth config");
        start_with(small_limits(), BatchingConfig::default(), p)
    })
}

/// HTTPS with the test certificate; auth off.
fn tls_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let server = ServerConfig {
            tls: TlsConfig {
                cert_file: Some(test_data("tls-server.pem")),
                key_file: Some(test_data("tls-server-key.pem")),
            },
            ..small_limits()
        };
        start_with(server, BatchingConfig::default(), Protection::default())
    })
}

/// Auth off, few requests in flight, a small queue and a small gzip cap.
fn guarded_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let limits = LimitsConfig {
            max_in_flight: 4,
            max_decompressed_bytes: 2 * MAX_BODY_BYTES,
            ..LimitsConfig::default()
        };
        let p = Protection::new(&AuthConfig::default(), &limits).expect("limits");
        let batching = BatchingConfig {
            max_batch_tokens: 512,
            max_queue_tokens: 4096,
            ..BatchingConfig::default()
        };
        start_with(small_limits(), batching, p)
    })
}

/// Three requests per client at once, then one a second.
fn rate_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let limits = LimitsConfig {
            requests_per_second: 1,
            requests_burst: 3,
            ..LimitsConfig::default()
        };
        let p = Protection::new(&AuthConfig::default(), &limits).expect("limits");
        start_with(small_limits(), BatchingConfig::default(), p)
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn jwt(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign")
}

async fn embed_with(c: &reqwest::Client, base: &str, token: Option<&str>, text: &str) -> Reply {
    let mut req = c
        .post(format!("{base}/embed"))
        .json(&json!({ "inputs": text }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Reply::read(req.send().await.expect("send")).await
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("compress");
    enc.finish().expect("compress")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

/// Resident memory of this process (the servers run in it), from /proc.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `n` texts no other request sends, built from the reference sentences.
fn unique_batch(tag: usize, n: usize) -> Vec<String> {
    let cases = &reference().cases;
    (0..n)
        .map(|i| format!("{} [{tag}-{i}]", cases[(tag + i) % cases.len()].text))
        .collect()
}
