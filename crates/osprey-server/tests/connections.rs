//! Connections against real servers on ephemeral ports (fake model): the header
//! timeout (plain and TLS), keep-alive, the body timeout, the connection cap, and
//! the draining of a refused body so a client that sends it whole before reading
//! still reads its answer.

#![allow(clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use osprey_engine::BatchingConfig;
use osprey_server::{AuthConfig, LimitsConfig, Protection, ServerConfig, TlsConfig};
use osprey_testkit::Script;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The header timeout of the servers that test it: small, so the tests are quick.
const HEADER_MS: u64 = 300;

fn fake_server(server: ServerConfig, limits: LimitsConfig) -> TestServer {
    let protection = Protection::new(&AuthConfig::default(), &limits).expect("limits");
    start_fake(
        server,
        BatchingConfig::default(),
        protection,
        None,
        &Script::new(),
    )
}

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.addr).await.expect("connect")
}

/// Whether the server closes the stream (end of stream or reset) by `deadline`;
/// whatever it sends first is ignored.
async fn closed_by<S: AsyncRead + Unpin>(stream: &mut S, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// One HTTP/1.1 response with a content-length, read within `limit`: status,
/// head (lower-cased) and body; `None` if it has not come by then.
async fn response_within(
    stream: &mut TcpStream,
    limit: Duration,
) -> Option<(u16, String, Vec<u8>)> {
    tokio::time::timeout(limit, read_response(stream))
        .await
        .ok()
}

async fn get_live(stream: &mut TcpStream) -> u16 {
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: osprey\r\n\r\n")
        .await
        .expect("write a request");
    response_within(stream, Duration::from_secs(10))
        .await
        .expect("an answer within 10 s")
        .0
}

/// Sends `head` a byte every 50 ms, as a slowloris client does, never finishing.
fn trickle<S: AsyncWrite + Unpin + Send + 'static>(
    mut wr: S,
    head: &'static [u8],
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for b in head {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::future::pending::<()>().await;
    })
}

const HALF_HEAD: &[u8] =
    b"POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[tokio::test]
async fn half_sent_headers_are_closed_after_the_header_timeout() {
    let s = fake_server(
        ServerConfig {
            header_timeout_ms: HEADER_MS,
            ..ServerConfig::default()
        },
        LimitsConfig::default(),
    );
    let start = Instant::now();
    let deadline = start + Duration::from_millis(3 * HEADER_MS);
    let (mut rd, wr) = connect(&s).await.into_split();
    let sender = trickle(wr, HALF_HEAD);
    let mut silent = connect(&s).await;
    let (trickled, silent) = tokio::join!(
        closed_by(&mut rd, deadline),
        closed_by(&mut silent, deadline)
    );
    sender.abort();
    assert!(trickled, "a head still arriving a byte at a time is closed");
    assert!(silent, "a connection that sends nothing is closed");

    // A client that sends its request at once is served as before.
    let mut prompt = connect(&s).await;
    assert_eq!(get_live(&mut prompt).await, 200);
}

/// The same clock runs over TLS, once the handshake is done.
#[tokio::test]
async fn half_sent_headers_over_tls_are_closed_after_the_header_timeout() {
    let s = fake_server(
        ServerConfig {
            header_timeout_ms: HEADER_MS,
            tls: TlsConfig {
                cert_file: Some(test_data("tls-server.pem")),
                key_file: Some(test_data("tls-server-key.pem")),
            },
            ..ServerConfig::default()
        },
        LimitsConfig::default(),
    );
    let tls = tls_connect(&s).await;
    let start = Instant::now();
    let (mut rd, wr) = tokio::io::split(tls);
    let sender = trickle(wr, HALF_HEAD);
    let closed = closed_by(&mut rd, start + Duration::from_millis(3 * HEADER_MS)).await;
    sender.abort();
    assert!(closed, "a half-sent head over TLS is closed");
}

async fn tls_connect(s: &TestServer) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(test_data("tls-ca.pem")).expect("test CA");
    roots.add(ca).expect("add the test CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, connect(s).await)
        .await
        .expect("TLS handshake")
}

/// A kept-alive connection may idle longer than the header timeout (its clock
/// starts with the next request's first byte), and is closed once idle for the
/// keep-alive time.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_keep_alive() {
    let s = fake_server(
        ServerConfig {
            header_timeout_ms: HEADER_MS,
            keep_alive_secs: 1,
            ..ServerConfig::default()
        },
        LimitsConfig::default(),
    );
    let mut conn = connect(&s).await;
    assert_eq!(get_live(&mut conn).await, 200);
    tokio::time::sleep(Duration::from_millis(2 * HEADER_MS)).await;
    assert_eq!(get_live(&mut conn).await, 200, "still open after idling");
    let idle = Instant::now();
    assert!(
        closed_by(&mut conn, idle + Duration::from_secs(3)).await,
        "an idle connection is closed within 3 × the keep-alive"
    );
}

/// Uploads trickling in hold neither an admission slot nor their connection for
/// longer than the body timeout, and are answered 408.
#[tokio::test]
async fn slow_uploads_time_out_and_do_not_block_other_clients() {
    const SLOW: usize = 4;
    let s = fake_server(
        ServerConfig {
            body_timeout_ms: 1_000,
            ..ServerConfig::default()
        },
        LimitsConfig {
            max_in_flight: 2,
            ..LimitsConfig::default()
        },
    );
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut conn = connect(&s).await;
        conn.write_all(
            b"POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"inputs\":",
        )
        .await
        .expect("write the start of an upload");
        slow.push(conn);
    }
    // More uploads than in-flight slots are under way; a normal client is served.
    let vectors = embed(&client(), &s.base, json!({"inputs": ["a", "b"]})).await;
    assert_eq!(vectors.len(), 2);

    for (i, conn) in slow.iter_mut().enumerate() {
        let (status, head, body) = response_within(conn, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("upload {i}: no answer within 10 s"));
        assert_eq!(status, 408, "upload {i}: {head}");
        assert!(head.contains("connection: close"), "upload {i}: {head}");
        let json: Value = serde_json::from_slice(&body).expect("a JSON error");
        assert_error_body(&json, "body timeout");
        assert_eq!(json["error"]["code"], "body_timeout");
        assert!(
            closed_by(conn, Instant::now() + Duration::from_secs(5)).await,
            "upload {i}: closed after its 408"
        );
    }
    assert_eq!(s.engine.admission().in_flight(), 0);
}

/// At `max_connections`, a further connection waits until one closes, then is served.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_one_to_close() {
    let s = fake_server(
        ServerConfig {
            max_connections: 2,
            ..ServerConfig::default()
        },
        LimitsConfig::default(),
    );
    let mut first = connect(&s).await;
    assert_eq!(get_live(&mut first).await, 200);
    let mut second = connect(&s).await;
    assert_eq!(get_live(&mut second).await, 200);

    let mut third = connect(&s).await;
    third
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: osprey\r\n\r\n")
        .await
        .expect("write a request");
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte))
            .await
            .is_err(),
        "the third connection is not served while two are open"
    );
    drop(first);
    let (status, _, _) = response_within(&mut third, Duration::from_secs(10))
        .await
        .expect("served once a connection closed");
    assert_eq!(status, 200);
    assert_eq!(get_live(&mut second).await, 200);
}

/// A client that writes a 10 MB body whole before reading, as Python's
/// `http.client` does, reads the 413 it was answered at once, and the connection
/// still serves.
#[tokio::test]
async fn an_oversized_body_sent_whole_before_reading_gets_its_413() {
    const BODY: usize = 10 * 1024 * 1024;
    let s = fake_server(
        ServerConfig {
            max_body_bytes: 1024 * 1024,
            ..ServerConfig::default()
        },
        LimitsConfig::default(),
    );
    let mut conn = connect(&s).await;
    let head = format!(
        "POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\ncontent-length: {BODY}\r\n\r\n"
    );
    let mut request = head.into_bytes();
    request.extend(std::iter::repeat_n(b' ', BODY));
    tokio::time::timeout(Duration::from_secs(30), conn.write_all(&request))
        .await
        .expect("the body is taken within 30 s")
        .expect("the whole body is written before the answer is read");
    let (status, head, body) = response_within(&mut conn, Duration::from_secs(10))
        .await
        .expect("an answer within 10 s");
    assert_eq!(status, 413, "{head}");
    let json: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_error_body(&json, "oversized body");
    assert_eq!(json["error"]["code"], "too_large");
    assert_eq!(
        get_live(&mut conn).await,
        200,
        "the connection still serves"
    );
}

/// The same with Python's `http.client`, which sends the whole body before it
/// reads anything.
#[tokio::test]
async fn python_http_client_reads_the_413_for_a_10_mb_body() {
    const SCRIPT: &str = r#"
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
conn.request("POST", "/embed", body=b" " * (10 * 1024 * 1024),
             headers={"content-type": "application/json"})
resp = conn.getresponse()
print(json.dumps({"status": resp.status, "body": json.loads(resp.read())}))
"#;
    let s = fake_server(
        ServerConfig {
            max_body_bytes: 1024 * 1024,
            ..ServerConfig::default()
        },
        LimitsConfig::default(),
    );
    let port = s.addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", SCRIPT, &port])
            .output()
    })
    .await
    .expect("client task")
    .expect("run python3");
    assert!(
        out.status.success(),
        "http.client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    assert_eq!(seen["status"], 413, "{seen}");
    assert_eq!(seen["body"]["error"]["code"], "too_large", "{seen}");
}
