//! Cache configuration: `[cache.memory]`, `[cache.disk]`, `[cache.redis]`. Each tier
//! is optional: memory is on with a size above zero, disk with a path, Redis with a URL.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::CacheError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether callers with different credentials share cached results. Off, each
    /// credential's results are keyed apart, so no one can learn from a hit (or
    /// its speed) that someone else embedded a text.
    pub share_across_keys: bool,
    pub memory: MemoryConfig,
    pub disk: DiskConfig,
    pub redis: RedisConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            share_across_keys: true,
            memory: MemoryConfig::default(),
            disk: DiskConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Bytes of vectors kept in process; 0 turns the tier off.
    pub max_bytes: u64,
    /// Seconds an entry lives; 0 keeps it until evicted.
    pub ttl_secs: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            max_bytes: 128 * 1024 * 1024,
            ttl_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Database file of the tier; unset turns the tier off.
    pub path: Option<PathBuf>,
    /// Bytes of entries kept on disk; the oldest go first beyond it.
    pub max_bytes: u64,
    /// Seconds an entry lives; 0 keeps it until evicted.
    pub ttl_secs: u64,
    /// Writes waiting for the disk; beyond it new writes are dropped and counted.
    pub write_queue: usize,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: 1024 * 1024 * 1024,
            ttl_secs: 7 * 24 * 3600,
            write_queue: 4096,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, or `rediss://…` for TLS; unset turns
    /// the tier off. With `cluster`, the first seed node.
    pub url: Option<String>,
    /// Redis Cluster: the nodes are discovered from the seeds (`url`, then `urls`)
    /// and each key goes to the node holding its slot; clearing scans every master.
    pub cluster: bool,
    /// More cluster seeds, tried when `url`'s node does not answer at start-up. Same
    /// scheme, user and password as `url`. Only with `cluster`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<RedisUrl>,
    /// PEM file of the CAs trusted for `rediss://`, in place of the built-in
    /// (Mozilla) roots: for a private CA. With `cluster`, every node's certificate
    /// must name the address the cluster reports for it.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for servers that check clients (mutual TLS,
    /// `tls-auth-clients yes`); needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Prefix of every key Osprey writes (and clears).
    pub key_prefix: String,
    pub ttl_secs: u64,
    /// Connections kept open; commands are pipelined on each. With `cluster`, each
    /// is a connection to every node.
    pub pool_size: usize,
    /// A call slower than this counts as a failure and the request goes on without Redis.
    pub timeout_ms: u64,
    /// Consecutive failures that open the circuit (Redis skipped until a probe succeeds).
    pub failure_threshold: u32,
    /// Milliseconds between probes while the circuit is open.
    pub retry_interval_ms: u64,
    /// Writes waiting for Redis; beyond it new writes are dropped and counted.
    pub write_queue: usize,
    /// Secret that seals every value written to Redis (a keyed BLAKE3 MAC over the
    /// key and the value); values without a valid seal read as misses. Set it to
    /// the same secret on every instance, so one that can write the shared prefix
    /// without the secret cannot poison the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<MacKey>,
}

/// A Redis URL that may hold a password: printed and written back out without
/// its credentials.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url(&self.0))
    }
}

/// The URL with its user, password and query hidden; `***` when it has no `://`.
fn redact_url(raw: &str) -> String {
    const HIDDEN: &str = "***";
    let Some((scheme, rest)) = raw.split_once("://") else {
        return HIDDEN.into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once('@') {
        // Split at the last `@`, as the client does: a password may hold one.
        Some((user, host)) => {
            let hidden = match user.split_once(':') {
                Some(("", _)) => ":***",
                Some(_) => "***:***",
                None => HIDDEN,
            };
            format!("{hidden}@{host}")
        }
        None => authority.to_owned(),
    };
    let tail = match tail.find('?') {
        Some(q) => format!("{}?{HIDDEN}", &tail[..q]),
        None => tail.to_owned(),
    };
    format!("{scheme}://{host}{tail}")
}

/// The Redis MAC secret: never printed, logged or written back out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct MacKey(String);

impl MacKey {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for MacKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            cluster: false,
            urls: Vec::new(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            key_prefix: "osprey:".into(),
            ttl_secs: 24 * 3600,
            pool_size: 4,
            timeout_ms: 50,
            failure_threshold: 3,
            retry_interval_ms: 1000,
            write_queue: 4096,
            hmac_key: None,
        }
    }
}

/// A shorter secret is guessable.
const MIN_MAC_KEY: usize = 16;

impl CacheConfig {
    /// A configuration with every tier off.
    pub fn disabled() -> Self {
        Self {
            memory: MemoryConfig {
                max_bytes: 0,
                ..MemoryConfig::default()
            },
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.disk.path.is_some() && self.disk.max_bytes < 1024 * 1024 {
            return Err("cache.disk.max_bytes must be at least 1 MiB".into());
        }
        if self.redis.url.is_none() && !self.redis.urls.is_empty() {
            return Err(
                "cache.redis.urls adds cluster seeds to cache.redis.url: set url too".into(),
            );
        }
        if let Some(url) = &self.redis.url {
            if self.redis.pool_size == 0 {
                return Err("cache.redis.pool_size must be at least 1".into());
            }
            if self.redis.timeout_ms == 0 {
                return Err("cache.redis.timeout_ms must be at least 1".into());
            }
            if self.redis.ttl_secs == 0 {
                return Err("cache.redis.ttl_secs must be at least 1".into());
            }
            if self
                .redis
                .hmac_key
                .as_ref()
                .is_some_and(|k| k.expose().len() < MIN_MAC_KEY)
            {
                return Err(format!(
                    "cache.redis.hmac_key must be at least {MIN_MAC_KEY} bytes"
                ));
            }
            crate::redis_tier::check(&self.redis, url).map_err(|e| match e {
                CacheError::Config(message) => message,
                other => other.to_string(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(f: impl FnOnce(&mut RedisConfig)) -> Result<(), String> {
        let mut c = CacheConfig::disabled();
        c.redis.url = Some("redis://127.0.0.1:6379".into());
        f(&mut c.redis);
        c.validate()
    }

    fn rejected(f: impl FnOnce(&mut RedisConfig), why: &str) {
        let e = redis(f).expect_err(why);
        assert!(e.contains(why), "{e}");
        assert!(!e.contains("s3cret"), "a password in {e}");
    }

    #[test]
    fn accepts_plain_tls_and_cluster_urls() {
        assert_eq!(redis(|_| {}), Ok(()));
        assert_eq!(
            redis(|r| r.url = Some("rediss://:s3cret@cache.internal:6380/0".into())),
            Ok(())
        );
        assert_eq!(
            redis(|r| {
                r.cluster = true;
                r.urls = vec![RedisUrl::new("redis://10.0.0.2:6379")];
            }),
            Ok(())
        );
    }

    #[test]
    fn rejects_what_cannot_connect() {
        rejected(
            |r| r.url = Some("http://cache".into()),
            "is not a Redis URL",
        );
        rejected(
            |r| r.url = Some("rediss://:s3cret@cache/#insecure".into()),
            "`#insecure`",
        );
        rejected(
            |r| r.urls = vec![RedisUrl::new("redis://b")],
            "set cache.redis.cluster = true",
        );
        rejected(
            |r| {
                r.url = None;
                r.cluster = true;
                r.urls = vec![RedisUrl::new("redis://b")];
            },
            "set url too",
        );
        rejected(
            |r| {
                r.cluster = true;
                r.url = Some("redis+unix:///run/redis.sock".into());
            },
            "not a unix socket",
        );
        rejected(
            |r| {
                r.cluster = true;
                r.urls = vec![RedisUrl::new("rediss://b")];
            },
            "the scheme of cache.redis.url",
        );
        rejected(
            |r| {
                r.cluster = true;
                r.url = Some("redis://:s3cret@a".into());
                r.urls = vec![RedisUrl::new("redis://:other@b")];
            },
            "password",
        );
        rejected(
            |r| {
                r.url = Some("rediss://cache".into());
                r.ca_file = Some("/no/such/ca.pem".into());
            },
            "cache.redis.ca_file /no/such/ca.pem",
        );
    }

    #[test]
    fn rejects_tls_files_that_cannot_work() {
        let dir = std::env::temp_dir().join(format!("osprey-cache-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "not a certificate").expect("write");
        let tls = |r: &mut RedisConfig| r.url = Some("rediss://cache:6380".into());
        rejected(|r| r.ca_file = Some(not_pem.clone()), "use a rediss:// url");
        rejected(
            |r| {
                tls(r);
                r.ca_file = Some(not_pem.clone());
            },
            "no PEM certificate",
        );
        rejected(
            |r| {
                tls(r);
                r.client_key_file = Some(not_pem.clone());
            },
            "go together",
        );
        rejected(
            |r| {
                tls(r);
                r.client_cert_file = Some(not_pem.clone());
                r.client_key_file = Some(not_pem.clone());
            },
            "no PEM certificate",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seed_urls_never_show_their_credentials() {
        let cases = [
            ("redis://user:s3cret@a:6379/0", "redis://***:***@a:6379/0"),
            ("rediss://:s3cret@a:6380", "rediss://:***@a:6380"),
            ("redis://user@a", "redis://***@a"),
            ("redis://u:p@s3cret@a/1", "redis://***:***@a/1"),
            ("redis://a:6379?password=s3cret", "redis://a:6379?***"),
            ("redis://a:6379", "redis://a:6379"),
            ("s3cret", "***"),
        ];
        for (raw, want) in cases {
            let url = RedisUrl::new(raw);
            assert_eq!(format!("{url:?}"), want, "{raw}");
            let json = serde_json::to_string(&url).expect("json");
            assert_eq!(json, format!("\"{want}\""), "{raw}");
        }
    }
}
