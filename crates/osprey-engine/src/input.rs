//! What a text model takes per item: one text, or a pair of texts (a
//! cross-encoder's query and document, or a classifier's sentence pair).

use osprey_cache::{CacheKey, KeySpace};
use osprey_models::{Encoded, TextTokenizer, TokenizeError};

/// One item of a request, as the cache keys it and the tokenizer reads it.
pub trait TextInput: Clone + Send + Sync + 'static {
    /// The item's cache key within a model's key space.
    fn key(&self, space: &KeySpace) -> CacheKey;
    /// Bytes of text, for the token estimate admission control charges.
    fn text_bytes(&self) -> usize;
    fn encode(&self, tokenizer: &TextTokenizer, truncate: bool) -> Result<Encoded, TokenizeError>;
    /// The item's text for a debug log.
    fn describe(&self) -> String;
}

impl TextInput for String {
    fn key(&self, space: &KeySpace) -> CacheKey {
        space.key(self)
    }
    fn text_bytes(&self) -> usize {
        self.len()
    }
    fn encode(&self, tokenizer: &TextTokenizer, truncate: bool) -> Result<Encoded, TokenizeError> {
        tokenizer.encode(self, truncate)
    }
    fn describe(&self) -> String {
        self.clone()
    }
}

/// An item of a classifier or cross-encoder: one text, or two texts the model
/// reads together, the first as segment A and the second as segment B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    One(String),
    Pair(String, String),
}

impl TextInput for Text {
    fn key(&self, space: &KeySpace) -> CacheKey {
        match self {
            Self::One(t) => space.key(t),
            Self::Pair(a, b) => space.key_pair(a, b),
        }
    }
    fn text_bytes(&self) -> usize {
        match self {
            Self::One(t) => t.len(),
            Self::Pair(a, b) => a.len() + b.len(),
        }
    }
    fn encode(&self, tokenizer: &TextTokenizer, truncate: bool) -> Result<Encoded, TokenizeError> {
        match self {
            Self::One(t) => tokenizer.encode(t, truncate),
            Self::Pair(a, b) => tokenizer.encode_pair(a, b, truncate),
        }
    }
    fn describe(&self) -> String {
        match self {
            Self::One(t) => t.clone(),
            Self::Pair(a, b) => format!("{a:?} / {b:?}"),
        }
    }
}
