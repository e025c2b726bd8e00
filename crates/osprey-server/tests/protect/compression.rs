//! Compression both ways: responses by Accept-Encoding, gzip request bodies within the cap.

use super::*;

#[tokio::test]
async fn responses_compress_by_accept_encoding() {
    let _g = shared().await;
    let s = tls_server();
    let c = tls_client();
    let body = json!({"inputs": ["compress me", "and me"]});
    let plain = Reply::read(
        c.post(format!("{}/embed", s.base))
            .json(&body)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        plain.header("content-encoding"),
        None,
        "no Accept-Encoding, no compression"
    );
    let expected = plain.vectors();

    for enc in ["gzip", "br", "zstd"] {
        let resp = c
            .post(format!("{}/embed", s.base))
            .header("accept-encoding", enc)
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            Some(enc)
        );
        let bytes = resp.bytes().await.expect("body");
        assert!(
            bytes.len() < plain.text.len(),
            "{enc}: {} vs {}",
            bytes.len(),
            plain.text.len()
        );
        if enc == "gzip" {
            let vs: Vec<Vec<f32>> = serde_json::from_slice(&gunzip(&bytes)).expect("vectors");
            assert_eq!(vs, expected);
        }
    }
    // Small bodies are sent as they are.
    let live = c
        .get(format!("{}/health/live", s.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert!(live.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn gzip_request_bodies_within_the_cap() {
    let _g = shared().await;
    let s = guarded_server();
    let c = client();
    let url = format!("{}/embed", s.base);
    let send = |body: Vec<u8>, encoding: &'static str| {
        let c = c.clone();
        let url = url.clone();
        async move {
            Reply::read(
                c.post(url)
                    .header("content-type", "application/json")
                    .header("content-encoding", encoding)
                    .body(body)
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    };
    let r = send(gzip(br#"{"inputs":["zipped"]}"#), "gzip").await;
    let plain = embed(&c, &s.base, json!({"inputs": ["zipped"]})).await;
    assert_eq!(r.vectors(), plain);

    // A bomb: 64 MiB of spaces packs into ~64 KiB, far over the 2 MiB cap.
    let mut bomb = b"{\"inputs\":\"a\"".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
    bomb.push(b'}');
    let packed = gzip(&bomb);
    assert!(packed.len() < MAX_BODY_BYTES);
    send(packed, "gzip").await.assert_error(413, "gzip bomb");
    send(b"not gzip".to_vec(), "gzip")
        .await
        .assert_error(400, "corrupt gzip");
    send(br#"{"inputs":"a"}"#.to_vec(), "br")
        .await
        .assert_error(415, "br request body");
    assert_eq!(
        embed(&c, &s.base, json!({"inputs": "after"})).await.len(),
        1
    );
}
