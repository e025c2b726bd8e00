//! API keys and JWTs over HTTP: every way in, and every way refused.

use super::*;

#[tokio::test]
async fn every_auth_path_over_http() {
    let _g = shared().await;
    let s = auth_server();
    let c = client();

    let r = embed_with(&c, &s.base, None, "no key").await;
    r.assert_error(401, "no key");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="osprey""#)
    );
    assert_eq!(r.json["error"]["code"], "missing_credentials");

    let r = embed_with(
        &c,
        &s.base,
        Some("osp_wrong_key_0123456789abcdef"),
        "wrong key",
    )
    .await;
    r.assert_error(401, "wrong key");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("invalid_token"))
    );
    assert!(
        !r.text.contains("osp_wrong_key"),
        "the key is not echoed: {}",
        r.text
    );

    let r = embed_with(&c, &s.base, Some(INFER_KEY), "right key").await;
    assert_eq!(r.vectors()[0].len(), DIMS);
    let r = Reply::read(
        c.post(format!("{}/v1/embeddings", s.base))
            .header("x-api-key", INFER_KEY)
            .json(&json!({"input": "x-api-key header"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Wrong scope: an infer key on an admin route.
    let r = Reply::read(
        c.delete(format!("{}/admin/cache", s.base))
            .bearer_auth(INFER_KEY)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(403, "infer key on /admin");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("insufficient_scope"))
    );
    let r = Reply::read(
        c.get(format!("{}/admin/cache", s.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(
        !matches!(r.status, 401 | 403),
        "admin key on /admin: {}",
        r.status
    );

    // Open and closed operations routes.
    assert_eq!(
        get(&c, &format!("{}/health/live", s.base)).await.status,
        200
    );
    get(&c, &format!("{}/metrics", s.base))
        .await
        .assert_error(401, "metrics");
    get(&c, &format!("{}/info", s.base))
        .await
        .assert_error(401, "info");

    // JWTs.
    let base = json!({"sub": "svc", "aud": "osprey", "exp": now() + 600, "scope": "infer"});
    let r = embed_with(&c, &s.base, Some(&jwt(&base)), "jwt").await;
    assert_eq!(r.vectors().len(), 1);
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        jwt(&c)
    };
    let cases = [
        ("expired", with("exp", json!(now() - 10)), 401),
        ("not yet valid", with("nbf", json!(now() + 600)), 401),
        ("wrong audience", with("aud", json!("other")), 401),
        ("no osprey scope", with("scope", json!("email")), 403),
    ];
    for (what, token, status) in cases {
        embed_with(&c, &s.base, Some(&token), what)
            .await
            .assert_error(status, what);
    }
    let token = jwt(&base);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    embed_with(&c, &s.base, Some(&parts.join(".")), "tampered")
        .await
        .assert_error(401, "tampered signature");
    let none = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        token.split('.').nth(1).expect("payload")
    );
    embed_with(&c, &s.base, Some(&none), "alg none")
        .await
        .assert_error(401, "alg=none");
    let admin_jwt = with("scope", json!(["infer", "admin"]));
    let r = Reply::read(
        c.get(format!("{}/admin/anything", s.base))
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(!matches!(r.status, 401 | 403), "admin JWT: {}", r.status);
}
