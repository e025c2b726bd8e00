//! TLS: HTTP/1.1 and HTTP/2 over rustls, and certificate errors that name the file.

use super::*;

#[tokio::test]
async fn tls_serves_http1_and_http2() {
    let _g = shared().await;
    let s = tls_server();
    assert!(s.base.starts_with("https://"));
    let case = &reference().cases[0];

    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(test_data("tls-ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .http1_only()
        .build()
        .expect("client");
    for (client, version) in [
        (h1, reqwest::Version::HTTP_11),
        (tls_client(), reqwest::Version::HTTP_2),
    ] {
        let resp = client
            .post(format!("{}/embed", s.base))
            .json(&json!({"inputs": case.text}))
            .send()
            .await
            .expect("HTTPS request");
        assert_eq!(resp.version(), version);
        let r = Reply::read(resp).await;
        let v = &r.vectors()[0];
        assert!(cosine(v, &case.embedding) >= 0.9999, "{version:?}");
    }

    // A client that does not trust the test CA refuses the handshake.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{}/health/live", s.base))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port gets no HTTP answer, and the server keeps serving.
    let plain = format!("http://127.0.0.1:{}/health/live", s.addr.port());
    let r = client().get(plain).send().await;
    assert!(r.map(|r| r.status() != 200).unwrap_or(true));
    let live = tls_client()
        .get(format!("{}/health/live", s.base))
        .send()
        .await
        .expect("still serving");
    assert_eq!(live.status(), 200);
}

#[test]
fn tls_config_errors_name_the_file() {
    let missing = TlsConfig {
        cert_file: Some(test_data("nope.pem")),
        key_file: Some(test_data("tls-server-key.pem")),
    };
    let Err(err) = missing.acceptor() else {
        panic!("a missing certificate file is an error");
    };
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let swapped = TlsConfig {
        cert_file: Some(test_data("tls-server-key.pem")),
        key_file: Some(test_data("tls-server.pem")),
    };
    assert!(swapped.acceptor().is_err());
    let half = TlsConfig {
        cert_file: Some(test_data("tls-server.pem")),
        key_file: None,
    };
    assert!(half.enabled() && half.acceptor().is_err());
}
