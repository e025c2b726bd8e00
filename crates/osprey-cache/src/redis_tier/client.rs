//! From `[cache.redis]` to a client: the seed URLs, cluster or not, and TLS. Building
//! one reads the TLS files and checks every combination that could only fail later,
//! at each connection, so configuration checks call it too. Nothing here connects.
//!
//! Messages never repeat a URL: it may hold a password.

use std::path::Path;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{CacheError, RedisConfig, Result};

/// What the tier connects with.
// Made once per tier and consumed at once: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// How long a call may take, and how long making a connection may.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) response: Duration,
    pub(super) connect: Duration,
}

impl Timeouts {
    pub(super) fn of(config: &RedisConfig) -> Self {
        let response = Duration::from_millis(config.timeout_ms.max(1));
        // A TLS handshake (to every node of a cluster) needs more than one call.
        Self {
            response,
            connect: response.max(Duration::from_millis(250)),
        }
    }
}

fn invalid(message: impl Into<String>) -> CacheError {
    CacheError::Config(message.into())
}

/// The client for `url` (the first seed) and the rest of `config`.
pub(super) fn build(config: &RedisConfig, url: &str) -> Result<Client> {
    if !config.cluster && !config.urls.is_empty() {
        return Err(invalid(
            "cache.redis.urls lists more cluster seeds: set cache.redis.cluster = true, \
             or keep the one url of a single Redis",
        ));
    }
    let mut seeds = vec![parse("cache.redis.url", url, config.cluster)?];
    for (i, more) in config.urls.iter().enumerate() {
        seeds.push(parse(
            &format!("cache.redis.urls[{i}]"),
            more.expose(),
            true,
        )?);
    }
    let tls = is_tls(&seeds[0]);
    if seeds.iter().any(|s| is_tls(s) != tls) {
        return Err(invalid(
            "cache.redis.urls must all use the scheme of cache.redis.url (redis:// or rediss://)",
        ));
    }
    let tls_files = [
        &config.ca_file,
        &config.client_cert_file,
        &config.client_key_file,
    ];
    if !tls && tls_files.iter().any(|f| f.is_some()) {
        return Err(invalid(
            "cache.redis.ca_file, client_cert_file and client_key_file are for TLS: \
             use a rediss:// url",
        ));
    }
    let certificates = certificates(config)?;
    if tls {
        // rustls needs a process-wide crypto provider; keep one chosen elsewhere.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    }
    let timeouts = Timeouts::of(config);
    if config.cluster {
        let mut builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.response)
            // A call is given up on after `timeout_ms` anyway; retrying longer inside
            // the client would only pile work onto a failing node.
            .retries(1)
            .min_retry_wait(10)
            .max_retry_wait(config.retry_interval_ms.max(10));
        if let Some(certificates) = certificates {
            builder = builder.certs(certificates);
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("cache.redis cluster seeds: {e}")))?;
        return Ok(Client::Cluster(client));
    }
    let seed = seeds.swap_remove(0);
    let client = match certificates {
        Some(certificates) => redis::Client::build_with_tls(seed, certificates),
        None => redis::Client::open(seed),
    }
    .map_err(|e| invalid(format!("cache.redis.url: {e}")))?;
    Ok(Client::Single(client))
}

fn parse(field: &str, url: &str, cluster: bool) -> Result<ConnectionInfo> {
    let info = url
        .into_connection_info()
        .map_err(|e| invalid(format!("{field} is not a Redis URL ({e})")))?;
    match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => Err(invalid(format!(
            "{field}: `#insecure` (no certificate check) is not supported; \
             trust the server's CA with cache.redis.ca_file instead"
        ))),
        ConnectionAddr::Unix(_) if cluster => Err(invalid(format!(
            "{field}: a cluster is reached over TCP (redis:// or rediss://), not a unix socket"
        ))),
        _ => Ok(info),
    }
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// The CA and client certificate files, read and checked now; `None` when none is set.
fn certificates(config: &RedisConfig) -> Result<Option<TlsCertificates>> {
    let root_cert = match &config.ca_file {
        Some(path) => {
            let pem = read("cache.redis.ca_file", path)?;
            check_certificates("cache.redis.ca_file", path, &pem)?;
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&config.client_cert_file, &config.client_key_file) {
        (Some(cert), Some(key)) => {
            let client_cert = read("cache.redis.client_cert_file", cert)?;
            check_certificates("cache.redis.client_cert_file", cert, &client_cert)?;
            let client_key = read("cache.redis.client_key_file", key)?;
            PrivateKeyDer::from_pem_slice(&client_key).map_err(|e| {
                invalid(format!(
                    "cache.redis.client_key_file {}: no PEM private key ({e})",
                    key.display()
                ))
            })?;
            Some(ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
        (None, None) => None,
        _ => {
            return Err(invalid(
                "cache.redis.client_cert_file and client_key_file go together (mutual TLS)",
            ));
        }
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| invalid(format!("{field} {}: {e}", path.display())))
}

/// At least one certificate, and nothing unreadable.
fn check_certificates(field: &str, path: &Path, pem: &[u8]) -> Result<()> {
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| invalid(format!("{field} {}: {e}", path.display())))?;
        n += 1;
    }
    if n == 0 {
        return Err(invalid(format!(
            "{field} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(())
}
