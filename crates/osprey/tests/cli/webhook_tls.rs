//! Alert webhooks over HTTPS from the binary itself: delivered to a receiver whose
//! certificate a test CA signed (`alerts.webhook_ca_file`), refused by one the
//! configuration does not trust, and the webhook URL's tokens (and Redis
//! passwords) in no log line and no `config check` output.
//!
//! The binary is the one cargo built, or `OSPREY_TEST_BIN` (a release build).
//! Only `cargo test -p osprey` proves the binary's own TLS: a workspace-wide test
//! build also hands it the TLS features of other crates' test dependencies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::support::{Server, free_port, model_arg, osprey, spawn_server, tempdir};

/// Secrets in the webhook URL: none may be printed or logged.
const HOOK_PATH: &str = "/services/T0KEN-PATH?token=T0KEN-QUERY";

/// A test CA, and a server certificate it signed for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    tls: Arc<ServerConfig>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Osprey test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).expect("CA certificate");

    let key = rcgen::KeyPair::generate().expect("server key");
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    leaf.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    let cert = leaf.signed_by(&key, &ca).expect("server certificate");

    let chain = vec![cert.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let tls =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server TLS config");
    Pki {
        ca_pem: ca.pem(),
        tls: Arc::new(tls),
    }
}

/// What the receiver saw: each request (its request line and JSON body), and the
/// connections whose TLS handshake failed.
#[derive(Default)]
struct Inbox {
    requests: Mutex<Vec<(String, Value)>>,
    handshake_failures: AtomicUsize,
}

impl Inbox {
    fn requests(&self) -> Vec<(String, Value)> {
        self.requests.lock().expect("inbox").clone()
    }
}

/// An HTTPS receiver on an ephemeral port of 127.0.0.1 answering every request
/// 200 (one request per connection, enough for a webhook).
async fn receiver(tls: Arc<ServerConfig>) -> (u16, Arc<Inbox>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let port = listener.local_addr().expect("receiver address").port();
    let inbox = Arc::new(Inbox::default());
    let acceptor = TlsAcceptor::from(tls);
    let seen = inbox.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    seen.handshake_failures.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                if let Some(request) = read_request(&mut tls).await {
                    seen.requests.lock().expect("inbox").push(request);
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (port, inbox)
}

/// Reads one HTTP/1.1 request with a `content-length` body.
async fn read_request(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<(String, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).ok()?;
    Some((head.lines().next()?.to_owned(), body))
}

/// `osprey serve` with `config` on a free port (stderr to its log file).
fn serve_with(config: &Path) -> Server {
    let port = free_port().to_string();
    let config = config.to_string_lossy().into_owned();
    spawn_server(&[
        "--config",
        &config,
        "--model",
        &model_arg(),
        "--port",
        &port,
    ])
}

/// A configuration whose memory rule fires at once (any process is above 1 MiB)
/// and whose alerts go to `port` over HTTPS.
fn alerting_config(dir: &Path, port: u16, ca_file: Option<&Path>) -> PathBuf {
    let mut text = format!(
        "[alerts]\nwebhook_url = \"https://127.0.0.1:{port}{HOOK_PATH}\"\n\
         eval_interval_ms = 100\nmemory_mb = 1.0\ncpu_percent = 0.0\nlatency_ms = 0.0\n\
         anomaly_sigma = 0.0\nwebhook_retries = 1\nwebhook_backoff_ms = 50\n"
    );
    if let Some(ca) = ca_file {
        text.push_str(&format!(
            "webhook_ca_file = {:?}\n",
            ca.display().to_string()
        ));
    }
    let file = dir.join("osprey.toml");
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write the config");
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_alerts_to_an_https_webhook_signed_by_the_configured_ca() {
    let pki = pki();
    let (port, inbox) = receiver(pki.tls.clone()).await;
    let dir = tempdir();
    let ca = dir.path().join("test-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write the CA");
    let config = alerting_config(dir.path(), port, Some(&ca));

    let mut server = serve_with(&config);
    server
        .wait_for("HTTPS delivery", |_| !inbox.requests().is_empty())
        .await;

    let (line, body) = &inbox.requests()[0];
    assert_eq!(line, &format!("POST {HOOK_PATH} HTTP/1.1"));
    assert_eq!(body["key"], "memory", "{body}");
    assert_eq!(body["status"], "firing", "{body}");
    assert_eq!(inbox.handshake_failures.load(Ordering::SeqCst), 0);
    let log = server.log();
    assert!(!log.contains("T0KEN"), "the webhook URL is logged:\n{log}");
    assert!(
        !log.contains("alert webhook delivery failed"),
        "a delivery failed:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_https_webhook_gets_nothing_and_no_log_line_names_it() {
    let pki = pki();
    let (port, inbox) = receiver(pki.tls.clone()).await;
    let dir = tempdir();
    // No CA file: the built-in roots do not know the test CA.
    let config = alerting_config(dir.path(), port, None);

    let mut server = serve_with(&config);
    server
        .wait_for("given-up delivery", |s| {
            s.log().contains("alert webhook gave up")
        })
        .await;

    let log = server.log();
    assert!(inbox.requests().is_empty(), "{:?}", inbox.requests());
    assert!(inbox.handshake_failures.load(Ordering::SeqCst) >= 2);
    // Each failed attempt says why ...
    assert!(
        log.contains("alert webhook delivery failed") && log.contains("UnknownIssuer"),
        "{log}"
    );
    // ... and never where: the path and query hold the receiver's token.
    assert!(!log.contains("T0KEN"), "the webhook URL is logged:\n{log}");
}

#[test]
fn config_check_hides_url_secrets_and_reads_the_ca_file() {
    let dir = tempdir();
    let file = dir.path().join("osprey.toml");
    std::fs::write(
        &file,
        format!(
            "[alerts]\nwebhook_url = \"https://hooks.example{HOOK_PATH}\"\n\n\
             [cache.redis]\nurl = \"rediss://app:p@ss-T0KEN@[::1]:6380/0\"\n"
        ),
    )
    .expect("write the config");
    let check = |dir: &Path| {
        crate::support::run(
            osprey(dir).args(["config", "check", "--config"]).arg(&file),
            Duration::from_secs(30),
        )
    };
    let out = check(dir.path());
    let stdout = crate::support::stdout(&out);
    let stderr = crate::support::stderr(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains("T0KEN") && !stdout.contains("app:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("webhook_url = \"https://hooks.example/***?***\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("url = \"rediss://***:***@[::1]:6380/0\""),
        "{stdout}"
    );

    // A CA file that cannot be read stops the check, naming the file.
    let mut text = std::fs::read_to_string(&file).expect("read the config");
    text = text.replace(
        "[cache.redis]",
        "webhook_ca_file = \"missing-ca.pem\"\n\n[cache.redis]",
    );
    std::fs::write(&file, text).expect("write the config");
    let out = check(dir.path());
    let stderr = crate::support::stderr(&out);
    assert!(!out.status.success(), "accepted a missing CA file");
    assert!(
        stderr.contains("alerts.webhook_ca_file") && stderr.contains("missing-ca.pem"),
        "{stderr}"
    );
    assert!(!stderr.contains("T0KEN"), "{stderr}");
}
