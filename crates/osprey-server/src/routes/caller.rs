//! Who a request's cached results belong to when `cache.share_across_keys` is off.
//!
//! The identity is a digest of the credential the auth layer accepted for this very
//! request, read from the same header it reads (`Authorization: Bearer`, else
//! `x-api-key`). Each API key thus gets a cache of its own; a JWT's entries last as
//! long as the token is reused. A credential never appears in a key: only this
//! digest goes into the (hashed) cache key.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

/// The credential's identity, or `None` without one (auth off: everyone is the
/// same anonymous caller).
pub(crate) fn identity(headers: &HeaderMap) -> Option<[u8; 32]> {
    let token = credential(headers)?;
    let mut h = Sha256::new();
    // A domain of its own: this digest equals no keys-file digest.
    h.update(b"osprey cache caller v1\0");
    h.update(token.as_bytes());
    Some(h.finalize().into())
}

/// The credential as the auth layer takes it.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (kind, rest) = v.split_once(' ')?;
        return kind
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn one_key_one_identity_however_it_is_sent() {
        let bearer = identity(&with("authorization", "Bearer key-a"));
        assert!(bearer.is_some());
        assert_eq!(bearer, identity(&with("authorization", "bearer  key-a ")));
        assert_eq!(bearer, identity(&with("x-api-key", "key-a")));
        assert_ne!(bearer, identity(&with("x-api-key", "key-b")));
        assert_eq!(identity(&HeaderMap::new()), None);
        assert_eq!(identity(&with("authorization", "Basic eA==")), None);
    }
}
