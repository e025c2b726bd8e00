//! API keys, held only as SHA-256 digests and compared in constant time.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthSetupError, Principal, Scope};

struct Entry {
    principal: Principal,
    digest: [u8; 32],
}

/// Every configured key's digest with the name and scope it grants.
#[derive(Default)]
pub struct KeyStore {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    scope: Scope,
    sha256: String,
}

/// SHA-256 of a key, as stored in the keys file.
pub fn digest_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl KeyStore {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the `[[keys]]` of a TOML file.
    pub fn load_file(&mut self, path: &Path) -> Result<(), AuthSetupError> {
        let err = |message: String| AuthSetupError::KeysFile {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: KeysFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for (i, e) in file.keys.into_iter().enumerate() {
            let digest = parse_digest(&e.sha256).ok_or_else(|| {
                err(format!(
                    "key {i} (`{}`): sha256 must be 64 hex digits",
                    e.name
                ))
            })?;
            self.add(&e.name, e.scope, digest)?;
        }
        Ok(())
    }

    /// Adds `name:scope:key` entries separated by commas, as found in an
    /// environment variable. The error never repeats the key.
    pub fn load_env_value(&mut self, var: &str, value: &str) -> Result<(), AuthSetupError> {
        for (i, item) in value.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            let err = |message: &str| AuthSetupError::KeysEnv {
                var: var.to_owned(),
                message: format!("entry {i}: {message}"),
            };
            let mut parts = item.splitn(3, ':');
            let (Some(name), Some(scope), Some(key)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(err("expected name:scope:key"));
            };
            let scope = Scope::parse(scope).ok_or_else(|| err("scope must be infer or admin"))?;
            let digest = match key.strip_prefix("sha256:") {
                Some(h) => parse_digest(h).ok_or_else(|| err("sha256 must be 64 hex digits"))?,
                None if key.len() < 16 => return Err(err("keys must have at least 16 characters")),
                None => Sha256::digest(key.as_bytes()).into(),
            };
            self.add(name, scope, digest)?;
        }
        Ok(())
    }

    fn add(&mut self, name: &str, scope: Scope, digest: [u8; 32]) -> Result<(), AuthSetupError> {
        if name.is_empty() {
            return Err(AuthSetupError::Invalid("a key has an empty name".into()));
        }
        if self.entries.iter().any(|e| *e.principal.name == *name) {
            return Err(AuthSetupError::Invalid(format!(
                "two keys are named `{name}`"
            )));
        }
        let slot = Some(self.entries.len());
        self.entries.push(Entry {
            principal: Principal {
                name: Arc::from(name),
                scope,
                slot,
                expires_at: None,
            },
            digest,
        });
        Ok(())
    }

    /// The key's holder. Hashes the presented key once and compares its digest with
    /// every entry in constant time, without stopping at a match, so neither the
    /// comparison nor the loop tells how close a guess came or which key matched.
    pub fn verify(&self, presented: &str) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&digest)) {
                found = Some(&e.principal);
            }
        }
        found
    }
}

fn parse_digest(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text.trim(), &mut out).ok()?;
    Some(out)
}
