//! Reads a sentence-transformers model directory: transformer config, pooling,
//! normalization and maximum sequence length come from the directory's own files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ModelError, Result, Task};

/// How token states become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
    LastToken,
}

/// The parts of a BERT-family `config.json` the backends need.
#[derive(Debug, Clone, Deserialize)]
pub struct TransformerConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

impl TransformerConfig {
    /// Refuses sizes that would build an empty model or divide by zero later.
    fn check(&self) -> std::result::Result<(), String> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} is 0; it must be at least 1"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!(
                "layer_norm_eps {} must be a positive number",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }
}

fn default_max_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

#[derive(Debug, Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// A model directory, validated and with its settings resolved.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    /// Human-readable id: the directory name.
    pub id: String,
    pub config: TransformerConfig,
    pub pooling: Pooling,
    /// Whether the model's pipeline ends with a Normalize module.
    pub normalize: bool,
    pub max_seq_length: usize,
    /// Embed, or for sequence classifiers classify or rerank.
    pub task: Task,
    /// Classifier outputs in order (`id2label`); empty for embedding models.
    pub labels: Vec<String>,
}

impl ModelDir {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_dir() {
            return Err(ModelError::MissingFile {
                path,
                file: "(the directory itself)",
            });
        }
        let config: TransformerConfig = read_json(&path, "config.json")?;
        config
            .check()
            .map_err(|message| ModelError::InvalidConfig {
                path: path.join("config.json"),
                message,
            })?;
        require(&path, "tokenizer.json")?;

        let modules: Vec<ModuleEntry> = if path.join("modules.json").is_file() {
            read_json(&path, "modules.json")?
        } else {
            Vec::new()
        };
        let normalize = modules.iter().any(|m| m.kind.ends_with("models.Normalize"));
        let pooling = match modules.iter().find(|m| m.kind.ends_with("models.Pooling")) {
            Some(m) => {
                let file = Path::new(&m.path).join("config.json");
                let file = file.to_string_lossy();
                pooling_from(&read_json::<PoolingFile>(&path, &file)?)?
            }
            // Plain transformers checkpoints: mean pooling is the common choice.
            None => Pooling::Mean,
        };
        let max_from_st = if path.join("sentence_bert_config.json").is_file() {
            read_json::<SentenceBertConfig>(&path, "sentence_bert_config.json")?.max_seq_length
        } else {
            None
        };
        if max_from_st == Some(0) {
            return Err(ModelError::InvalidConfig {
                path: path.join("sentence_bert_config.json"),
                message: "max_seq_length is 0; it must be at least 1".into(),
            });
        }
        let max_seq_length = max_from_st
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let id = path
            .canonicalize()
            .unwrap_or_else(|_| path.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let task = crate::infer_task(&path)?;
        if !task.is_text() {
            return Err(ModelError::Unsupported(format!(
                "{} holds a {task} model, not a text model",
                path.display()
            )));
        }
        let labels = match task {
            Task::Embed => Vec::new(),
            _ => labels_of(&path)?,
        };
        Ok(Self {
            path,
            id,
            config,
            pooling,
            normalize,
            max_seq_length,
            task,
            labels,
        })
    }

    /// Output vector length.
    pub fn dims(&self) -> usize {
        self.config.hidden_size
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

#[derive(Debug, Default, Deserialize)]
struct LabelsFile {
    #[serde(default)]
    id2label: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    num_labels: Option<usize>,
}

/// A classifier's labels by output index; `LABEL_i` where config.json names none.
fn labels_of(path: &Path) -> Result<Vec<String>> {
    let file: LabelsFile = read_json(path, "config.json")?;
    let invalid = |message: String| ModelError::InvalidConfig {
        path: path.join("config.json"),
        message,
    };
    if file.id2label.is_empty() {
        let n = file.num_labels.unwrap_or(2);
        return Ok((0..n).map(|i| format!("LABEL_{i}")).collect());
    }
    let mut by_index = Vec::with_capacity(file.id2label.len());
    for (k, v) in file.id2label {
        let i: usize = k
            .parse()
            .map_err(|_| invalid(format!("id2label key `{k}` is not an index")))?;
        by_index.push((i, v));
    }
    by_index.sort();
    if by_index.iter().enumerate().any(|(n, (i, _))| n != *i) {
        return Err(invalid(
            "id2label must number its labels 0, 1, 2, ...".into(),
        ));
    }
    Ok(by_index.into_iter().map(|(_, v)| v).collect())
}

fn pooling_from(p: &PoolingFile) -> Result<Pooling> {
    let modes = [
        (p.pooling_mode_mean_tokens, Pooling::Mean),
        (p.pooling_mode_cls_token, Pooling::Cls),
        (p.pooling_mode_max_tokens, Pooling::Max),
        (p.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
        (p.pooling_mode_lasttoken, Pooling::LastToken),
    ];
    let on: Vec<Pooling> = modes.iter().filter(|(b, _)| *b).map(|(_, m)| *m).collect();
    match on.as_slice() {
        [one] => Ok(*one),
        [] => Err(ModelError::Unsupported(
            "pooling config enables no mode".into(),
        )),
        _ => Err(ModelError::Unsupported(format!(
            "pooling config combines several modes ({on:?}); only one is supported"
        ))),
    }
}

fn require(dir: &Path, file: &'static str) -> Result<PathBuf> {
    let p = dir.join(file);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ModelError::MissingFile {
            path: dir.to_path_buf(),
            file,
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> Result<T> {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ModelError::Json { path, source })
}
