//! The binary's security settings end to end: `osprey key`, `config check` with
//! secrets redacted and credentials read, and `serve` with auth from the config.

#![allow(clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{model_dir, osprey};

mod support;

fn output(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn osprey");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait for osprey")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `osprey key new`: the key (first stdout line) and the keys-file entry.
fn new_key(dir: &Path, name: &str, scope: &str) -> (String, String) {
    let out = output(
        osprey(dir).args(["key", "new", "--name", name, "--scope", scope]),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (key, entry) = stdout.split_once('\n').expect("key, then entry");
    (key.trim().to_owned(), entry.to_owned())
}

#[test]
fn key_new_and_hash_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, entry) = new_key(dir.path(), "search", "infer");
    assert!(key.starts_with("osp_") && key.len() == 68, "{key}");
    assert!(entry.contains("name = \"search\"") && entry.contains("scope = \"infer\""));
    let out = output(osprey(dir.path()).args(["key", "hash"]), key.as_bytes());
    assert!(out.status.success());
    let digest = text(&out.stdout).trim().to_owned();
    assert_eq!(digest.len(), 64);
    assert!(entry.contains(&format!("sha256 = \"{digest}\"")), "{entry}");
    assert!(
        !entry.contains(&key),
        "the entry holds the digest, not the key"
    );
    let (other, _) = new_key(dir.path(), "b", "admin");
    assert_ne!(key, other, "keys are random");

    let bad = output(
        osprey(dir.path()).args(["key", "new", "--name", "x", "--scope", "root"]),
        b"",
    );
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("scope"));
}

#[test]
fn config_check_redacts_and_reads_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "a-jwt-secret-that-must-never-be-printed";
    let file = dir.path().join("osprey.toml");
    std::fs::write(
        &file,
        "[auth]\nenabled = true\n\n[auth.jwt]\nalgorithm = \"HS256\"\naudience = \"osprey\"\n\n[limits]\nrequests_per_second = 50\n",
    )
    .expect("write config");
    let out = output(
        osprey(dir.path())
            .args(["config", "check", "--config"])
            .arg(&file)
            .env("OSPREY_AUTH__JWT__SECRET", secret),
        b"",
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(stdout.contains("<redacted>"), "{stdout}");
    assert!(
        stdout.contains("[auth.jwt]") && stdout.contains("[limits]"),
        "{stdout}"
    );
    assert!(stdout.contains("requests_per_second = 50"), "{stdout}");

    // Credentials that cannot work are found by the check, not at start-up.
    for (body, needle) in [
        ("[auth]\nenabled = true\nkeys_env = \"\"\n", "no credential"),
        (
            "[auth]\nenabled = true\nkeys_file = \"missing-keys.toml\"\n",
            "missing-keys.toml",
        ),
        (
            "[auth]\nenabled = true\n[auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"nope.pem\"\n",
            "nope.pem",
        ),
        (
            "[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
            "cert.pem",
        ),
        ("[limits]\nmax_in_flight = \"many\"\n", "max_in_flight"),
    ] {
        std::fs::write(&file, body).expect("write config");
        let out = output(
            osprey(dir.path())
                .args(["config", "check", "--config"])
                .arg(&file),
            b"",
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{body}: accepted");
        assert!(stderr.contains(needle), "{body}: {stderr}");
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_keys_from_the_config_and_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file_key, entry) = new_key(dir.path(), "app", "infer");
    std::fs::write(dir.path().join("keys.toml"), entry).expect("write keys");
    let env_key = "osp_from_the_environment_0001";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.path().join("osprey.toml");
    std::fs::write(
        &config,
        "[auth]\nenabled = true\nkeys_file = \"keys.toml\"\n\n[limits]\nrequests_per_second = 100\n",
    )
    .expect("write config");
    let log = std::fs::File::create(dir.path().join("osprey.log")).expect("log");
    let _server = Server(
        osprey(dir.path())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--model")
            .arg(model_dir())
            .args(["--port", &port.to_string()])
            .env("OSPREY_API_KEYS", format!("ops:admin:{env_key}"))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn osprey serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // Probes are open; with a key, readiness gives its details.
        let live = c.get(format!("{base}/health/live")).send().await;
        let ready = c
            .get(format!("{base}/health/ready"))
            .bearer_auth(&file_key)
            .send()
            .await;
        if live.is_ok_and(|r| r.status() == 200) && ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "not ready within 90 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let embed = |key: Option<&str>| {
        let mut req = c
            .post(format!("{base}/embed"))
            .json(&serde_json::json!({"inputs": "secure"}));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        async move { req.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(embed(None).await, 401);
    assert_eq!(embed(Some("osp_not_a_key_000000000000")).await, 401);
    assert_eq!(embed(Some(&file_key)).await, 200);
    assert_eq!(embed(Some(env_key)).await, 200);
    let admin = |key: &str| {
        let req = c.get(format!("{base}/admin/stats")).bearer_auth(key);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(admin(&file_key).await, 403);
    assert_ne!(admin(env_key).await, 403);
    // The rate limit's budget shows on answers once half the burst (100) is used.
    let mut remaining = None;
    for _ in 0..200 {
        let resp = c
            .get(format!("{base}/info"))
            .bearer_auth(&file_key)
            .send()
            .await
            .expect("send");
        if let Some(v) = resp.headers().get("ratelimit-remaining") {
            remaining = v.to_str().ok().and_then(|v| v.parse::<u32>().ok());
            break;
        }
    }
    assert!(remaining.is_some_and(|r| r <= 50), "{remaining:?}");

    // Not even debug logs carry a key.
    drop(_server);
    let logged = std::fs::read_to_string(dir.path().join("osprey.log")).expect("log");
    assert!(logged.contains("authentication on"), "{logged}");
    for k in [file_key.as_str(), env_key, "osp_not_a_key"] {
        assert!(!logged.contains(k), "a key in the log:\n{logged}");
    }
}
