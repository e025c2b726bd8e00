use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use super::*;

const INFER_KEY: &str = "osp_infer_0123456789abcdef";
const ADMIN_KEY: &str = "osp_admin_0123456789abcdef";
const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn keys_file(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("keys.toml");
    std::fs::write(
        &path,
        format!(
            "[[keys]]\nname = \"search\"\nscope = \"infer\"\nsha256 = \"{}\"\n\n[[keys]]\nname = \"ops\"\nscope = \"admin\"\nsha256 = \"{}\"\n",
            digest_hex(INFER_KEY),
            digest_hex(ADMIN_KEY).to_uppercase()
        ),
    )
    .expect("write keys");
    path
}

fn jwt_config(algorithm: JwtAlgorithm) -> JwtConfig {
    let (secret, public_key_file) = match algorithm {
        JwtAlgorithm::HS256 => (Some(SECRET.to_owned()), None),
        JwtAlgorithm::RS256 => (None, Some(data("jwt-rs256-public.pem"))),
        JwtAlgorithm::ES256 => (None, Some(data("jwt-es256-public.pem"))),
    };
    JwtConfig {
        algorithm,
        secret,
        public_key_file,
        audience: Some("osprey".into()),
        issuer: Some("https://issuer.test".into()),
        scope_claim: "scope".into(),
        leeway_secs: 5,
    }
}

fn authenticator(dir: &tempfile::TempDir, jwt: Option<JwtConfig>) -> Authenticator {
    let config = AuthConfig {
        enabled: true,
        keys_file: Some(keys_file(dir)),
        keys_env: String::new(),
        jwt,
        ..AuthConfig::default()
    };
    Authenticator::from_config(&config)
        .expect("valid auth config")
        .expect("auth enabled")
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

fn status(r: Result<Cow<'_, Principal>, ApiError>) -> StatusCode {
    match r {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status(),
    }
}

fn claims(scope: serde_json::Value) -> serde_json::Value {
    json!({
        "sub": "svc-a",
        "aud": "osprey",
        "iss": "https://issuer.test",
        "exp": now() + 600,
        "scope": scope,
    })
}

fn sign(alg: jsonwebtoken::Algorithm, claims: &serde_json::Value) -> String {
    let key = match alg {
        jsonwebtoken::Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        jsonwebtoken::Algorithm::RS256 => EncodingKey::from_rsa_pem(
            &std::fs::read(data("jwt-rs256-private.pem")).expect("rsa key"),
        )
        .expect("rsa pem"),
        jsonwebtoken::Algorithm::ES256 => {
            EncodingKey::from_ec_pem(&std::fs::read(data("jwt-es256-private.pem")).expect("ec key"))
                .expect("ec pem")
        }
        other => panic!("no test key for {other:?}"),
    };
    encode(&Header::new(alg), claims, &key).expect("sign")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn api_keys_by_header_and_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = authenticator(&dir, None);
    let p = auth
        .authorize(&bearer(INFER_KEY), Scope::Infer)
        .expect("infer key on an infer route");
    assert_eq!(&*p.name, "search");
    assert_eq!(p.scope, Scope::Infer);
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_static(ADMIN_KEY));
    let p = auth
        .authorize(&h, Scope::Admin)
        .expect("admin key, x-api-key");
    assert_eq!(&*p.name, "ops");
    assert_eq!(
        status(auth.authorize(&bearer(ADMIN_KEY), Scope::Infer)),
        200,
        "admin includes infer"
    );

    assert_eq!(
        status(auth.authorize(&HeaderMap::new(), Scope::Infer)),
        401,
        "no key"
    );
    assert_eq!(
        status(auth.authorize(&bearer("osp_wrong_0123456789abcdef"), Scope::Infer)),
        401
    );
    assert_eq!(
        status(auth.authorize(&bearer(&INFER_KEY[..INFER_KEY.len() - 1]), Scope::Infer)),
        401,
        "a prefix"
    );
    assert_eq!(
        status(auth.authorize(&bearer(INFER_KEY), Scope::Admin)),
        403,
        "wrong scope"
    );
    let mut basic = HeaderMap::new();
    basic.insert(
        "authorization",
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    assert_eq!(
        status(auth.authorize(&basic, Scope::Infer)),
        401,
        "basic auth"
    );
    let mut empty = HeaderMap::new();
    empty.insert("authorization", HeaderValue::from_static("Bearer "));
    assert_eq!(
        status(auth.authorize(&empty, Scope::Infer)),
        401,
        "empty bearer"
    );
    let mut binary = HeaderMap::new();
    binary.insert(
        "authorization",
        HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("opaque header"),
    );
    assert_eq!(
        status(auth.authorize(&binary, Scope::Infer)),
        401,
        "non-text header"
    );

    // The refusal never echoes the key.
    let err = auth
        .authorize(&bearer("osp_secret_guess_0123456789"), Scope::Infer)
        .expect_err("wrong key");
    assert!(!err.to_string().contains("osp_secret_guess"), "{err}");
}

#[test]
fn keys_from_the_environment_format() {
    let mut store = KeyStore::default();
    store
        .load_env_value(
            "VAR",
            &format!(
                " a:infer:{INFER_KEY} , b:admin:sha256:{} ,",
                digest_hex(ADMIN_KEY)
            ),
        )
        .expect("valid entries");
    assert_eq!(store.len(), 2);
    assert_eq!(store.verify(INFER_KEY).map(|p| &*p.name), Some("a"));
    assert_eq!(store.verify(ADMIN_KEY).map(|p| p.scope), Some(Scope::Admin));
    assert!(store.verify("sha256:anything").is_none());

    for (bad, why) in [
        ("a:infer", "no key"),
        ("a:root:osp_0123456789abcdef", "unknown scope"),
        ("a:infer:short", "short key"),
        ("a:infer:sha256:abcd", "short digest"),
        (
            "a:infer:osp_0123456789abcdef,a:admin:osp_fedcba9876543210",
            "duplicate name",
        ),
    ] {
        let err = KeyStore::default()
            .load_env_value("VAR", bad)
            .expect_err(why);
        assert!(
            !err.to_string().contains("0123456789abcdef"),
            "{why}: {err}"
        );
    }
}

#[test]
fn keys_file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.toml");
    std::fs::write(
        &path,
        "[[keys]]\nname = \"x\"\nscope = \"infer\"\nsha256 = \"zz\"\n",
    )
    .expect("write");
    let err = KeyStore::default()
        .load_file(&path)
        .expect_err("bad digest");
    assert!(err.to_string().contains("keys.toml"), "{err}");
    std::fs::write(
        &path,
        "[[keys]]\nname = \"x\"\nscope = \"infer\"\nkey = \"plain\"\n",
    )
    .expect("write");
    assert!(
        KeyStore::default().load_file(&path).is_err(),
        "plain keys are not stored"
    );
    assert!(
        KeyStore::default()
            .load_file(&dir.path().join("none.toml"))
            .is_err()
    );
}

#[test]
fn enabled_without_credentials_is_a_setup_error() {
    let config = AuthConfig {
        enabled: true,
        keys_env: String::new(),
        ..AuthConfig::default()
    };
    assert!(Authenticator::from_config(&config).is_err());
    assert!(
        Authenticator::from_config(&AuthConfig::default())
            .expect("off")
            .is_none()
    );
    let short = JwtConfig {
        secret: Some("short".into()),
        ..jwt_config(JwtAlgorithm::HS256)
    };
    assert!(JwtVerifier::new(&short).is_err(), "short HS256 secret");
    let missing = JwtConfig {
        public_key_file: None,
        ..jwt_config(JwtAlgorithm::RS256)
    };
    assert!(JwtVerifier::new(&missing).is_err(), "RS256 without a key");
}

#[test]
fn jwt_every_path() {
    use jsonwebtoken::Algorithm as A;
    let dir = tempfile::tempdir().expect("tempdir");
    for (alg, cfg) in [
        (A::HS256, JwtAlgorithm::HS256),
        (A::RS256, JwtAlgorithm::RS256),
        (A::ES256, JwtAlgorithm::ES256),
    ] {
        let auth = authenticator(&dir, Some(jwt_config(cfg)));
        let check = |claims: &serde_json::Value, scope: Scope| {
            status(auth.authorize(&bearer(&sign(alg, claims)), scope))
        };
        let ok = claims(json!("infer"));
        let p = auth
            .authorize(&bearer(&sign(alg, &ok)), Scope::Infer)
            .expect("valid token");
        assert_eq!(&*p.name, "jwt:svc-a", "{alg:?}");
        assert_eq!(
            check(&ok, Scope::Admin),
            403,
            "{alg:?} infer token on admin"
        );
        assert_eq!(
            check(&claims(json!(["read", "admin"])), Scope::Admin),
            200,
            "{alg:?} scope array"
        );
        assert_eq!(
            check(&claims(json!("openid admin")), Scope::Admin),
            200,
            "{alg:?} scope string"
        );
        assert_eq!(
            check(&claims(json!("openid")), Scope::Infer),
            403,
            "{alg:?} no osprey scope"
        );

        let mut c = ok.clone();
        c["exp"] = json!(now() - 60);
        assert_eq!(check(&c, Scope::Infer), 401, "{alg:?} expired");
        let mut c = ok.clone();
        c["nbf"] = json!(now() + 600);
        assert_eq!(check(&c, Scope::Infer), 401, "{alg:?} not yet valid");
        let mut c = ok.clone();
        c["aud"] = json!("someone-else");
        assert_eq!(check(&c, Scope::Infer), 401, "{alg:?} wrong audience");
        let mut c = ok.clone();
        c.as_object_mut().expect("object").remove("aud");
        assert_eq!(check(&c, Scope::Infer), 401, "{alg:?} no audience");
        let mut c = ok.clone();
        c["iss"] = json!("https://evil.test");
        assert_eq!(check(&c, Scope::Infer), 401, "{alg:?} wrong issuer");
        let mut c = ok.clone();
        c.as_object_mut().expect("object").remove("exp");
        assert_eq!(check(&c, Scope::Infer), 401, "{alg:?} no exp");

        // Tampered payload, original signature.
        let token = sign(alg, &ok);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&serde_json::to_vec(&claims(json!("admin"))).expect("json"));
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert_eq!(
            status(auth.authorize(&bearer(&tampered), Scope::Infer)),
            401,
            "{alg:?} tampered"
        );
        // Tampered signature.
        let mut sig = parts[2].to_owned();
        let last = if sig.ends_with('A') { 'B' } else { 'A' };
        sig.pop();
        sig.push(last);
        let bad_sig = format!("{}.{}.{sig}", parts[0], parts[1]);
        assert_eq!(
            status(auth.authorize(&bearer(&bad_sig), Scope::Infer)),
            401,
            "{alg:?} bad signature"
        );

        // alg=none, with and without a signature part.
        let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(&serde_json::to_vec(&ok).expect("json"));
        for t in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}.{}", parts[2]),
        ] {
            assert_eq!(
                status(auth.authorize(&bearer(&t), Scope::Infer)),
                401,
                "{alg:?} alg=none"
            );
        }
        assert_eq!(
            status(auth.authorize(&bearer("a.b.c"), Scope::Infer)),
            401,
            "garbage token"
        );
    }

    // Algorithm confusion: an HS256 token signed with the RSA public key's bytes.
    let auth = authenticator(&dir, Some(jwt_config(JwtAlgorithm::RS256)));
    let public = std::fs::read(data("jwt-rs256-public.pem")).expect("public key");
    let forged = encode(
        &Header::new(A::HS256),
        &claims(json!("admin")),
        &EncodingKey::from_secret(&public),
    )
    .expect("sign");
    assert_eq!(
        status(auth.authorize(&bearer(&forged), Scope::Infer)),
        401,
        "HS256 with the public key"
    );
    // An HS256 token to an ES256 verifier, and the other way round.
    let hs = sign(A::HS256, &claims(json!("infer")));
    assert_eq!(
        status(auth.authorize(&bearer(&hs), Scope::Infer)),
        401,
        "wrong algorithm"
    );
    // API keys keep working next to JWTs.
    assert_eq!(
        status(auth.authorize(&bearer(INFER_KEY), Scope::Infer)),
        200
    );
}

#[test]
fn redacted_hides_the_secret() {
    let config = AuthConfig {
        jwt: Some(jwt_config(JwtAlgorithm::HS256)),
        ..AuthConfig::default()
    };
    let text = format!("{:?}", config.redacted());
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[test]
fn tokens_without_a_subject_are_clients_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = authenticator(&dir, Some(jwt_config(JwtAlgorithm::HS256)));
    let unnamed = |exp_offset: u64| {
        let mut c = claims(json!("infer"));
        c.as_object_mut().expect("object").remove("sub");
        c["exp"] = json!(now() + 600 + exp_offset);
        sign(jsonwebtoken::Algorithm::HS256, &c)
    };
    let client = |token: &str| {
        auth.authorize(&bearer(token), Scope::Infer)
            .expect("valid token")
            .client()
    };
    let (a, b) = (unnamed(0), unnamed(1));
    assert_ne!(client(&a), client(&b), "two tokens, two rate-limit buckets");
    assert_eq!(client(&a), client(&a), "one token, one bucket");
    let named = sign(jsonwebtoken::Algorithm::HS256, &claims(json!("infer")));
    assert_eq!(
        client(&named),
        ClientKey::Key(Arc::from("jwt:svc-a")),
        "a subject names its client"
    );
}

#[test]
fn a_key_or_token_pasted_into_a_form_is_checked_as_a_header_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = authenticator(&dir, Some(jwt_config(JwtAlgorithm::HS256)));
    let p = auth
        .authorize_token(ADMIN_KEY, Scope::Admin)
        .expect("the admin key");
    assert_eq!(&*p.name, "ops");
    assert_eq!(p.expires_at, None, "keys do not expire");
    assert_eq!(status(auth.authorize_token(INFER_KEY, Scope::Admin)), 403);
    assert_eq!(
        status(auth.authorize_token("osp_not_a_key_0123456789", Scope::Admin)),
        401
    );
    let c = claims(json!("admin"));
    let p = auth
        .authorize_token(&sign(jsonwebtoken::Algorithm::HS256, &c), Scope::Admin)
        .expect("an admin token");
    assert_eq!(p.expires_at, c["exp"].as_u64(), "a token's exp is kept");
}
