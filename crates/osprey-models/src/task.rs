//! What a model does, and how it is told from its files when the configuration
//! does not say.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{ModelError, Result};

/// The kinds of model Osprey serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One vector per text (sentence-transformers and `BertModel` checkpoints).
    Embed,
    /// One score per label per text or text pair (`*ForSequenceClassification`).
    Classify,
    /// One relevance score per (query, text) pair: a cross-encoder, which is a
    /// sequence classifier with one label.
    Rerank,
    /// Any ONNX graph, fed and read as named tensors (KServe v2).
    Tensor,
    /// Text generation from a GGUF file (chat and completions).
    Generate,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embed => "embed",
            Self::Classify => "classify",
            Self::Rerank => "rerank",
            Self::Tensor => "tensor",
            Self::Generate => "generate",
        }
    }

    /// Whether the model embeds or scores text through the text pipeline.
    pub fn is_text(self) -> bool {
        !matches!(self, Self::Tensor | Self::Generate)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "embed" | "embedding" | "embeddings" => Ok(Self::Embed),
            "classify" | "classification" => Ok(Self::Classify),
            "rerank" | "reranking" => Ok(Self::Rerank),
            "tensor" => Ok(Self::Tensor),
            "generate" | "generation" | "chat" => Ok(Self::Generate),
            other => Err(format!(
                "unknown task `{other}` (embed, classify, rerank, tensor or generate)"
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct Architecture {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    num_labels: Option<usize>,
}

/// The task a model path holds, by text-embeddings-inference's rules: a
/// sentence-transformers or `BertModel` directory embeds; a
/// `*ForSequenceClassification` classifies with several labels and reranks with
/// one; an ONNX file, or a directory whose model is `model.onnx` with no
/// `config.json`, is a tensor model; a GGUF file generates.
pub fn infer_task(path: &Path) -> Result<Task> {
    if path.is_file() {
        return match path.extension().and_then(|e| e.to_str()) {
            Some("onnx") => Ok(Task::Tensor),
            Some("gguf") => Ok(Task::Generate),
            _ => Err(ModelError::Unsupported(format!(
                "{} is a file but not an .onnx graph nor a .gguf model; point to the model's \
                 directory",
                path.display()
            ))),
        };
    }
    if !path.is_dir() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            file: "(the directory itself)",
        });
    }
    let config = path.join("config.json");
    if !config.is_file() {
        if path.join("model.onnx").is_file() {
            return Ok(Task::Tensor);
        }
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            file: "config.json",
        });
    }
    if path.join("modules.json").is_file() {
        return Ok(Task::Embed);
    }
    let bytes = std::fs::read(&config).map_err(|source| ModelError::Io {
        path: config.clone(),
        source,
    })?;
    let arch: Architecture = serde_json::from_slice(&bytes).map_err(|source| ModelError::Json {
        path: config.clone(),
        source,
    })?;
    task_of(&arch).map_err(|message| ModelError::InvalidConfig {
        path: config,
        message,
    })
}

fn task_of(arch: &Architecture) -> std::result::Result<Task, String> {
    let Some(name) = arch.architectures.first() else {
        // A bare transformers config: an encoder, used for embeddings.
        return Ok(Task::Embed);
    };
    if name.ends_with("ForSequenceClassification") {
        let labels = arch
            .id2label
            .as_ref()
            .map(|m| m.len())
            .or(arch.num_labels)
            .unwrap_or(2);
        return Ok(if labels == 1 {
            Task::Rerank
        } else {
            Task::Classify
        });
    }
    // Encoders (`BertModel`), not decoders with a head (`GPT2LMHeadModel`).
    if name.ends_with("Model") && !name.contains("Head") && !name.contains("For") {
        return Ok(Task::Embed);
    }
    Err(format!(
        "unknown architecture `{name}`: Osprey serves encoders (`*Model`) and sequence \
         classifiers (`*ForSequenceClassification`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(json: &str) -> Architecture {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn architectures_name_the_task() {
        assert_eq!(task_of(&arch(r#"{}"#)), Ok(Task::Embed));
        assert_eq!(
            task_of(&arch(r#"{"architectures":["BertModel"]}"#)),
            Ok(Task::Embed)
        );
        let classifier = r#"{"architectures":["BertForSequenceClassification"],
            "id2label":{"0":"neg","1":"pos"}}"#;
        assert_eq!(task_of(&arch(classifier)), Ok(Task::Classify));
        let reranker = r#"{"architectures":["BertForSequenceClassification"],
            "id2label":{"0":"LABEL_0"}}"#;
        assert_eq!(task_of(&arch(reranker)), Ok(Task::Rerank));
        let by_count =
            r#"{"architectures":["XLMRobertaForSequenceClassification"],"num_labels":1}"#;
        assert_eq!(task_of(&arch(by_count)), Ok(Task::Rerank));
        let unknown = task_of(&arch(r#"{"architectures":["GPT2LMHeadModel"]}"#));
        assert!(unknown.is_err_and(|e| e.contains("GPT2LMHeadModel")));
    }

    #[test]
    fn tasks_parse_and_print() {
        for t in [
            Task::Embed,
            Task::Classify,
            Task::Rerank,
            Task::Tensor,
            Task::Generate,
        ] {
            assert_eq!(t.as_str().parse::<Task>(), Ok(t));
        }
        assert!("translate".parse::<Task>().is_err());
    }
}
