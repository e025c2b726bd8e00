//! Tokenization with Osprey's rules on top of the shipped `tokenizer.json`: no
//! padding (the batcher packs or pads per batch) and truncation at the model's own
//! maximum sequence length, whatever the file says.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{ModelError, Result};

/// Token ids of one input, ready for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Whether the input was cut to the maximum length.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenizeError {
    #[error("input has {tokens} tokens, more than the model's maximum of {max}")]
    TooLong { tokens: usize, max: usize },
    #[error("tokenizer failed: {0}")]
    Failed(String),
}

pub struct TextTokenizer {
    truncating: Tokenizer,
    whole: Tokenizer,
    max_len: usize,
}

impl TextTokenizer {
    pub fn load(path: &Path, max_len: usize) -> Result<Self> {
        let mut whole = Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        whole.with_padding(None);
        whole
            .with_truncation(None)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let mut truncating = whole.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(Self {
            truncating,
            whole,
            max_len,
        })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Encodes one text with special tokens. Over the maximum length it is cut when
    /// `truncate` holds, and refused with the full token count otherwise.
    pub fn encode(&self, text: &str, truncate: bool) -> Result<Encoded, TokenizeError> {
        let enc = self
            .truncating
            .encode_fast(text, true)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        let truncated = !enc.get_overflowing().is_empty();
        if truncated && !truncate {
            // Only this error path pays for a second, untruncated encoding.
            let tokens = self
                .whole
                .encode_fast(text, true)
                .map_err(|e| TokenizeError::Failed(e.to_string()))?
                .len();
            return Err(TokenizeError::TooLong {
                tokens,
                max: self.max_len,
            });
        }
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            truncated,
        })
    }
}
