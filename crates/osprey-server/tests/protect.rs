//! Protection end to end, against real servers on ephemeral ports with the real
//! model: API keys and JWTs over HTTP, TLS handshakes with HTTP/1.1 and HTTP/2,
//! compression both ways, per-client rate limits, admission control under
//! overload, deadlines, and a corpus of hostile inputs.

#![allow(clippy::expect_used)]

mod common;

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

/// Auth on: a keys file (one infer key, one admin key) and HS256 JWTs.
fn auth_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("osprey-auth-test-{}", std::process::id()));
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
        let auth = AuthConfig {
            enabled: true,
            keys_file: Some(keys),
            keys_env: String::new(),
            metrics_public: false,
            jwt: Some(JwtConfig {
                algorithm: JwtAlgorithm::HS256,
                secret: Some(JWT_SECRET.into()),
                public_key_file: None,
                audience: Some("osprey".into()),
                issuer: None,
                scope_claim: "scope".into(),
                leeway_secs: 0,
            }),
        };
        let p = Protection::new(&auth, &LimitsConfig::default()).expect("auth config");
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

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn every_auth_path_over_http() {
    let _g = shared().await;
    let s = auth_server();
    let c = client();

    let r = embed_with(&c, &s.base, None, "no key").await;
    r.assert_error(401, "no key");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="osprey""#)
    );
    assert_eq!(r.json["error"]["code"], "missing_credentials");

    let r = embed_with(
        &c,
        &s.base,
        Some("osp_wrong_key_0123456789abcdef"),
        "wrong key",
    )
    .await;
    r.assert_error(401, "wrong key");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("invalid_token"))
    );
    assert!(
        !r.text.contains("osp_wrong_key"),
        "the key is not echoed: {}",
        r.text
    );

    let r = embed_with(&c, &s.base, Some(INFER_KEY), "right key").await;
    assert_eq!(r.vectors()[0].len(), DIMS);
    let r = Reply::read(
        c.post(format!("{}/v1/embeddings", s.base))
            .header("x-api-key", INFER_KEY)
            .json(&json!({"input": "x-api-key header"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Wrong scope: an infer key on an admin route.
    let r = Reply::read(
        c.delete(format!("{}/admin/cache", s.base))
            .bearer_auth(INFER_KEY)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(403, "infer key on /admin");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("insufficient_scope"))
    );
    let r = Reply::read(
        c.get(format!("{}/admin/cache", s.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(
        !matches!(r.status, 401 | 403),
        "admin key on /admin: {}",
        r.status
    );

    // Open and closed operations routes.
    assert_eq!(
        get(&c, &format!("{}/health/live", s.base)).await.status,
        200
    );
    get(&c, &format!("{}/metrics", s.base))
        .await
        .assert_error(401, "metrics");
    get(&c, &format!("{}/info", s.base))
        .await
        .assert_error(401, "info");

    // JWTs.
    let base = json!({"sub": "svc", "aud": "osprey", "exp": now() + 600, "scope": "infer"});
    let r = embed_with(&c, &s.base, Some(&jwt(&base)), "jwt").await;
    assert_eq!(r.vectors().len(), 1);
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        jwt(&c)
    };
    let cases = [
        ("expired", with("exp", json!(now() - 10)), 401),
        ("not yet valid", with("nbf", json!(now() + 600)), 401),
        ("wrong audience", with("aud", json!("other")), 401),
        ("no osprey scope", with("scope", json!("email")), 403),
    ];
    for (what, token, status) in cases {
        embed_with(&c, &s.base, Some(&token), what)
            .await
            .assert_error(status, what);
    }
    let token = jwt(&base);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    embed_with(&c, &s.base, Some(&parts.join(".")), "tampered")
        .await
        .assert_error(401, "tampered signature");
    let none = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        token.split('.').nth(1).expect("payload")
    );
    embed_with(&c, &s.base, Some(&none), "alg none")
        .await
        .assert_error(401, "alg=none");
    let admin_jwt = with("scope", json!(["infer", "admin"]));
    let r = Reply::read(
        c.get(format!("{}/admin/anything", s.base))
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(!matches!(r.status, 401 | 403), "admin JWT: {}", r.status);
}

// ---------------------------------------------------------------- TLS

#[tokio::test]
async fn tls_serves_http1_and_http2() {
    let _g = shared().await;
    let s = tls_server();
    assert!(s.base.starts_with("https://"));
    let case = &reference().cases[0];

    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(test_data("tls-ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .http1_only()
        .build()
        .expect("client");
    for (client, version) in [
        (h1, reqwest::Version::HTTP_11),
        (tls_client(), reqwest::Version::HTTP_2),
    ] {
        let resp = client
            .post(format!("{}/embed", s.base))
            .json(&json!({"inputs": case.text}))
            .send()
            .await
            .expect("HTTPS request");
        assert_eq!(resp.version(), version);
        let r = Reply::read(resp).await;
        let v = &r.vectors()[0];
        assert!(cosine(v, &case.embedding) >= 0.9999, "{version:?}");
    }

    // A client that does not trust the test CA refuses the handshake.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{}/health/live", s.base))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port gets no HTTP answer, and the server keeps serving.
    let plain = format!("http://127.0.0.1:{}/health/live", s.addr.port());
    let r = client().get(plain).send().await;
    assert!(r.map(|r| r.status() != 200).unwrap_or(true));
    let live = tls_client()
        .get(format!("{}/health/live", s.base))
        .send()
        .await
        .expect("still serving");
    assert_eq!(live.status(), 200);
}

#[test]
fn tls_config_errors_name_the_file() {
    let missing = TlsConfig {
        cert_file: Some(test_data("nope.pem")),
        key_file: Some(test_data("tls-server-key.pem")),
    };
    let Err(err) = missing.acceptor() else {
        panic!("a missing certificate file is an error");
    };
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let swapped = TlsConfig {
        cert_file: Some(test_data("tls-server-key.pem")),
        key_file: Some(test_data("tls-server.pem")),
    };
    assert!(swapped.acceptor().is_err());
    let half = TlsConfig {
        cert_file: Some(test_data("tls-server.pem")),
        key_file: None,
    };
    assert!(half.enabled() && half.acceptor().is_err());
}

// ---------------------------------------------------------------- compression

#[tokio::test]
async fn responses_compress_by_accept_encoding() {
    let _g = shared().await;
    let s = tls_server();
    let c = tls_client();
    let body = json!({"inputs": ["compress me", "and me"]});
    let plain = Reply::read(
        c.post(format!("{}/embed", s.base))
            .json(&body)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        plain.header("content-encoding"),
        None,
        "no Accept-Encoding, no compression"
    );
    let expected = plain.vectors();

    for enc in ["gzip", "br", "zstd"] {
        let resp = c
            .post(format!("{}/embed", s.base))
            .header("accept-encoding", enc)
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            Some(enc)
        );
        let bytes = resp.bytes().await.expect("body");
        assert!(
            bytes.len() < plain.text.len(),
            "{enc}: {} vs {}",
            bytes.len(),
            plain.text.len()
        );
        if enc == "gzip" {
            let vs: Vec<Vec<f32>> = serde_json::from_slice(&gunzip(&bytes)).expect("vectors");
            assert_eq!(vs, expected);
        }
    }
    // Small bodies are sent as they are.
    let live = c
        .get(format!("{}/health/live", s.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert!(live.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn gzip_request_bodies_within_the_cap() {
    let _g = shared().await;
    let s = guarded_server();
    let c = client();
    let url = format!("{}/embed", s.base);
    let send = |body: Vec<u8>, encoding: &'static str| {
        let c = c.clone();
        let url = url.clone();
        async move {
            Reply::read(
                c.post(url)
                    .header("content-type", "application/json")
                    .header("content-encoding", encoding)
                    .body(body)
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    };
    let r = send(gzip(br#"{"inputs":["zipped"]}"#), "gzip").await;
    let plain = embed(&c, &s.base, json!({"inputs": ["zipped"]})).await;
    assert_eq!(r.vectors(), plain);

    // A bomb: 64 MiB of spaces packs into ~64 KiB, far over the 2 MiB cap.
    let mut bomb = b"{\"inputs\":\"a\"".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
    bomb.push(b'}');
    let packed = gzip(&bomb);
    assert!(packed.len() < MAX_BODY_BYTES);
    send(packed, "gzip").await.assert_error(413, "gzip bomb");
    send(b"not gzip".to_vec(), "gzip")
        .await
        .assert_error(400, "corrupt gzip");
    send(br#"{"inputs":"a"}"#.to_vec(), "br")
        .await
        .assert_error(415, "br request body");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "after"})).await.len(),
        1
    );
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn rate_limit_per_client_over_http() {
    let _g = shared().await;
    let s = rate_server();
    // From an address of its own: the start-up probe spent a cell of 127.0.0.1's.
    let c = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    // The burst of 3, then refusals with their headers; the wait is at most a
    // second, so some later request may pass, but never all five.
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    let mut refused = None;
    for i in 0..8 {
        let r = embed_with(&c, &s.base, None, &format!("rate {i}")).await;
        statuses.push(r.status);
        remaining.push(r.header("ratelimit-remaining").map(str::to_owned));
        if r.status == 429 && refused.is_none() {
            refused = Some(r);
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    // Answers carry the budget once half the burst is used, not before.
    assert_eq!(
        &remaining[..3],
        &[None, Some("1".into()), Some("0".into())],
        "{remaining:?}"
    );
    let r = refused.expect("a 429 after the burst");
    r.assert_error(429, "rate limit");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.json["error"]["type"], "rate_limit_error");
    // Probes are not limited.
    for _ in 0..5 {
        assert_eq!(
            get(&c, &format!("{}/health/ready", s.base)).await.status,
            200
        );
    }
}

// ---------------------------------------------------------------- overload

fn unique_batch(tag: usize, n: usize) -> Vec<String> {
    let cases = &reference().cases;
    (0..n)
        .map(|i| format!("{} [{tag}-{i}]", cases[(tag + i) % cases.len()].text))
        .collect()
}

#[tokio::test]
async fn overload_is_refused_at_once_with_bounded_memory() {
    let _g = exclusive().await;
    let s = guarded_server();
    let c = client();
    // Warm every path once before measuring memory.
    embed(&c, &s.base, json!({"inputs": unique_batch(0, 32)})).await;
    let before = rss_mb();

    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let requests = (0..64).map(|k| {
        let c = c.clone();
        let url = format!("{}/embed", s.base);
        let order = order.clone();
        async move {
            let texts = unique_batch(k * 100, 32);
            let r = Reply::read(
                c.post(url)
                    .json(&json!({ "inputs": texts }))
                    .send()
                    .await
                    .expect("send"),
            )
            .await;
            order.lock().expect("lock").push(r.status);
            (texts, r)
        }
    });
    let results = join_all(requests).await;
    let after = rss_mb();

    let (mut ok, mut refused) = (0, 0);
    for (texts, r) in &results {
        match r.status {
            200 => {
                ok += 1;
                assert_eq!(r.vectors().len(), texts.len());
            }
            429 | 503 => {
                refused += 1;
                r.assert_error(r.status, "overload");
                assert!(r.header("retry-after").is_some());
            }
            other => panic!("unexpected status {other}: {}", r.text),
        }
    }
    assert!(ok >= 1, "some requests are served");
    assert!(
        refused >= 32,
        "most are refused: {ok} served, {refused} refused"
    );
    // Refusals do not wait for work: they all arrive before the first success.
    let order = order.lock().expect("lock").clone();
    let first_ok = order.iter().position(|&s| s == 200).expect("a success");
    assert!(first_ok >= 32, "first success at {first_ok}: {order:?}");
    assert!(
        after - before < 300.0,
        "RSS grew {:.0} MB under overload",
        after - before
    );
    assert_eq!(s.engine.admission().in_flight(), 0, "every slot returned");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "after the storm"}))
            .await
            .len(),
        1
    );
}

fn longest_text() -> String {
    reference()
        .cases
        .iter()
        .max_by_key(|c| c.token_count)
        .expect("cases")
        .text
        .clone()
}

/// A request admitted to an idle engine whose replicas then stall past its deadline
/// gets 504, and its queued inputs are taken out of the queue (fake replicas: the
/// stall is theirs to script).
#[tokio::test]
async fn deadline_drops_queued_work_with_504() {
    let script = Script::new();
    let batching = BatchingConfig {
        max_batch_requests: 1,
        ..BatchingConfig::default()
    };
    let s = start_fake(
        small_limits(),
        batching,
        Protection::default(),
        None,
        &script,
    );
    let c = client();
    let metric = |text: &str| metric_sum(text, "osprey_cancelled_items_total");
    let cancelled_before = metric(&get(&c, &format!("{}/metrics", s.base)).await.text);

    // Six inputs, one per batch: two run (held at the gate), four wait in the queue.
    script.hold();
    let texts: Vec<String> = (0..6).map(|i| format!("held input {i}")).collect();
    let r = Reply::read(
        c.post(format!("{}/embed", s.base))
            .header(osprey_server::DEADLINE_HEADER, "300")
            .json(&json!({ "inputs": texts }))
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(504, "deadline");
    assert_eq!(r.json["error"]["code"], "deadline_exceeded");
    // The queue empties at once: the inputs were taken out, not left for the replicas.
    let mut waited = 0;
    while s.engine.queued_tokens() > 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(s.engine.queued_tokens(), 0);
    script.release();
    let cancelled = metric(&get(&c, &format!("{}/metrics", s.base)).await.text) - cancelled_before;
    assert!(cancelled >= 4.0, "queued inputs cancelled: {cancelled}");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "after the deadline"}))
            .await
            .len(),
        1
    );
}

/// Auth off, a large queue and small batches: room for seconds of queued work.
fn deep_queue_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let batching = BatchingConfig {
            max_batch_tokens: 512,
            max_queue_tokens: 1 << 20,
            ..BatchingConfig::default()
        };
        start_with(small_limits(), batching, Protection::default())
    })
}

/// Behind seconds of queued work, a request with a short deadline is refused at
/// once with 503 (not admitted to time out with 504), while one whose deadline
/// leaves room is admitted and served.
#[tokio::test]
async fn unreachable_deadlines_are_refused_at_once() {
    let s = deep_queue_server();
    let c = client();
    // Known from the warm-up, before this server has served anything.
    let rate = s.engine.tokens_per_second().expect("rate known at start");

    // At least two seconds of work at that rate, in requests of 16 long inputs.
    let long = longest_text();
    let per_request = 16.0 * 256.0;
    let requests = ((2.0 * rate / per_request).ceil() as usize).clamp(1, 64);
    let background = join_all((0..requests).map(|k| {
        let c = c.clone();
        let url = format!("{}/embed", s.base);
        let texts: Vec<String> = (0..16).map(|i| format!("{long} [{k}-{i}]")).collect();
        async move {
            Reply::read(
                c.post(url)
                    .json(&json!({ "inputs": texts }))
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    }));
    let probe = async {
        // Once the queue alone holds a second of work at the current rate...
        let second_of_work = || {
            let load = s.engine.load();
            let rate = load.tokens_per_second().unwrap_or(f64::INFINITY);
            load.queued_tokens as f64 >= rate
        };
        let mut waited = 0;
        while !second_of_work() && waited < 10_000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            waited += 1;
        }
        assert!(
            second_of_work(),
            "the background work never filled the queue"
        );
        // ...300 ms cannot be enough.
        let short = Reply::read(
            c.post(format!("{}/embed", s.base))
                .header(osprey_server::DEADLINE_HEADER, "300")
                .json(&json!({ "inputs": "a request in a hurry" }))
                .send()
                .await
                .expect("send"),
        )
        .await;
        // Refused at once: the work ahead of it is still queued.
        let still_queued = s.engine.queued_tokens();
        // A deadline that leaves room is admitted, and waits its turn.
        let patient = Reply::read(
            c.post(format!("{}/embed", s.base))
                .header(osprey_server::DEADLINE_HEADER, "30000")
                .json(&json!({ "inputs": "a patient request" }))
                .send()
                .await
                .expect("send"),
        )
        .await;
        (short, still_queued, patient)
    };
    let (background, (short, still_queued, patient)) = tokio::join!(background, probe);

    short.assert_error(503, "unreachable deadline");
    assert_eq!(short.json["error"]["code"], "deadline_unreachable");
    assert!(short.header("retry-after").is_some());
    assert!(still_queued > 0, "the refusal waited for the queue");
    assert_eq!(patient.vectors().len(), 1);
    for r in background {
        assert_eq!(r.vectors().len(), 16);
    }
}

// ---------------------------------------------------------------- hostile input

#[tokio::test]
async fn hostile_inputs_get_the_right_4xx_and_the_server_keeps_serving() {
    let _g = shared().await;
    let s = guarded_server();
    let c = client();
    let deep = |n: usize| format!("{}\"a\"{}", "[".repeat(n), "]".repeat(n));
    let many: Vec<&str> = vec!["x"; 100_000];
    let ten_mb = "a".repeat(10 << 20);
    let corpus: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "deeply nested inputs",
            format!(r#"{{"inputs":{}}}"#, deep(100_000)).into_bytes(),
            &[400],
        ),
        (
            "deeply nested ignored field",
            format!(r#"{{"x":{},"inputs":"a"}}"#, deep(33)).into_bytes(),
            &[400],
        ),
        (
            "nesting at the limit",
            format!(r#"{{"x":{},"inputs":"a"}}"#, deep(31)).into_bytes(),
            &[200],
        ),
        (
            "huge exponent",
            br#"{"inputs":"a","normalize":1e999999}"#.to_vec(),
            &[400, 422],
        ),
        (
            "huge integer",
            br#"{"inputs":"a","normalize":123456789012345678901234567890}"#.to_vec(),
            &[422],
        ),
        (
            "huge dimensions",
            br#"{"input":"a","dimensions":99999999999999999999}"#.to_vec(),
            &[400, 422],
        ),
        ("lone surrogate", br#"{"inputs":"\udc00"}"#.to_vec(), &[400]),
        ("bad escape", br#"{"inputs":"\uZZZZ"}"#.to_vec(), &[400]),
        (
            "invalid UTF-8",
            b"{\"inputs\":\"\xc3\x28\"}".to_vec(),
            &[400],
        ),
        ("raw NUL byte", b"{\"inputs\":\"a\x00b\"}".to_vec(), &[400]),
        (
            "escaped NUL is text",
            br#"{"inputs":"a\u0000b"}"#.to_vec(),
            &[200],
        ),
        (
            "10 MB string",
            format!(r#"{{"inputs":"{ten_mb}"}}"#).into_bytes(),
            &[413],
        ),
        (
            "100k-item array",
            serde_json::to_vec(&json!({ "inputs": many })).expect("json"),
            &[413],
        ),
        ("wrong type: number", br#"{"inputs":42}"#.to_vec(), &[422]),
        (
            "wrong type: object",
            br#"{"inputs":{"a":1}}"#.to_vec(),
            &[422],
        ),
        (
            "wrong type: flag",
            br#"{"inputs":"a","truncate":"no"}"#.to_vec(),
            &[422],
        ),
        (
            "duplicate keys",
            br#"{"inputs":"a","inputs":"b"}"#.to_vec(),
            &[422],
        ),
        ("empty object", b"{}".to_vec(), &[422]),
        ("BOM", b"\xef\xbb\xbf{\"inputs\":\"a\"}".to_vec(), &[400]),
    ];
    for (what, body, allowed) in corpus {
        for route in ["/embed", "/v1/embeddings"] {
            // The OpenAI route names its field `input` and has `dimensions`, not
            // `normalize` (unknown fields are ignored there).
            let body = if route == "/embed" {
                body.clone()
            } else {
                replace_bytes(
                    &replace_bytes(&body, b"\"inputs\"", b"\"input\""),
                    b"\"normalize\"",
                    b"\"dimensions\"",
                )
            };
            if route == "/embed" && what == "huge dimensions" {
                continue;
            }
            // Raw HTTP/1.1, so a body the server refuses early cannot break the client.
            let head = format!(
                "POST {route} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let (status, json) = raw_request(s.addr, head, body).await;
            assert!(
                allowed.contains(&status),
                "{route} {what}: {status} {json:.200}"
            );
            if status != 200 {
                assert_error_body(&json, what);
            }
        }
    }
    // Hostile headers.
    let r = Reply::read(
        c.post(format!("{}/embed", s.base))
            .header("content-type", "application/json")
            .header(osprey_server::DEADLINE_HEADER, "99999999999999999999999")
            .body(r#"{"inputs":"a"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(400, "deadline header out of range");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "still serving"}))
            .await
            .len(),
        1
    );
}

/// Reads one HTTP/1.1 response (with a content-length) from a kept-alive stream:
/// its head, lower-cased, and its status.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("an answer within 10 s")
            .expect("read the head");
        assert!(
            n == 1,
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
    (status, head)
}

/// A request refused before its body is read (here 401) must leave a kept-alive
/// connection usable for the next request, or say it closes it.
#[tokio::test]
async fn refusals_before_the_body_keep_the_connection_usable() {
    use tokio::io::AsyncWriteExt;
    let _g = shared().await;
    let s = auth_server();
    let body = serde_json::to_vec(&json!({ "inputs": unique_batch(7, 32) })).expect("json");
    let mut stream = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    for round in 0..3 {
        // The head first and the body a moment later, as a client on a real
        // network sends them: the refusal is decided before the body arrives.
        let head = format!(
            "POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        tokio::time::sleep(Duration::from_millis(5)).await;
        stream.write_all(&body).await.expect("write body");
        let (status, head) = read_response(&mut stream).await;
        assert_eq!(status, 401, "round {round}: {head}");
        assert!(!head.contains("connection: close"), "round {round}: {head}");
    }
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: osprey\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        read_response(&mut stream).await.0,
        200,
        "the connection still serves"
    );

    // A body too large to read for nothing: the answer says the connection closes.
    let mut stream = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = "POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write head");
    let (status, head) = read_response(&mut stream).await;
    assert_eq!(status, 401);
    assert!(head.contains("connection: close"), "{head}");
}
