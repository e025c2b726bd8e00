//! Failed authentications are throttled per client address, before any key is
//! hashed or signature checked; a trusted proxy's `X-Forwarded-For` names the
//! client, an untrusted peer's is ignored; `/metrics` scrapes overlap safely.

use std::net::IpAddr;

use super::*;

/// The proxy `throttle_server` trusts.
const PROXY: [u8; 4] = [127, 0, 0, 10];
const BURST: u32 = 4;

/// Auth on, `/metrics` public, four failures per address and then one every 20 s
/// (no refill during a test), `PROXY` trusted.
fn throttle_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let limits = LimitsConfig {
            auth_failures_per_second: 0.05,
            auth_failures_burst: BURST,
            trusted_proxies: vec![IpAddr::from(PROXY).to_string()],
            ..LimitsConfig::default()
        };
        let p = Protection::new(&auth_config("auth-failures", true), &limits).expect("auth config");
        start_with(small_limits(), BatchingConfig::default(), p)
    })
}

/// A client whose connections come from `addr`.
fn from(addr: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(addr))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// `POST /embed` with a key (or token) and, when given, `X-Forwarded-For`.
async fn embed_as(c: &reqwest::Client, key: &str, forwarded: Option<&str>, text: &str) -> Reply {
    let mut req = c
        .post(format!("{}/embed", throttle_server().base))
        .bearer_auth(key)
        .json(&json!({ "inputs": text }));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    Reply::read(req.send().await.expect("send")).await
}

fn assert_throttled(r: &Reply, what: &str) {
    r.assert_error(429, what);
    assert_eq!(r.json["error"]["type"], "rate_limit_error", "{what}");
    assert!(
        r.text.contains("failed authentications"),
        "{what}: {}",
        r.text
    );
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no retry-after"));
    assert!((1..=20).contains(&retry), "{what}: retry-after {retry}");
}

#[tokio::test]
async fn a_flood_of_bad_keys_is_refused_before_any_check_while_others_are_served() {
    let _g = shared().await;
    let attacker = from([127, 0, 0, 3]);
    for i in 0..BURST {
        embed_as(&attacker, "osp_wrong_key_0123456789abcdef", None, "bad")
            .await
            .assert_error(401, &format!("bad key {i}, within the burst"));
    }
    for i in 0..20 {
        let r = embed_as(&attacker, "osp_wrong_key_0123456789abcdef", None, "bad").await;
        assert_throttled(&r, &format!("bad key {i} past the burst"));
    }
    // Refused before the key is looked at: even the right one.
    assert_throttled(
        &embed_as(&attacker, INFER_KEY, None, "good key, same address").await,
        "good key from the throttled address",
    );
    // Large forged JWTs cost a signature check each, until the burst is spent.
    let forger = from([127, 0, 0, 4]);
    let big = format!(
        "{}.{}.{}",
        "eyJhbGciOiJIUzI1NiJ9",
        "A".repeat(6000),
        "B".repeat(43)
    );
    for _ in 0..BURST {
        embed_as(&forger, &big, None, "forged")
            .await
            .assert_error(401, "forged token");
    }
    assert_throttled(
        &embed_as(&forger, &big, None, "forged").await,
        "forged token",
    );

    // Behind the trusted proxy, clients are told apart by X-Forwarded-For: one
    // flooding does not lock the proxy, or anyone behind it, out.
    let proxy = from(PROXY);
    for _ in 0..BURST {
        embed_as(
            &proxy,
            "osp_wrong_key_0123456789abcdef",
            Some("198.51.100.1"),
            "bad",
        )
        .await
        .assert_error(401, "bad key through the proxy");
    }
    assert_throttled(
        &embed_as(
            &proxy,
            "osp_wrong_key_0123456789abcdef",
            Some("198.51.100.1"),
            "bad",
        )
        .await,
        "bad key through the proxy, past the burst",
    );
    // The proxy's own chain: the client wrote the left part, which is ignored.
    let r = embed_as(
        &proxy,
        INFER_KEY,
        Some("198.51.100.1, 203.0.113.7"),
        "good key through the proxy",
    )
    .await;
    assert_eq!(r.status, 200, "good key through the proxy: {}", r.text);
    assert_eq!(r.vectors().len(), 1);
    let jwt_token =
        jwt(&json!({"sub": "svc", "aud": "osprey", "exp": now() + 600, "scope": "infer"}));
    let r = embed_as(
        &proxy,
        &jwt_token,
        Some("2001:db8::7"),
        "JWT through the proxy",
    )
    .await;
    assert_eq!(r.status, 200, "JWT through the proxy: {}", r.text);
    // And from an address of its own.
    let r = embed_as(&from([127, 0, 0, 6]), INFER_KEY, None, "good key elsewhere").await;
    assert_eq!(r.status, 200, "good key from another address: {}", r.text);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let _g = shared().await;
    let c = from([127, 0, 0, 5]);
    // A fresh X-Forwarded-For on every attempt buys nothing: the peer is counted.
    for i in 0..BURST {
        embed_as(
            &c,
            "osp_wrong_key_0123456789abcdef",
            Some(&format!("192.0.2.{i}")),
            "bad",
        )
        .await
        .assert_error(401, &format!("bad key {i}"));
    }
    for i in 0..10 {
        let r = embed_as(
            &c,
            "osp_wrong_key_0123456789abcdef",
            Some(&format!("192.0.2.{}", 100 + i)),
            "bad",
        )
        .await;
        assert_throttled(&r, &format!("spoofed X-Forwarded-For {i}"));
    }
    // Malformed headers from the trusted proxy fall back to its address, no 500.
    let proxy = from(PROXY);
    for bad in ["", "unknown", "1.2.3.4,,", "999.0.0.1", "::ffff:zz"] {
        let r = embed_as(&proxy, INFER_KEY, Some(bad), "malformed forwarded-for").await;
        assert_eq!(r.status, 200, "X-Forwarded-For {bad:?}: {}", r.text);
    }
}

#[tokio::test]
async fn overlapping_metrics_scrapes_all_answer() {
    let _g = shared().await;
    let s = throttle_server();
    let c = client();
    let url = format!("{}/metrics", s.base);
    let scrapes = (0..16).map(|_| get(&c, &url));
    for r in join_all(scrapes).await {
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.text
                .contains("# TYPE osprey_model_requests_total counter"),
            "{}",
            r.text
        );
    }
}
