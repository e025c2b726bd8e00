//! A model revision: a content fingerprint of the files that decide the output, so
//! that a changed model never shares results with an old one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::{ModelError, Result};

const FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

/// Blocks sampled evenly across the weights file, and their size. Hashing all of a
/// large file would cost more than loading it; any retraining or re-quantization
/// changes nearly every block, and the file's header (names, shapes, offsets) and
/// size are always covered.
const SAMPLES: u64 = 256;
const BLOCK: usize = 16 * 1024;

/// BLAKE3 over the config files and a sample of `weights`; the first 16 hex digits.
pub fn revision_of(dir: &Path, weights: &Path) -> Result<String> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    let mut hasher = blake3::Hasher::new();
    for name in FILES {
        let p = dir.join(name);
        if p.is_file() {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            hasher.update(name.as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    let mut file = File::open(weights).map_err(io(weights))?;
    let len = file.metadata().map_err(io(weights))?.len();
    hasher.update(&len.to_le_bytes());
    let mut buf = vec![0u8; BLOCK];
    // The first block holds the safetensors header; the rest are spread evenly.
    let stride = (len / SAMPLES).max(BLOCK as u64);
    let mut offset = 0;
    while offset < len {
        file.seek(SeekFrom::Start(offset)).map_err(io(weights))?;
        let want = BLOCK.min((len - offset) as usize);
        file.read_exact(&mut buf[..want]).map_err(io(weights))?;
        hasher.update(&buf[..want]);
        offset += stride;
    }
    Ok(hasher.finalize().to_hex()[..16].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_sampled_change_changes_the_revision() {
        let dir = std::env::temp_dir().join(format!("osprey-rev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("config.json"), b"{}").expect("config");
        let weights = dir.join("w.bin");
        let mut data = vec![7u8; 5 * 1024 * 1024];
        std::fs::write(&weights, &data).expect("weights");
        let a = revision_of(&dir, &weights).expect("rev");
        assert_eq!(a, revision_of(&dir, &weights).expect("rev"), "stable");
        data[0] = 8; // header byte
        std::fs::write(&weights, &data).expect("weights");
        let b = revision_of(&dir, &weights).expect("rev");
        assert_ne!(a, b);
        std::fs::write(dir.join("config.json"), b"{\"x\":1}").expect("config");
        assert_ne!(b, revision_of(&dir, &weights).expect("rev"));
        data.push(0); // size
        std::fs::write(&weights, &data).expect("weights");
        let c = revision_of(&dir, &weights).expect("rev");
        assert_ne!(b, c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
