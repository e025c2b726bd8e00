//! A model revision: a content hash of the files that decide the output, so that a
//! changed model never shares results with an old one.

use std::path::Path;

use crate::{ModelError, Result};

const FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

/// Hashes the config files and `weights` (memory-mapped, hashed on all cores).
/// Returns the first 16 hex digits of the BLAKE3 digest.
pub fn revision_of(dir: &Path, weights: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    for name in FILES {
        let p = dir.join(name);
        if p.is_file() {
            let bytes = std::fs::read(&p).map_err(|source| ModelError::Io { path: p, source })?;
            hasher.update(name.as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    hasher
        .update_mmap_rayon(weights)
        .map_err(|source| ModelError::Io {
            path: weights.to_path_buf(),
            source,
        })?;
    Ok(hasher.finalize().to_hex()[..16].to_string())
}
