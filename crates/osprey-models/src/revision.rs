//! A model revision: a content fingerprint of the files that decide the output, so
//! that a changed model never shares results with an old one.
//!
//! Every byte of the weights is hashed. Sampling blocks missed edits confined to a
//! small tensor (a bias, a layer norm), and then old vectors came back from the
//! cache; BLAKE3 hashes at GB/s, so the whole file costs tens of milliseconds, and
//! the hash runs on its own thread while the backend loads the same file.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::{ModelError, Result};

const FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

/// Read size: large enough that the hash, not the system calls, sets the pace.
const CHUNK: usize = 1 << 20;

/// Tells this fingerprint apart from the sampled one of earlier builds, so no
/// revision string of one can equal one of the other.
const DOMAIN: &str = "osprey model revision v2 (full weights)";

/// BLAKE3 over the config files and every byte of `weights` (and of an ONNX
/// model's external data file beside it); the first 16 hex digits.
pub fn revision_of(dir: &Path, weights: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new_derive_key(DOMAIN);
    for name in FILES {
        let p = dir.join(name);
        if p.is_file() {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            field(&mut hasher, name.as_bytes());
            field(&mut hasher, &bytes);
        }
    }
    hash_file(&mut hasher, weights)?;
    for data in external_data(weights) {
        if data.is_file() {
            hash_file(&mut hasher, &data)?;
        }
    }
    Ok(hasher.finalize().to_hex()[..16].to_string())
}

/// Where exporters put the weights of an ONNX graph over 2 GB: `model.onnx_data`
/// or `model.onnx.data` beside `model.onnx`.
fn external_data(weights: &Path) -> Vec<PathBuf> {
    let Some(name) = weights.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.ends_with(".onnx") {
        return Vec::new();
    }
    vec![
        weights.with_file_name(format!("{name}_data")),
        weights.with_file_name(format!("{name}.data")),
    ]
}

/// The file's length, then all its bytes, streamed in chunks.
fn hash_file(hasher: &mut blake3::Hasher, path: &Path) -> Result<()> {
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    hasher.update(&len.to_le_bytes());
    let mut buf = vec![0u8; CHUNK];
    let mut seen = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path)(e)),
        };
        hasher.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != len {
        // The file changed while it was read: the fingerprint would describe
        // neither version.
        return Err(io(path)(std::io::Error::other(
            "the file changed size while it was hashed",
        )));
    }
    Ok(())
}

fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError {
    let path = path.to_path_buf();
    move |source| ModelError::Io { path, source }
}

#[cfg(test)]
mod tests;
