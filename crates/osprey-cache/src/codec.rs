//! The byte format of an entry in the disk and Redis tiers.
//!
//! ```text
//! [version u8][flags u8][checksum 8 bytes][payload]
//! payload (zstd-compressed when flags & 1): tokens u32 LE, dims u32 LE, dims × f32 LE
//! ```
//! The checksum (BLAKE3 of the uncompressed payload) catches torn or corrupted
//! entries; the version byte makes a future format change read as a miss, never as
//! garbage.

use crate::{CacheError, Entry, Result};

pub const CODEC_VERSION: u8 = 1;
const FLAG_ZSTD: u8 = 1;
const HEADER: usize = 10;
/// No model emits more dimensions than this; larger claims are corruption.
const MAX_DIMS: usize = 1 << 16;
/// Compress only when it saves at least this share of the payload.
const MIN_SAVING: f64 = 0.10;

pub fn encode(entry: &Entry) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + entry.vector.len() * 4);
    payload.extend_from_slice(&entry.tokens.to_le_bytes());
    payload.extend_from_slice(&(entry.vector.len() as u32).to_le_bytes());
    for x in entry.vector.iter() {
        payload.extend_from_slice(&x.to_le_bytes());
    }
    let checksum = checksum(&payload);
    let (flags, body) = match zstd::bulk::compress(&payload, 1) {
        Ok(z) if (z.len() as f64) < payload.len() as f64 * (1.0 - MIN_SAVING) => (FLAG_ZSTD, z),
        _ => (0, payload),
    };
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(CODEC_VERSION);
    out.push(flags);
    out.extend_from_slice(&checksum);
    out.extend_from_slice(&body);
    out
}

pub fn decode(bytes: &[u8]) -> Result<Entry> {
    let (&version, rest) = bytes.split_first().ok_or(CacheError::Corrupt("empty"))?;
    if version != CODEC_VERSION {
        return Err(CacheError::Version(version, CODEC_VERSION));
    }
    if rest.len() < HEADER - 1 {
        return Err(CacheError::Corrupt("short header"));
    }
    let flags = rest[0];
    let expected = &rest[1..9];
    let body = &rest[9..];
    let inflated;
    let payload = match flags {
        0 => body,
        FLAG_ZSTD => {
            inflated = zstd::bulk::decompress(body, 8 + MAX_DIMS * 4)
                .map_err(|_| CacheError::Corrupt("bad zstd stream"))?;
            &inflated[..]
        }
        _ => return Err(CacheError::Corrupt("unknown flags")),
    };
    if checksum(payload) != expected {
        return Err(CacheError::Corrupt("checksum mismatch"));
    }
    if payload.len() < 8 {
        return Err(CacheError::Corrupt("short payload"));
    }
    let tokens = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    let dims = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]) as usize;
    let floats = &payload[8..];
    if dims > MAX_DIMS || floats.len() != dims * 4 {
        return Err(CacheError::Corrupt("length mismatch"));
    }
    let vector: Vec<f32> = floats
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Entry::new(vector, tokens))
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&blake3::hash(payload).as_bytes()[..8]);
    out
}

#[cfg(test)]
mod tests;
