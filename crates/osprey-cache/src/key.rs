//! Cache keys: a 256-bit BLAKE3 hash over everything that decides the output.

use std::fmt;

/// Identifies one cached result. Two keys are equal only if model, revision, every
/// output-changing option and the exact text are equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for CacheKey {
    /// The first 8 bytes in hex: enough to tell keys apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = blake3::Hash::from_bytes(self.0).to_hex();
        write!(f, "{}…", &hex[..16])
    }
}

/// The part of a key shared by every text of one request: model, revision and
/// options, hashed once; [`KeySpace::key`] then adds only the text.
#[derive(Clone)]
pub struct KeySpace {
    hasher: blake3::Hasher,
}

impl KeySpace {
    /// Starts a key space for a model. Add every option that changes the output with
    /// [`KeySpace::option`].
    pub fn new(model_id: &str, revision: &str) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("osprey cache key v1");
        field(&mut hasher, model_id.as_bytes());
        field(&mut hasher, revision.as_bytes());
        Self { hasher }
    }

    /// Adds a named option. Names and values are length-prefixed, so no two
    /// different lists of options hash alike.
    pub fn option(mut self, name: &str, value: impl fmt::Display) -> Self {
        field(&mut self.hasher, name.as_bytes());
        field(&mut self.hasher, value.to_string().as_bytes());
        self
    }

    /// Keeps one caller's keys apart from everyone else's (and from the keys of a
    /// space without a caller), for a cache not shared across credentials.
    pub fn caller(mut self, id: &[u8]) -> Self {
        field(&mut self.hasher, b"caller");
        field(&mut self.hasher, id);
        self
    }

    pub fn key(&self, text: &str) -> CacheKey {
        let mut h = self.hasher.clone();
        // A marker byte keeps the text apart from any option that might follow.
        h.update(&[0xff]);
        field(&mut h, text.as_bytes());
        CacheKey(*h.finalize().as_bytes())
    }

    /// The key of a text pair: a marker of its own keeps it apart from every
    /// single text, and the length prefixes keep `("ab", "c")` apart from `("a", "bc")`.
    pub fn key_pair(&self, first: &str, second: &str) -> CacheKey {
        let mut h = self.hasher.clone();
        h.update(&[0xfe]);
        field(&mut h, first.as_bytes());
        field(&mut h, second.as_bytes());
        CacheKey(*h.finalize().as_bytes())
    }
}

fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests;
