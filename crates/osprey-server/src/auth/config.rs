use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[auth]` section. Off by default, for local use; `enabled = true` plus keys
/// (a file or an environment variable) or a `[auth.jwt]` section turns it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub enabled: bool,
    /// TOML file of `[[keys]]` entries: `name`, `scope` (`infer` or `admin`) and
    /// `sha256` (hex digest of the key; the key itself is never stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_file: Option<PathBuf>,
    /// Environment variable holding more keys: `name:scope:key` entries separated by
    /// commas, where `key` is the key itself or `sha256:<hex digest>`.
    pub keys_env: String,
    /// Serve `/metrics` without credentials (for a scraper inside the network).
    pub metrics_public: bool,
    /// Serve the health probes without credentials: `/health/ready`,
    /// `/v2/health/live`, `/v2/health/ready` and the per-model v2 readiness
    /// routes. Probes and load balancers cannot send a key. (`/health/live` is
    /// always open.)
    pub public_probes: bool,
    /// How long a dashboard login lasts (seconds): a browser cannot send a bearer
    /// header, so `/dashboard` offers a login form that trades an admin key or
    /// token for a session cookie. 0 turns the login off.
    pub dashboard_session_secs: u64,
    /// Bearer JWTs, checked next to the API keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            keys_file: None,
            keys_env: "OSPREY_API_KEYS".into(),
            metrics_public: false,
            public_probes: true,
            dashboard_session_secs: 8 * 3600,
            jwt: None,
        }
    }
}

impl AuthConfig {
    /// A copy safe to print: secrets replaced.
    pub fn redacted(&self) -> Self {
        let mut out = self.clone();
        if let Some(jwt) = &mut out.jwt
            && jwt.secret.is_some()
        {
            jwt.secret = Some("<redacted>".into());
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

/// `[auth.jwt]`: which tokens to accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret (better set through `OSPREY_AUTH__JWT__SECRET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// RS256/ES256 public key, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// Required `aud` value, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Required `iss` value, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Claim holding the scopes: a space-separated string or an array of strings.
    #[serde(default = "scope_claim")]
    pub scope_claim: String,
    /// Clock skew tolerated on `exp` and `nbf` (seconds).
    #[serde(default = "leeway")]
    pub leeway_secs: u64,
}

fn scope_claim() -> String {
    "scope".into()
}

fn leeway() -> u64 {
    30
}
