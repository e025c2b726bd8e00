//! Running the binary: to completion with a timeout, or as a server in the
//! background, and reading what it printed.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{model_dir, osprey};

pub fn model_arg() -> String {
    model_dir().to_string_lossy().into_owned()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Runs to completion, killing the process if it takes longer than `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
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

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A child process killed if the test fails before it exits.
pub struct Server {
    pub child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (60 s at most) until `done` holds, failing early if the server exits.
    pub async fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "osprey exited ({status}) before {what}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 60 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the exit status, killing the process after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
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

pub fn spawn_server(args: &[&str]) -> Server {
    spawn_server_with(args, &[])
}

pub fn spawn_server_with(args: &[&str], env: &[(&str, &str)]) -> Server {
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

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

pub async fn ready_json(client: &reqwest::Client, base: &str) -> Option<Value> {
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

/// Waits until `/health/ready` answers 200, or fails with the server's log.
pub async fn wait_ready(server: &mut Server, client: &reqwest::Client, base: &str) {
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

/// A running `osprey serve`, an HTTP client for it and its base URL.
pub struct Running {
    pub server: Server,
    pub client: reqwest::Client,
    pub base: String,
    pub port: u16,
}

impl Running {
    /// `GET path`, failing the test if it cannot be sent.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET path` as JSON, failing the test if it cannot be read.
    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        resp.json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET path` as text.
    pub async fn get_text(&self, path: &str) -> String {
        let resp = self.get(path).await;
        resp.text()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// Serves the test model on a free 127.0.0.1 port with `extra` flags, and waits
/// until it is ready.
pub async fn serve_model(extra: &[&str]) -> Running {
    serve_model_with(extra, &[]).await
}

/// `serve_model` with environment variables (configuration overrides).
pub async fn serve_model_with(extra: &[&str], env: &[(&str, &str)]) -> Running {
    let port = free_port();
    let port_arg = port.to_string();
    let model = model_arg();
    let mut args = vec![
        "--model",
        &model,
        "--host",
        "127.0.0.1",
        "--port",
        &port_arg,
    ];
    args.extend_from_slice(extra);
    ready(spawn_server_with(&args, env), port).await
}

/// Waits for `server`, listening on `port`, to be ready.
pub async fn ready(mut server: Server, port: u16) -> Running {
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client");
    wait_ready(&mut server, &client, &base).await;
    Running {
        server,
        client,
        base,
        port,
    }
}
