//! The `osprey` binary end to end: `embed`, `--help`, `config check`, and `serve` with
//! readiness, a real request, and graceful shutdown on SIGTERM.

#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{model_dir, osprey};

mod support;

fn model_arg() -> String {
    model_dir().to_string_lossy().into_owned()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Runs to completion, killing the process if it takes longer than `timeout`.
fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn osprey");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for osprey"),
        Err(_) => {
            signal(pid, "KILL");
            panic!("osprey did not finish within {timeout:?}");
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    untruncated_token_count: usize,
    embedding: Vec<f64>,
    embedding_unnormalized: Vec<f64>,
}

fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../osprey-models/tests/data/reference.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

/// "hello world" from sentence-transformers starts about like this.
fn assert_hello_world(v: &[f32]) {
    assert_eq!(v.len(), 384);
    assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    for (i, want) in [-0.0345f32, 0.0310, 0.0067].into_iter().enumerate() {
        assert!(
            (v[i] - want).abs() < 1.5e-3,
            "component {i}: {} vs {want}",
            v[i]
        );
    }
}

// ---------------------------------------------------------------- embed

#[test]
fn embed_prints_reference_vectors() {
    let dir = tempdir();
    let reference = reference();
    let fox = &reference.cases[0];
    let out = run(
        osprey(dir.path()).args(["embed", "--model", &model_arg(), "hello world", &fox.text]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let vs: Vec<Vec<f32>> =
        serde_json::from_str(stdout(&out).trim()).expect("stdout is a JSON list of vectors");
    assert_eq!(vs.len(), 2);
    assert_hello_world(&vs[0]);
    let c = cosine(&vs[1], &fox.embedding);
    assert!(c >= 0.9999, "cosine to the reference {c}");

    // --no-normalize gives the pooled vector.
    let out = run(
        osprey(dir.path()).args([
            "embed",
            "--model",
            &model_arg(),
            "--no-normalize",
            &fox.text,
        ]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let vs: Vec<Vec<f32>> = serde_json::from_str(stdout(&out).trim()).expect("JSON vectors");
    let c = cosine(&vs[0], &fox.embedding_unnormalized);
    assert!(c >= 0.9999, "unnormalized cosine {c}");
    let want: f64 = fox
        .embedding_unnormalized
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt();
    assert!((norm(&vs[0]) - want).abs() / want < 1e-3);
}

#[test]
fn embed_refuses_over_long_input_with_no_truncate() {
    let dir = tempdir();
    let reference = reference();
    let long = reference
        .cases
        .iter()
        .max_by_key(|c| c.untruncated_token_count)
        .expect("reference cases");
    let out = run(
        osprey(dir.path()).args([
            "embed",
            "--model",
            &model_arg(),
            "--no-truncate",
            &long.text,
        ]),
        Duration::from_secs(120),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&long.untruncated_token_count.to_string()),
        "stderr should name the token count: {err}"
    );
    assert!(stdout(&out).trim().is_empty(), "no vectors on failure");
}

#[test]
fn embed_with_a_missing_model_names_the_directory() {
    let dir = tempdir();
    let out = run(
        osprey(dir.path()).args(["embed", "--model", "/nonexistent/model", "hi"]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("model directory") && err.contains("/nonexistent/model"),
        "{err}"
    );
}

// ---------------------------------------------------------------- help

#[test]
fn help_mentions_commands_flags_and_env_vars() {
    let dir = tempdir();
    let out = run(osprey(dir.path()).arg("--help"), Duration::from_secs(30));
    assert!(out.status.success());
    let text = stdout(&out);
    for word in ["serve", "embed", "config"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }

    let out = run(
        osprey(dir.path()).args(["serve", "--help"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    let text = stdout(&out);
    for word in [
        "--config",
        "--model",
        "--backend",
        "--host",
        "--port",
        "--max-batch-tokens",
        "--max-batch-requests",
        "--max-queue-tokens",
        "--replicas",
        "--threads",
        "OSPREY_CONFIG",
        "OSPREY_MODEL__PATH",
        "OSPREY_SERVER__HOST",
        "OSPREY_SERVER__PORT",
        "OSPREY_BATCHING__MAX_BATCH_TOKENS",
        "OSPREY_BATCHING__MAX_QUEUE_TOKENS",
    ] {
        assert!(text.contains(word), "serve --help lacks {word}:\n{text}");
    }

    let out = run(
        osprey(dir.path()).args(["embed", "--help"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    let text = stdout(&out);
    for word in ["--no-normalize", "--no-truncate", "--model"] {
        assert!(text.contains(word), "embed --help lacks {word}:\n{text}");
    }

    let out = run(osprey(dir.path()).arg("--version"), Duration::from_secs(30));
    assert!(out.status.success());
    assert!(stdout(&out).contains(env!("CARGO_PKG_VERSION")));

    let out = run(
        osprey(dir.path()).arg("frobnicate"),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "an unknown subcommand fails");
}

// ---------------------------------------------------------------- config check

#[test]
fn config_check_prints_the_effective_config() {
    let dir = tempdir();
    let file = dir.path().join("good.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nport = 9123\nmax_inputs = 17\n\n[model]\npath = {:?}\n\n[batching]\nmax_batch_tokens = 2048\n",
            model_arg()
        ),
    )
    .expect("write the config");
    let out = run(
        osprey(dir.path())
            .args(["config", "check", "--config"])
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "port = 9123",
        "max_inputs = 17",
        "max_batch_tokens = 2048",
        // Defaults for what the file leaves out.
        "max_queue_tokens = 32768",
        "host = \"127.0.0.1\"",
    ] {
        assert!(
            text.contains(line),
            "effective config lacks `{line}`:\n{text}"
        );
    }
    for section in ["[server]", "[model]", "[batching]", "[telemetry]"] {
        assert!(text.contains(section), "lacks {section}:\n{text}");
    }

    // The environment overrides the file; OSPREY_CONFIG names the file.
    let out = run(
        osprey(dir.path())
            .args(["config", "check"])
            .env("OSPREY_CONFIG", &file)
            .env("OSPREY_SERVER__PORT", "9555"),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("port = 9555"), "{text}");
    assert!(text.contains("max_inputs = 17"), "{text}");
}

#[test]
fn config_check_rejects_unknown_keys_and_bad_values() {
    let dir = tempdir();
    for (name, body, needle) in [
        ("key.toml", "[server]\nbogus_key = 1\n", "bogus_key"),
        ("section.toml", "[servr]\nport = 1\n", "servr"),
        (
            "zero.toml",
            "[batching]\nmax_batch_tokens = 0\n",
            "max_batch_tokens",
        ),
        ("type.toml", "[server]\nport = \"eighty\"\n", "port"),
        ("syntax.toml", "[server\nport = 1\n", "server"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, body).expect("write the config");
        let out = run(
            osprey(dir.path())
                .args(["config", "check", "--config"])
                .arg(&file),
            Duration::from_secs(30),
        );
        assert!(!out.status.success(), "{name} should be refused");
        let err = stderr(&out);
        assert!(
            err.contains(needle),
            "{name}: message should name `{needle}`: {err}"
        );
    }

    let out = run(
        osprey(dir.path()).args(["config", "check", "--config", "/nonexistent/osprey.toml"]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/osprey.toml"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------- serve

/// A child process killed if the test fails before it exits.
struct Server {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the exit status, killing the process after `timeout`.
    async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "osprey did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_server(args: &[&str]) -> Server {
    spawn_server_with(args, &[])
}

fn spawn_server_with(args: &[&str], env: &[(&str, &str)]) -> Server {
    let dir = tempdir();
    let log = dir.path().join("osprey.log");
    let file = std::fs::File::create(&log).expect("create the log file");
    let child = osprey(dir.path())
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn osprey serve");
    Server {
        child,
        log,
        _dir: dir,
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

async fn ready_json(client: &reqwest::Client, base: &str) -> Option<Value> {
    let resp = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    resp.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_and_shuts_down_gracefully_on_sigterm() {
    let port = free_port();
    let port_arg = port.to_string();
    let mut server = spawn_server(&[
        "--model",
        &model_arg(),
        "--host",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--max-batch-tokens",
        "256",
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client");

    // Ready within 60 s.
    wait_ready(&mut server, &client, &base).await;

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

/// Waits until `/health/ready` answers 200, or fails with the server's log.
async fn wait_ready(server: &mut Server, client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready_json(client, base).await.is_none() {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            panic!("osprey exited early ({status}); log:\n{}", server.log());
        }
        assert!(
            Instant::now() < deadline,
            "not ready within 60 s; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
