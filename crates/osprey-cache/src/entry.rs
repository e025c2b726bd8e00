use std::sync::Arc;

/// One cached result: the vector a text maps to and the tokens it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub vector: Arc<[f32]>,
    /// Tokens the model saw for this text, special tokens included (for usage reports).
    pub tokens: u32,
}

impl Entry {
    pub fn new(vector: impl Into<Arc<[f32]>>, tokens: u32) -> Self {
        Self {
            vector: vector.into(),
            tokens,
        }
    }

    /// Approximate bytes held in memory: the floats plus key, header and bookkeeping.
    pub fn weight(&self) -> u32 {
        let bytes = self.vector.len() * 4 + 32 + 16 + 64;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}
