//! Test support (feature `test-support`): a private redis-server for tests that
//! kill, restart or slow down Redis without touching the shared one, the Redis
//! tier settings those tests share, and a clock moved by hand for TTL tests.
#![allow(clippy::expect_used, clippy::panic)] // a failed start ends the test that asked

use std::net::TcpListener;
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

/// A redis-server of its own on 127.0.0.1, keeping nothing on disk; killed on drop.
pub struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// Starts one on `port` (use [`free_port`]) and waits until it accepts
    /// connections. `DEBUG SLEEP` is enabled, to play a slow Redis.
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
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
        let redis = Self { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {port}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
