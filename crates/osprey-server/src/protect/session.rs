//! Dashboard sessions: a browser cannot attach a bearer header, so an admin key
//! or token pasted into the login form is traded for a cookie holding a random
//! session id. The id is all the cookie holds; the server keeps who logged in and
//! until when, under the id's digest (a memory dump yields no usable cookie).
//!
//! Sessions live in this process: they end with it, so a key removed or rotated
//! (which takes a restart) leaves no session behind, and a logout ends one at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::auth::Principal;

/// The cookie's name. It is sent back only under `/dashboard` (its path).
pub const COOKIE: &str = "osprey_dashboard";
/// Random bytes in a session id.
const ID_BYTES: usize = 32;
/// Sessions held at most: only admins log in, so this is never reached in use;
/// it bounds memory should an admin credential be used to log in in a loop.
const MAX_SESSIONS: usize = 1024;

struct Session {
    principal: Principal,
    expires: Instant,
}

pub struct Sessions {
    ttl: Duration,
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no randomness for a session id: {0}")]
pub struct NoRandomness(getrandom::Error);

impl Sessions {
    /// Sessions lasting `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_digest: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A map of plain values: a panic elsewhere cannot leave it torn.
        self.by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How long a session made now for `principal` lasts: the configured time,
    /// or less when its credential (a JWT) expires sooner.
    pub fn lifetime(&self, principal: &Principal, now_unix: u64) -> Duration {
        match principal.expires_at {
            Some(exp) => self
                .ttl
                .min(Duration::from_secs(exp.saturating_sub(now_unix))),
            None => self.ttl,
        }
    }

    /// Starts a session for `principal` lasting `lifetime`; returns its id, the
    /// cookie's value.
    pub fn start(&self, principal: Principal, lifetime: Duration) -> Result<String, NoRandomness> {
        let mut id = [0u8; ID_BYTES];
        getrandom::fill(&mut id).map_err(NoRandomness)?;
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            // Still full of live sessions: the one nearest its end goes.
            let soonest = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k);
            if let Some(k) = soonest {
                map.remove(&k);
            }
        }
        map.insert(
            digest(&id),
            Session {
                principal,
                expires: now + lifetime,
            },
        );
        Ok(URL_SAFE_NO_PAD.encode(id))
    }

    /// Who a cookie's session belongs to, while it lasts.
    pub fn get(&self, cookie: &str) -> Option<Principal> {
        let key = digest(&decode(cookie)?);
        let mut map = self.lock();
        let session = map.get(&key)?;
        if session.expires <= Instant::now() {
            map.remove(&key);
            return None;
        }
        Some(session.principal.clone())
    }

    /// Ends a cookie's session; whether there was one.
    pub fn end(&self, cookie: &str) -> bool {
        decode(cookie).is_some_and(|id| self.lock().remove(&digest(&id)).is_some())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

fn digest(id: &[u8; ID_BYTES]) -> [u8; 32] {
    Sha256::digest(id).into()
}

/// A cookie value as `start` makes them, or `None`.
fn decode(cookie: &str) -> Option<[u8; ID_BYTES]> {
    let mut id = [0u8; ID_BYTES];
    match URL_SAFE_NO_PAD.decode_slice(cookie.as_bytes(), &mut id) {
        Ok(ID_BYTES) => Some(id),
        _ => None,
    }
}

/// The values of every session cookie the request carries (a browser may send
/// more than one of a name, from different paths).
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value.trim())
        })
}

/// `Set-Cookie` for a new session: script cannot read it (HttpOnly), other sites
/// cannot make the browser send it (SameSite=Strict), it is sent back to the
/// dashboard's paths only, and, over TLS, never in clear text.
pub fn set_cookie(id: &str, lifetime: Duration, secure: bool) -> HeaderValue {
    cookie_header(id, lifetime.as_secs(), secure)
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    cookie_header("", 0, secure)
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // Our own id is base64url: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::Scope;

    fn admin(expires_at: Option<u64>) -> Principal {
        Principal {
            name: Arc::from("ops"),
            scope: Scope::Admin,
            slot: Some(1),
            expires_at,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_lasts_its_lifetime_and_ends_at_logout() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s
            .start(admin(None), Duration::from_secs(60))
            .expect("random");
        assert_eq!(id.len(), 43, "32 bytes, base64url: {id}");
        assert_eq!(s.get(&id).map(|p| p.name), Some(Arc::from("ops")));
        let other = s
            .start(admin(None), Duration::from_secs(60))
            .expect("random");
        assert_ne!(id, other, "ids are random");
        assert!(s.end(&other));
        assert!(s.get(&other).is_none());
        assert!(!s.end(&other), "ended once");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(s.get(&id).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(s.get(&id).is_none(), "expired");
        assert_eq!(s.len(), 0, "an expired session is dropped when seen");
    }

    #[test]
    fn forged_and_malformed_cookies_find_nothing() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s
            .start(admin(None), Duration::from_secs(60))
            .expect("random");
        let mut forged = id.clone().into_bytes();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        for bad in [forged.as_str(), "", "x", "not base64 at all!", &id[..42]] {
            assert!(s.get(bad).is_none(), "{bad:?}");
        }
        let longer = format!("{id}AA");
        assert!(s.get(&longer).is_none());
    }

    #[test]
    fn a_token_session_ends_when_the_token_does() {
        let s = Sessions::new(Duration::from_secs(3600));
        assert_eq!(s.lifetime(&admin(None), 1000), Duration::from_secs(3600));
        assert_eq!(
            s.lifetime(&admin(Some(1600)), 1000),
            Duration::from_secs(600)
        );
        assert_eq!(s.lifetime(&admin(Some(900)), 1000), Duration::ZERO);
        assert_eq!(
            s.lifetime(&admin(Some(100_000)), 1000),
            Duration::from_secs(3600)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_store_is_bounded() {
        let s = Sessions::new(Duration::from_secs(60));
        let first = s
            .start(admin(None), Duration::from_secs(1))
            .expect("random");
        for _ in 1..MAX_SESSIONS + 5 {
            s.start(admin(None), Duration::from_secs(60))
                .expect("random");
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            s.get(&first).is_none(),
            "the one nearest its end went first"
        );
    }

    #[test]
    fn cookies_are_found_among_others_and_headers_are_strict() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; osprey_dashboard=abc ; b=2"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("osprey_dashboard=def"),
        );
        assert_eq!(cookies(&h).collect::<Vec<_>>(), ["abc", "def"]);
        let set = set_cookie("abc", Duration::from_secs(28_800), true);
        assert_eq!(
            set,
            "osprey_dashboard=abc; Path=/dashboard; Max-Age=28800; HttpOnly; SameSite=Strict; Secure"
        );
        let clear = clear_cookie(false);
        assert_eq!(
            clear,
            "osprey_dashboard=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }
}
