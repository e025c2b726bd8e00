//! Bearer JWTs: HS256 with a shared secret, RS256 or ES256 with a public key. Only
//! the configured algorithm is accepted (so never `none`, and never an HMAC made
//! with a public key); `exp` is required, and `nbf`, `aud` and `iss` are checked.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Map, Value};

use super::config::{JwtAlgorithm, JwtConfig};
use super::{AuthSetupError, Principal, Scope};

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    scope_claim: String,
}

/// Why a token was refused, for the 401 message (never the token itself).
#[derive(Debug)]
pub enum TokenError {
    Invalid(String),
    NoScope,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig) -> Result<Self, AuthSetupError> {
        let setup = |m: String| AuthSetupError::Jwt(m);
        let (alg, key) = match config.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = config
                    .secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| setup("HS256 needs auth.jwt.secret".into()))?;
                if secret.len() < 32 {
                    return Err(setup("auth.jwt.secret must have at least 32 bytes".into()));
                }
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            alg @ (JwtAlgorithm::RS256 | JwtAlgorithm::ES256) => {
                let path = config
                    .public_key_file
                    .as_ref()
                    .ok_or_else(|| setup(format!("{alg:?} needs auth.jwt.public_key_file")))?;
                let pem =
                    std::fs::read(path).map_err(|e| setup(format!("{}: {e}", path.display())))?;
                let key = if alg == JwtAlgorithm::RS256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                }
                .map_err(|e| setup(format!("{}: {e}", path.display())))?;
                let alg = if alg == JwtAlgorithm::RS256 {
                    Algorithm::RS256
                } else {
                    Algorithm::ES256
                };
                (alg, key)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => {
                // Without an audience, a token the same issuer signed for any other
                // service is accepted here too.
                tracing::warn!(
                    "auth.jwt.audience is not set: tokens issued for any audience are accepted"
                );
                validation.validate_aud = false;
            }
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        Ok(Self {
            key,
            validation,
            scope_claim: config.scope_claim.clone(),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let data = decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| TokenError::Invalid(describe(&e)))?;
        let claims = data.claims;
        let scope = match claims.get(&self.scope_claim) {
            Some(Value::String(s)) => Scope::highest(s.split_ascii_whitespace()),
            Some(Value::Array(items)) => Scope::highest(items.iter().filter_map(Value::as_str)),
            _ => None,
        }
        .ok_or(TokenError::NoScope)?;
        // The subject names the client for rate limits. A token without one is its
        // own client, named by a digest of the token: were such tokens to share one
        // name, one caller's traffic would use up every other's limit.
        let name = match claims.get("sub").and_then(Value::as_str) {
            Some(subject) => format!("jwt:{subject}"),
            None => format!("jwt:#{}", &super::digest_hex(token)[..16]),
        };
        Ok(Principal {
            name: Arc::from(name),
            scope,
            slot: None,
            // Required and checked above: a number.
            expires_at: claims
                .get("exp")
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))),
        })
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidAudience => "the token is for another audience".into(),
        K::InvalidIssuer => "the token is from another issuer".into(),
        K::InvalidSignature => "the token's signature does not verify".into(),
        K::InvalidAlgorithm | K::InvalidAlgorithmName => {
            "the token is signed with an algorithm this server does not accept".into()
        }
        K::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
        _ => "the token is malformed".into(),
    }
}
