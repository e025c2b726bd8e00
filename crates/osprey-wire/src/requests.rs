//! The bodies of `POST /embed` (text-embeddings-inference) and `POST /v1/embeddings`
//! (OpenAI).

use serde::Deserialize;

use crate::Inputs;

/// Serde default for flags that are on unless a request turns them off.
pub fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "yes")]
    pub normalize: bool,
    #[serde(default = "yes")]
    pub truncate: bool,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    pub input: Inputs,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    #[serde(default)]
    pub dimensions: Option<i64>,
    /// Not in OpenAI's API: refuse over-long inputs instead of cutting them.
    #[serde(default = "yes")]
    pub truncate: bool,
}
