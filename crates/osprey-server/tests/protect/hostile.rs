//! Hostile inputs get the right 4xx, and refusals keep connections usable.

use super::*;

#[tokio::test]
async fn hostile_inputs_get_the_right_4xx_and_the_server_keeps_serving() {
    let _g = shared().await;
    let s = guarded_server();
    let c = client();
    let deep = |n: usize| format!("{}\"a\"{}", "[".repeat(n), "]".repeat(n));
    let many: Vec<&str> = vec!["x"; 100_000];
    let ten_mb = "a".repeat(10 << 20);
    let corpus: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "deeply nested inputs",
            format!(r#"{{"inputs":{}}}"#, deep(100_000)).into_bytes(),
            &[400],
        ),
        (
            "deeply nested ignored field",
            format!(r#"{{"x":{},"inputs":"a"}}"#, deep(33)).into_bytes(),
            &[400],
        ),
        (
            "nesting at the limit",
            format!(r#"{{"x":{},"inputs":"a"}}"#, deep(31)).into_bytes(),
            &[200],
        ),
        (
            "huge exponent",
            br#"{"inputs":"a","normalize":1e999999}"#.to_vec(),
            &[400, 422],
        ),
        (
            "huge integer",
            br#"{"inputs":"a","normalize":123456789012345678901234567890}"#.to_vec(),
            &[422],
        ),
        (
            "huge dimensions",
            br#"{"input":"a","dimensions":99999999999999999999}"#.to_vec(),
            &[400, 422],
        ),
        ("lone surrogate", br#"{"inputs":"\udc00"}"#.to_vec(), &[400]),
        ("bad escape", br#"{"inputs":"\uZZZZ"}"#.to_vec(), &[400]),
        (
            "invalid UTF-8",
            b"{\"inputs\":\"\xc3\x28\"}".to_vec(),
            &[400],
        ),
        ("raw NUL byte", b"{\"inputs\":\"a\x00b\"}".to_vec(), &[400]),
        (
            "escaped NUL is text",
            br#"{"inputs":"a\u0000b"}"#.to_vec(),
            &[200],
        ),
        (
            "10 MB string",
            format!(r#"{{"inputs":"{ten_mb}"}}"#).into_bytes(),
            &[413],
        ),
        (
            "100k-item array",
            serde_json::to_vec(&json!({ "inputs": many })).expect("json"),
            &[413],
        ),
        ("wrong type: number", br#"{"inputs":42}"#.to_vec(), &[422]),
        (
            "wrong type: object",
            br#"{"inputs":{"a":1}}"#.to_vec(),
            &[422],
        ),
        (
            "wrong type: flag",
            br#"{"inputs":"a","truncate":"no"}"#.to_vec(),
            &[422],
        ),
        (
            "duplicate keys",
            br#"{"inputs":"a","inputs":"b"}"#.to_vec(),
            &[422],
        ),
        ("empty object", b"{}".to_vec(), &[422]),
        ("BOM", b"\xef\xbb\xbf{\"inputs\":\"a\"}".to_vec(), &[400]),
    ];
    for (what, body, allowed) in corpus {
        for route in ["/embed", "/v1/embeddings"] {
            // The OpenAI route names its field `input` and has `dimensions`, not
            // `normalize` (unknown fields are ignored there).
            let body = if route == "/embed" {
                body.clone()
            } else {
                replace_bytes(
                    &replace_bytes(&body, b"\"inputs\"", b"\"input\""),
                    b"\"normalize\"",
                    b"\"dimensions\"",
                )
            };
            if route == "/embed" && what == "huge dimensions" {
                continue;
            }
            // Raw HTTP/1.1, so a body the server refuses early cannot break the client.
            let head = format!(
                "POST {route} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let (status, json) = raw_request(s.addr, head, body).await;
            assert!(
                allowed.contains(&status),
                "{route} {what}: {status} {json:.200}"
            );
            if status != 200 {
                assert_error_body(&json, what);
            }
        }
    }
    // Hostile headers.
    let r = Reply::read(
        c.post(format!("{}/embed", s.base))
            .header("content-type", "application/json")
            .header(osprey_server::DEADLINE_HEADER, "99999999999999999999999")
            .body(r#"{"inputs":"a"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(400, "deadline header out of range");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "still serving"}))
            .await
            .len(),
        1
    );
}

/// Reads one HTTP/1.1 response from a kept-alive stream: its status and its head,
/// lower-cased.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    let (status, head, _) =
        tokio::time::timeout(Duration::from_secs(10), common::read_response(stream))
            .await
            .expect("an answer within 10 s");
    (status, head)
}

/// A request refused before its body is read (here 401) must leave a kept-alive
/// connection usable for the next request, or say it closes it.
#[tokio::test]
async fn refusals_before_the_body_keep_the_connection_usable() {
    use tokio::io::AsyncWriteExt;
    let _g = shared().await;
    let s = auth_server();
    let body = serde_json::to_vec(&json!({ "inputs": unique_batch(7, 32) })).expect("json");
    let mut stream = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    for round in 0..3 {
        // The head first and the body a moment later, as a client on a real
        // network sends them: the refusal is decided before the body arrives.
        let head = format!(
            "POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        tokio::time::sleep(Duration::from_millis(5)).await;
        stream.write_all(&body).await.expect("write body");
        let (status, head) = read_response(&mut stream).await;
        assert_eq!(status, 401, "round {round}: {head}");
        assert!(!head.contains("connection: close"), "round {round}: {head}");
    }
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: osprey\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        read_response(&mut stream).await.0,
        200,
        "the connection still serves"
    );

    // A body too large to read for nothing: the answer says the connection closes.
    let mut stream = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = "POST /embed HTTP/1.1\r\nhost: osprey\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write head");
    let (status, head) = read_response(&mut stream).await;
    assert_eq!(status, 401);
    assert!(head.contains("connection: close"), "{head}");
}
