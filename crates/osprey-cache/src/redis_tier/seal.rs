//! The optional seal on values in Redis: a keyed BLAKE3 MAC over the cache key and
//! the encoded entry, appended to the value. Whoever can write the shared prefix
//! but lacks the secret cannot make a value this instance accepts, nor move a valid
//! value to another key (the key is under the MAC).

use crate::{CacheError, CacheKey, MacKey, Result};

const TAG: usize = 32;

pub struct Seal {
    key: [u8; 32],
}

impl Seal {
    /// The MAC key is derived from the configured secret, so any length works and
    /// the same secret used elsewhere yields an unrelated key.
    pub fn new(secret: &MacKey) -> Self {
        Self {
            key: blake3::derive_key("osprey redis value mac v1", secret.expose()),
        }
    }

    fn tag(&self, key: &CacheKey, body: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(key.as_bytes());
        h.update(body);
        h.finalize()
    }

    /// The value with its tag appended.
    pub fn seal(&self, key: &CacheKey, mut body: Vec<u8>) -> Vec<u8> {
        let tag = self.tag(key, &body);
        body.extend_from_slice(tag.as_bytes());
        body
    }

    /// The value without its tag, if the tag is right for this key.
    pub fn open<'a>(&self, key: &CacheKey, value: &'a [u8]) -> Result<&'a [u8]> {
        let cut = value
            .len()
            .checked_sub(TAG)
            .ok_or(CacheError::Invalid("no seal"))?;
        let (body, tag) = value.split_at(cut);
        let tag: [u8; TAG] = tag.try_into().map_err(|_| CacheError::Invalid("no seal"))?;
        // blake3::Hash compares in constant time.
        if self.tag(key, body) == blake3::Hash::from_bytes(tag) {
            Ok(body)
        } else {
            Err(CacheError::Invalid("bad seal"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySpace;

    #[test]
    fn opens_only_what_it_sealed_for_that_key() {
        let seal = Seal::new(&MacKey::new("a secret of sixteen+"));
        let (a, b) = (
            KeySpace::new("m", "r").key("a"),
            KeySpace::new("m", "r").key("b"),
        );
        let sealed = seal.seal(&a, b"value".to_vec());
        assert_eq!(seal.open(&a, &sealed).ok(), Some(&b"value"[..]));
        assert!(seal.open(&b, &sealed).is_err(), "moved to another key");
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(seal.open(&a, &flipped).is_err(), "altered");
        assert!(seal.open(&a, b"value").is_err(), "unsealed");
        let other = Seal::new(&MacKey::new("another secret, 16+"));
        assert!(other.open(&a, &sealed).is_err(), "another secret");
    }
}
