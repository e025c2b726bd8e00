//! Who is calling: API keys and bearer JWTs, and what each route needs.

mod config;
mod jwt;
mod keys;

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

pub use config::{AuthConfig, JwtAlgorithm, JwtConfig};
pub use keys::{KeyStore, digest_hex};

use crate::ApiError;
use crate::rate_limit::ClientKey;
use jwt::{JwtVerifier, TokenError};

/// What a credential allows: `admin` includes `infer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Infer,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "infer" => Some(Self::Infer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The widest scope named in a list; unknown names are ignored.
    fn highest<'a>(names: impl Iterator<Item = &'a str>) -> Option<Self> {
        names.filter_map(Self::parse).max()
    }
}

/// An authenticated client: the key's name (or `jwt:<sub>`) and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: Arc<str>,
    pub scope: Scope,
    /// The API key's place in the key store; `None` for a JWT.
    pub slot: Option<usize>,
    /// When the credential stops being valid (a JWT's `exp`, unix seconds);
    /// `None` for an API key.
    pub expires_at: Option<u64>,
}

impl Principal {
    /// Who the rate limits count this caller as.
    pub fn client(&self) -> ClientKey {
        match self.slot {
            Some(i) => ClientKey::Slot(i),
            None => ClientKey::Key(self.name.clone()),
        }
    }
}

/// Configuration that cannot serve: refused at start-up, never at request time.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("keys file {path}: {message}")]
    KeysFile { path: String, message: String },
    #[error("API keys in ${var}: {message}")]
    KeysEnv { var: String, message: String },
    #[error("auth.jwt: {0}")]
    Jwt(String),
    #[error("auth: {0}")]
    Invalid(String),
}

pub struct Authenticator {
    keys: KeyStore,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    /// `None` when auth is off.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, AuthSetupError> {
        if !config.enabled {
            return Ok(None);
        }
        let mut keys = KeyStore::default();
        if let Some(path) = &config.keys_file {
            keys.load_file(path)?;
        }
        if !config.keys_env.is_empty()
            && let Ok(value) = std::env::var(&config.keys_env)
        {
            keys.load_env_value(&config.keys_env, &value)?;
        }
        let jwt = config.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        if keys.is_empty() && jwt.is_none() {
            return Err(AuthSetupError::Invalid(format!(
                "auth is enabled but no credential is configured: set auth.keys_file, ${}, or [auth.jwt]",
                config.keys_env
            )));
        }
        tracing::info!(keys = keys.len(), jwt = jwt.is_some(), "authentication on");
        Ok(Some(Self { keys, jwt }))
    }

    /// Configured API keys: each has its own rate-limit bucket.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The caller, from `Authorization: Bearer <key or JWT>` or `x-api-key: <key>`;
    /// then whether its scope reaches `needed`. An API key's holder is borrowed from
    /// the key store: copying its name would be a reference count bumped by every
    /// request from every core.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        needed: Scope,
    ) -> Result<Cow<'_, Principal>, ApiError> {
        let principal = self.authenticate(headers)?;
        check_scope(&principal, needed)?;
        Ok(principal)
    }

    /// As [`Self::authorize`], for a key or token given some other way than a
    /// header (the dashboard's login form).
    pub fn authorize_token(
        &self,
        token: &str,
        needed: Scope,
    ) -> Result<Cow<'_, Principal>, ApiError> {
        let principal = self.verify(token)?;
        check_scope(&principal, needed)?;
        Ok(principal)
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<Cow<'_, Principal>, ApiError> {
        let token = if let Some(v) = headers.get(header::AUTHORIZATION) {
            let v = v
                .to_str()
                .map_err(|_| unauthorized("the authorization header is not text"))?;
            let (kind, rest) = v.trim().split_once(' ').unwrap_or((v, ""));
            if !kind.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
                return Err(unauthorized("send `Authorization: Bearer <key or token>`"));
            }
            rest.trim()
        } else if let Some(v) = headers.get("x-api-key") {
            v.to_str()
                .map_err(|_| unauthorized("the x-api-key header is not text"))?
                .trim()
        } else {
            return Err(ApiError::Unauthorized {
                message: "credentials required: send `Authorization: Bearer <key or token>`".into(),
                missing: true,
            });
        };
        self.verify(token)
    }

    /// The holder of an API key or JWT.
    fn verify(&self, token: &str) -> Result<Cow<'_, Principal>, ApiError> {
        if let Some(p) = self.keys.verify(token) {
            return Ok(Cow::Borrowed(p));
        }
        // A JWT is three base64url parts; anything else was meant as a key.
        match &self.jwt {
            Some(jwt) if token.bytes().filter(|&b| b == b'.').count() == 2 => {
                jwt.verify(token).map(Cow::Owned).map_err(|e| match e {
                    TokenError::Invalid(why) => unauthorized(&why),
                    TokenError::NoScope => ApiError::Forbidden(
                        "the token grants neither the `infer` nor the `admin` scope".into(),
                    ),
                })
            }
            _ => Err(unauthorized("invalid API key")),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized {
        message: message.to_owned(),
        missing: false,
    }
}

fn check_scope(principal: &Principal, needed: Scope) -> Result<(), ApiError> {
    if principal.scope < needed {
        return Err(ApiError::Forbidden(format!(
            "this route needs the `{}` scope; the credential `{}` has `{}`",
            scope_name(needed),
            principal.name,
            scope_name(principal.scope)
        )));
    }
    Ok(())
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Infer => "infer",
        Scope::Admin => "admin",
    }
}

#[cfg(test)]
mod tests;
