//! Test support (feature `test-support`): private redis-servers for tests that
//! kill, restart or slow down Redis without touching the shared one (a plain one,
//! one speaking only TLS, and a cluster of several masters), the Redis tier
//! settings those tests share, and a clock moved by hand for TTL tests.
#![allow(clippy::expect_used, clippy::panic)] // a failed start ends the test that asked

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Clock, RedisConfig, SharedClock};

/// A clock that moves only when told to; clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// Starts at a fixed, arbitrary time (2023-11-14), far from zero.
    pub fn new() -> Self {
        Self {
            now_ms: Arc::new(AtomicU64::new(1_700_000_000_000)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).expect("advance by less than 584 million years");
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// This clock, to hand to a tier.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// The shared Redis: `REDIS_URL`, else the local default.
pub fn shared_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix of its own, so parallel tests and runs never see each other's keys.
pub fn unique_prefix(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("osprey-test:{name}:{}:{nanos}:", std::process::id())
}

/// A Redis tier for tests that kill or slow down Redis: a 200 ms timeout, the
/// circuit opening after two failures, and a probe every 100 ms.
pub fn redis_config(url: &str, key_prefix: &str) -> RedisConfig {
    RedisConfig {
        url: Some(url.into()),
        key_prefix: key_prefix.into(),
        timeout_ms: 200,
        failure_threshold: 2,
        retry_interval_ms: 100,
        ..RedisConfig::default()
    }
}

/// [`redis_config`] for a cluster: its first node as `url`, the others as more seeds.
pub fn cluster_config(cluster: &PrivateCluster, key_prefix: &str) -> RedisConfig {
    let mut urls = cluster.urls();
    let first = urls.remove(0);
    RedisConfig {
        cluster: true,
        urls: urls.into_iter().map(crate::RedisUrl::new).collect(),
        ..redis_config(&first, key_prefix)
    }
}

/// A redis-server of its own on 127.0.0.1, keeping nothing on disk; killed on drop.
pub struct PrivateRedis {
    child: Child,
    port: u16,
    tls: bool,
}

/// The PEM files a TLS redis-server is started with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA client certificates are checked against.
    pub ca: PathBuf,
    /// Whether clients must show a certificate (mutual TLS).
    pub auth_clients: bool,
}

impl PrivateRedis {
    /// Starts one on `port` (use [`free_port`]) and waits until it accepts
    /// connections. `DEBUG SLEEP` is enabled, to play a slow Redis.
    pub fn start(port: u16) -> Self {
        Self::start_with(port, &["--port", &port.to_string()], false)
    }

    /// One that speaks only TLS on `port` (`rediss://`).
    pub fn start_tls(port: u16, files: &TlsFiles) -> Self {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let (cert, key, ca) = (path(&files.cert), path(&files.key), path(&files.ca));
        let auth = if files.auth_clients { "yes" } else { "no" };
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            auth,
        ];
        Self::start_with(port, &args, true)
    }

    fn start_with(port: u16, listen: &[&str], tls: bool) -> Self {
        let child = Command::new("redis-server")
            .args(listen)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/ensure-redis.sh installs it)");
        // Owned at once, so a failed start below still kills and reaps it.
        let redis = Self { child, port, tls };
        wait_listening(port);
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills it now (a restart is a new [`PrivateRedis::start`] on the same port).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_listening(port: u16) {
    for _ in 0..250 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not start on port {port}");
}

/// A Redis Cluster of its own: masters on 127.0.0.1 without replicas, each with a
/// share of the slots, keeping nothing but their cluster state (in a directory of
/// their own, removed on drop). Every node is killed on drop.
pub struct PrivateCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

struct ClusterNode {
    child: Option<Child>,
    port: u16,
    bus_port: u16,
}

impl PrivateCluster {
    /// Starts `masters` nodes (at least 3, as `redis-cli --cluster create` wants),
    /// joins them and waits until every one reports `cluster_state:ok`.
    pub fn start(masters: usize) -> Self {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "osprey-test-cluster-{}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..masters {
            let node = ClusterNode {
                child: None,
                port: free_port(),
                // Given, not the default port + 10000, which may be above 65535.
                bus_port: free_port(),
            };
            cluster.nodes.push(node);
            let i = cluster.nodes.len() - 1;
            cluster.spawn(i);
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed next to redis-server");
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_ok();
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let port = node.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &node.bus_port.to_string(),
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/ensure-redis.sh installs it)");
        node.child = Some(child);
        wait_listening(node.port);
    }

    /// A seed URL per node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Kills node `i` now; its slots stop answering.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again (same port, same cluster state) if it is down,
    /// without waiting for the cluster (see [`PrivateCluster::wait_ok`]).
    pub fn revive(&mut self, i: usize) {
        if self.nodes[i].child.is_none() {
            self.spawn(i);
        }
    }

    /// Kills node `i`, starts it again and waits until the cluster is whole.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.revive(i);
        self.wait_ok();
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        for _ in 0..500 {
            if self.nodes.iter().all(|n| cluster_ok(n.port)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the cluster did not reach cluster_state:ok");
    }
}

fn cluster_ok(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "cluster", "info"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Every cache key stored under `prefix` in the Redis at `url` (a `SCAN`): for
/// tests that tamper with what an instance wrote.
pub async fn keys_under(url: &str, prefix: &str) -> Vec<crate::CacheKey> {
    let mut conn = redis::Client::open(url)
        .expect("redis client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let pattern = {
        let mut p = prefix.replace('*', "\\*").replace('?', "\\?");
        p.push('*');
        p
    };
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, names): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        out.extend(
            names
                .iter()
                .filter_map(|n| crate::CacheKey::from_slice(&n[prefix.len()..])),
        );
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}
