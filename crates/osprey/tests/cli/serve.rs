//! `osprey serve`: readiness, a real request, graceful shutdown on SIGTERM, and a
//! disk cache that outlives a restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use crate::{assert_hello_world, reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_and_drains_gracefully_on_sigterm() {
    // Ready within 60 s.
    let Running {
        mut server,
        client,
        base,
        ..
    } = serve_model_with(
        &["--max-batch-tokens", "256"],
        // The short request sent while draining queues behind the long one.
        &[
            ("OSPREY_SERVER__DRAIN_DELAY_SECS", "2"),
            ("OSPREY_LIMITS__MAX_QUEUE_MS", "0"),
        ],
    )
    .await;

    // It embeds, with the flags applied.
    let resp = client
        .post(format!("{base}/embed"))
        .json(&json!({"inputs": "hello world"}))
        .send()
        .await
        .expect("POST /embed");
    assert_eq!(resp.status(), 200);
    let vs: Vec<Vec<f32>> = resp.json().await.expect("vectors");
    assert_eq!(vs.len(), 1);
    assert_hello_world(&vs[0]);
    let info: Value = client
        .get(format!("{base}/info"))
        .send()
        .await
        .expect("GET /info")
        .json()
        .await
        .expect("info JSON");
    assert_eq!(info["max_batch_tokens"], 256);
    assert_eq!(info["model_id"], "all-MiniLM-L6-v2");

    // A request of many maximum-length inputs: with 256-token batches it runs as
    // one batch per input, so it stays in flight for a while.
    let reference = reference();
    let long = &reference
        .cases
        .iter()
        .max_by_key(|c| c.untruncated_token_count)
        .expect("reference cases")
        .text;
    let inputs: Vec<String> = (0..32).map(|i| format!("{i} {long}")).collect();
    let in_flight = {
        let client = client.clone();
        let url = format!("{base}/embed");
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .json(&json!({ "inputs": inputs }))
                .send()
                .await
                .expect("the in-flight request gets an answer");
            let status = resp.status().as_u16();
            let vs: Vec<Vec<f32>> = resp.json().await.expect("vectors");
            (status, vs)
        })
    };
    // In flight means its inputs are queued on the server.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let queued = ready_json(&client, &base)
            .await
            .and_then(|j| j["components"]["queue"]["queued_tokens"].as_u64())
            .unwrap_or(0);
        if queued > 0 {
            break;
        }
        assert!(
            !in_flight.is_finished(),
            "the request finished before it was seen in the queue"
        );
        assert!(Instant::now() < deadline, "the request never queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    signal(server.child.id(), "TERM");

    // Readiness drops at once, so load balancers stop sending...
    let deadline = Instant::now() + Duration::from_secs(2);
    let ready = loop {
        let resp = client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .expect("readiness answers while draining");
        if resp.status() == 503 || Instant::now() > deadline {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("readiness JSON");
    assert_eq!(body["status"], "draining", "{body}");
    // ...while what they still send in the drain delay is served, on a
    // connection that then closes so the client reconnects elsewhere.
    let resp = client
        .post(format!("{base}/embed"))
        .json(&json!({"inputs": "hello world"}))
        .send()
        .await
        .expect("POST /embed while draining");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );

    let (status, vs) = in_flight.await.expect("the in-flight task");
    assert_eq!(status, 200, "log:\n{}", server.log());
    assert_eq!(vs.len(), 32);
    assert!(vs.iter().all(|v| v.len() == 384));

    let status = server.wait(Duration::from_secs(60)).await;
    let log = server.log();
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert_eq!(status.code(), Some(0));
    assert!(log.contains("shutting down"), "log:\n{log}");
}

#[tokio::test]
async fn serve_with_a_missing_model_exits_with_an_error() {
    let mut server = spawn_server(&["--model", "/nonexistent", "--port", "0"]);
    let status = server.wait(Duration::from_secs(60)).await;
    let log = server.log();
    assert!(!status.success(), "log:\n{log}");
    assert!(
        log.contains("model directory") && log.contains("/nonexistent"),
        "the error should name the model directory:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cache_is_warm_after_a_restart_and_the_cli_reads_and_clears_it() {
    let cache_dir = tempdir();
    let db = cache_dir.path().join("cache.redb");
    let db_arg = db.to_string_lossy().into_owned();
    let env = [
        ("OSPREY_CACHE__DISK__PATH", db_arg.as_str()),
        ("OSPREY_CACHE__MEMORY__MAX_BYTES", "0"),
    ];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let texts = json!({"inputs": ["kept across restarts", "also kept"]});
    let mut vectors = Vec::new();
    for (round, expected) in ["miss", "hit-l2"].iter().enumerate() {
        let port = free_port().to_string();
        let mut server = spawn_server_with(&["--model", &model_arg(), "--port", &port], &env);
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&mut server, &client, &base).await;
        let resp = client
            .post(format!("{base}/embed"))
            .json(&texts)
            .send()
            .await
            .expect("POST /embed");
        assert_eq!(resp.status(), 200);
        let x_cache = resp
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(x_cache.as_deref(), Some(*expected), "round {round}");
        let v: Vec<Vec<f32>> = resp.json().await.expect("vectors");
        vectors.push(v);
        if round == 1 {
            // While the server holds the file, the CLI asks the server.
            let out = run(
                osprey(cache_dir.path()).args(["cache", "stats", "--url", &base]),
                Duration::from_secs(30),
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let stats: Value = serde_json::from_str(&stdout(&out)).expect("stats JSON");
            assert_eq!(stats["tiers"][0]["tier"], "disk", "{stats}");
            assert_eq!(stats["tiers"][0]["entries"], 2, "{stats}");
            assert_eq!(stats["tiers"][0]["hits"], 2, "{stats}");
            // Opening the file directly is refused with a hint.
            let out = run(
                osprey(cache_dir.path())
                    .args(["cache", "stats"])
                    .env("OSPREY_CACHE__DISK__PATH", &db_arg),
                Duration::from_secs(30),
            );
            assert!(!out.status.success());
            assert!(stderr(&out).contains("--url"), "{}", stderr(&out));
        }
        signal(server.child.id(), "TERM");
        let status = server.wait(Duration::from_secs(30)).await;
        assert!(status.success(), "log:\n{}", server.log());
    }
    assert_eq!(
        vectors[0], vectors[1],
        "the disk tier returns what the model computed"
    );

    let out = run(
        osprey(cache_dir.path())
            .args(["cache", "stats"])
            .env("OSPREY_CACHE__DISK__PATH", &db_arg),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: Value = serde_json::from_str(&stdout(&out)).expect("stats JSON");
    assert_eq!(stats["tiers"]["disk"]["entries"], 2, "{stats}");
    let out = run(
        osprey(cache_dir.path())
            .args(["cache", "clear"])
            .env("OSPREY_CACHE__DISK__PATH", &db_arg),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let cleared: Value = serde_json::from_str(&stdout(&out)).expect("clear JSON");
    assert_eq!(
        cleared["cleared"]["disk"]["entries_removed"], 2,
        "{cleared}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_without_waiting_for_the_grace_period() {
    use tokio::io::AsyncWriteExt;

    let Running {
        mut server,
        client: _,
        base: _,
        port,
    } = serve_model(&[]).await;

    // A request whose body never finishes keeps a graceful shutdown waiting.
    let mut upload = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    upload
        .write_all(
            b"POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"inputs\": ",
        )
        .await
        .expect("send the head");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.child.id();
    signal(pid, "TERM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the first SIGTERM should wait for the request in flight; log:\n{}",
        server.log()
    );
    let second = Instant::now();
    signal(pid, "TERM");
    let status = server.wait(Duration::from_secs(10)).await;
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "exited {:?} after the second SIGTERM",
        second.elapsed()
    );
    assert!(!status.success(), "{status}");
    assert!(server.log().contains("second signal"), "{}", server.log());
}

/// A copy of the test model whose pooling configuration is a FIFO nobody writes
/// to: reading it blocks the loading thread, so the model stays loading for as
/// long as the test wants.
fn model_that_never_loads() -> tempfile::TempDir {
    let dir = tempdir();
    let source = model_dir();
    for entry in std::fs::read_dir(&source).expect("the test model") {
        let entry = entry.expect("a model file");
        let name = entry.file_name();
        if name != "1_Pooling" {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).expect("symlink");
        }
    }
    let pooling = dir.path().join("1_Pooling");
    std::fs::create_dir(&pooling).expect("1_Pooling");
    let status = std::process::Command::new("mkfifo")
        .arg(pooling.join("config.json"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    dir
}

/// Waits until the server listens and its model is still loading.
async fn until_loading(server: &mut Server, port: u16) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health/ready");
    server
        .wait_for("listening", |s| s.log().contains("listening"))
        .await;
    let resp = client.get(&url).send().await.expect("readiness answers");
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.expect("readiness JSON");
    assert_eq!(body["components"]["model"]["status"], "loading", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_the_model_loads_exits_at_once() {
    let model = model_that_never_loads();
    let port = free_port();
    let mut server = spawn_server(&[
        "--model",
        &model.path().to_string_lossy(),
        "--port",
        &port.to_string(),
    ]);
    until_loading(&mut server, port).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = Instant::now();
    signal(server.child.id(), "TERM");
    let status = server.wait(Duration::from_secs(10)).await;
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "exited {:?} after SIGTERM; log:\n{}",
        sent.elapsed(),
        server.log()
    );
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_error_stops_the_server_while_the_model_loads() {
    // A certificate that does not parse fails serving once the listener is up,
    // while the model is still loading (and would never finish).
    let model = model_that_never_loads();
    let files = tempdir();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate").expect("cert");
    std::fs::write(&key, "not a key").expect("key");
    let db = files.path().join("cache.redb");
    let (cert, key, db) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
        db.to_string_lossy().into_owned(),
    );
    let started = Instant::now();
    let mut server = spawn_server_with(
        &[
            "--model",
            &model.path().to_string_lossy(),
            "--port",
            &free_port().to_string(),
        ],
        &[
            ("OSPREY_SERVER__TLS__CERT_FILE", &cert),
            ("OSPREY_SERVER__TLS__KEY_FILE", &key),
            ("OSPREY_CACHE__DISK__PATH", &db),
        ],
    );
    let status = server.wait(Duration::from_secs(20)).await;
    let log = server.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(log.contains("no certificate found"), "log:\n{log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}; log:\n{log}",
        started.elapsed()
    );
    // The disk tier was closed, not abandoned: it opens again as it was, with
    // nothing moved aside as corrupt.
    let check = run(
        osprey(files.path())
            .args(["cache", "stats"])
            .env("OSPREY_CACHE__DISK__PATH", &db),
        Duration::from_secs(30),
    );
    assert!(check.status.success(), "{}", stderr(&check));
    let moved: Vec<_> = std::fs::read_dir(files.path())
        .expect("the cache directory")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .collect();
    assert!(moved.is_empty(), "{moved:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_config_shows_the_effective_settings_without_secrets() {
    let s = serve_model_with(
        &[],
        &[
            ("OSPREY_BATCHING__MAX_BATCH_TOKENS", "3072"),
            // A Redis URL with credentials (the tier connects lazily, so an
            // unreachable one still starts).
            (
                "OSPREY_CACHE__REDIS__URL",
                "redis://osprey:sekrit-pass@127.0.0.1:1/0",
            ),
        ],
    )
    .await;
    let r = s
        .client
        .get(format!("{}/admin/config", s.base))
        .send()
        .await
        .expect("GET /admin/config");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    assert!(!text.contains("sekrit-pass"), "a secret leaked: {text}");
    let c: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(c["batching"]["max_batch_tokens"], 3072, "{text}");
    let url = c["cache"]["redis"]["url"].as_str().expect("the redis url");
    assert!(url.contains("***") && url.contains("127.0.0.1:1"), "{url}");
    assert!(c["server"]["port"].as_u64().is_some(), "{text}");
}
