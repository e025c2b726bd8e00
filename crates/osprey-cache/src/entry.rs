use std::sync::{Arc, OnceLock};

use crate::CacheError;

/// One cached result: the vector a text maps to and the tokens it cost.
#[derive(Debug, Clone)]
pub struct Entry {
    pub vector: Arc<[f32]>,
    /// Tokens the model saw for this text, special tokens included (for usage reports).
    pub tokens: u32,
    /// The vector as a JSON array, rendered once and shared by every clone: float
    /// formatting is the largest cost of answering a cache hit.
    json: Arc<OnceLock<Box<[u8]>>>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.tokens == other.tokens && self.vector == other.vector
    }
}

impl Entry {
    pub fn new(vector: impl Into<Arc<[f32]>>, tokens: u32) -> Self {
        Self {
            vector: vector.into(),
            tokens,
            json: Arc::default(),
        }
    }

    /// The vector as a JSON array of numbers (`[0.1,-0.2,…]`), exactly as serde_json
    /// writes a `[f32]`.
    pub fn json(&self) -> &[u8] {
        self.json.get_or_init(|| {
            // Serializing a float slice cannot fail; the fallback is never taken.
            serde_json::to_vec(&self.vector[..])
                .unwrap_or_else(|_| b"[]".to_vec())
                .into_boxed_slice()
        })
    }

    /// Whether this entry can be what a model of `dims` outputs: a value read from a
    /// shared tier is only well-formed, not necessarily right, and a wrong length
    /// or a NaN or infinity must never be served or copied into other tiers.
    pub fn check(&self, dims: usize) -> Result<(), CacheError> {
        if self.vector.len() != dims {
            return Err(CacheError::Invalid("wrong number of dimensions"));
        }
        if !self.vector.iter().all(|x| x.is_finite()) {
            return Err(CacheError::Invalid("a value is not finite"));
        }
        Ok(())
    }

    /// Approximate bytes held in memory: the floats, their JSON rendering, the key
    /// and bookkeeping.
    pub fn weight(&self) -> u32 {
        let bytes = self.vector.len() * (4 + 12) + 32 + 16 + 96;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_serde_json() {
        let v = vec![
            0.1f32,
            -2.5e-8,
            3.0,
            f32::MIN_POSITIVE,
            -0.0,
            1e30,
            f32::NAN,
        ];
        let e = Entry::new(v.clone(), 1);
        let expected = serde_json::to_vec(&v).expect("serialize");
        assert_eq!(e.json(), expected.as_slice());
        // Rendered once, shared by clones.
        let c = e.clone();
        assert!(std::ptr::eq(c.json(), e.json()));
    }

    #[test]
    fn check_wants_the_length_and_finite_values() {
        assert!(Entry::new(vec![0.5f32, -1.0], 1).check(2).is_ok());
        assert!(Entry::new(vec![0.5f32, -1.0], 1).check(3).is_err());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(Entry::new(vec![0.5f32, bad], 1).check(2).is_err(), "{bad}");
        }
    }
}
