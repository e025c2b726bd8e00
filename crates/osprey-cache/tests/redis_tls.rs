#![allow(clippy::expect_used)]
//! The Redis tier over TLS, against a redis-server this test starts with a
//! certificate it makes: a round trip trusting the CA from `ca_file`, a server
//! signed by another CA refused, and mutual TLS with a client certificate.

use std::path::{Path, PathBuf};

use osprey_cache::testkit::{PrivateRedis, TlsFiles, free_port, redis_config, unique_prefix};
use osprey_cache::{CacheConfig, CacheKey, Entry, HealthStatus, KeySpace, RedisConfig, RedisTier};

fn key(i: usize) -> CacheKey {
    KeySpace::new("model", "rev").key(&format!("sentence {i}"))
}

fn entry(i: usize) -> Entry {
    Entry::new(
        (0..64)
            .map(|j| ((i * 1000 + j) as f32).cos())
            .collect::<Vec<_>>(),
        i as u32,
    )
}

/// A test CA and what it signed, as PEM files in a directory of their own.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("CA key"))
        .expect("CA certificate")
}

fn pki(ca_name: &str) -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca(ca_name);
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    };
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let mut server = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    server.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    let server_cert = server
        .signed_by(&server_key, &ca)
        .expect("server certificate");
    let client_key = rcgen::KeyPair::generate().expect("client key");
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    client
        .distinguished_name
        .push(rcgen::DnType::CommonName, "osprey");
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client
        .signed_by(&client_key, &ca)
        .expect("client certificate");
    Pki {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
        _dir: dir,
    }
}

fn start(pki: &Pki, auth_clients: bool) -> PrivateRedis {
    PrivateRedis::start_tls(
        free_port(),
        &TlsFiles {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            ca: pki.ca.clone(),
            auth_clients,
        },
    )
}

fn tls_config(redis: &PrivateRedis, ca_file: &Path, prefix: &str) -> RedisConfig {
    RedisConfig {
        ca_file: Some(ca_file.to_owned()),
        ..redis_config(&redis.url(), prefix)
    }
}

#[tokio::test]
async fn round_trips_over_tls_trusting_the_ca_file() {
    let pki = pki("Osprey test CA");
    let redis = start(&pki, false);
    assert!(redis.url().starts_with("rediss://"));
    let config = tls_config(&redis, &pki.ca, &unique_prefix("tls"));
    CacheConfig {
        redis: config.clone(),
        ..CacheConfig::disabled()
    }
    .validate()
    .expect("valid");
    let tier = RedisTier::connect(&config, &redis.url()).expect("connect");
    for i in 0..40 {
        tier.put(key(i), entry(i));
    }
    tier.flush().await;
    let keys: Vec<CacheKey> = (0..45).map(key).collect();
    let got = tier.get_many(&keys).await;
    for (i, g) in got.iter().enumerate().take(40) {
        assert_eq!(g.as_ref(), Some(&entry(i)), "entry {i}");
    }
    assert!(got[40..].iter().all(Option::is_none));
    assert_eq!(tier.count().await.expect("count"), 40);
    assert_eq!(tier.clear().await.expect("clear"), 40);
    assert_eq!(tier.snapshot().errors, 0);
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused() {
    let (ours, theirs) = (pki("Osprey test CA"), pki("Some other CA"));
    let redis = start(&theirs, false);
    let tier = RedisTier::connect(&tls_config(&redis, &ours.ca, "osprey:"), &redis.url())
        .expect("connect");
    tier.put(key(1), entry(1));
    tier.flush().await;
    for _ in 0..3 {
        assert!(tier.get_many(&[key(1)]).await[0].is_none());
    }
    let s = tier.snapshot();
    assert_eq!(s.writes, 0, "nothing written to an untrusted server");
    assert!(s.errors >= 2, "{s:?}");
    let h = tier.health();
    assert_eq!(h.status, HealthStatus::Degraded, "{h:?}");
    let why = format!("{h:?}").to_lowercase();
    assert!(
        why.contains("certificate") || why.contains("issuer"),
        "{why}"
    );
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = pki("Osprey test CA");
    let redis = start(&pki, true);
    let without = tls_config(&redis, &pki.ca, &unique_prefix("mtls"));
    let refused = RedisTier::connect(&without, &redis.url()).expect("connect");
    refused.put(key(1), entry(1));
    refused.flush().await;
    assert!(refused.get_many(&[key(1)]).await[0].is_none());
    assert!(refused.snapshot().errors >= 1);

    let with = RedisConfig {
        client_cert_file: Some(pki.client_cert.clone()),
        client_key_file: Some(pki.client_key.clone()),
        ..without
    };
    let tier = RedisTier::connect(&with, &redis.url()).expect("connect");
    tier.put(key(1), entry(1));
    tier.flush().await;
    assert_eq!(tier.get_many(&[key(1)]).await[0].as_ref(), Some(&entry(1)));
    assert_eq!(tier.clear().await.expect("clear"), 1);
}
