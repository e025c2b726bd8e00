//! The bodies of the classification and reranking routes: `POST /predict` and
//! `POST /rerank` (text-embeddings-inference), `POST /v1/rerank` (Cohere and Jina,
//! as LangChain, LlamaIndex and Haystack send it), and `POST /tokenize`.

use serde::Deserialize;

use crate::{Inputs, yes};

/// One item to classify: a text, or a pair of texts read together.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Sequence {
    One(String),
    Pair(String, String),
}

/// `/predict`'s `inputs`, parsed as text-embeddings-inference parses them: a string
/// or a list of exactly two strings is one item (the list is a pair); any other
/// list holds one item per element.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PredictInputs {
    Single(Sequence),
    Batch(Vec<Sequence>),
}

impl PredictInputs {
    /// The items, and whether the answer is one list (a single item) rather than
    /// a list of lists.
    pub fn into_items(self) -> (Vec<Sequence>, bool) {
        match self {
            Self::Single(s) => (vec![s], true),
            Self::Batch(v) => (v, false),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PredictRequest {
    pub inputs: PredictInputs,
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default = "yes")]
    pub truncate: bool,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RerankRequest {
    pub query: String,
    pub texts: Vec<String>,
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub return_text: bool,
    #[serde(default = "yes")]
    pub truncate: bool,
    #[serde(default)]
    pub model: Option<String>,
}

/// A document of `/v1/rerank`: a string, or an object with its `text`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Document {
    Text(String),
    Object { text: String },
}

impl Document {
    pub fn into_text(self) -> String {
        match self {
            Self::Text(t) | Self::Object { text: t } => t,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CohereRerankRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub query: String,
    pub documents: Vec<Document>,
    #[serde(default)]
    pub top_n: Option<usize>,
    #[serde(default)]
    pub return_documents: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    pub inputs: Inputs,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    #[serde(default)]
    pub model: Option<String>,
}
