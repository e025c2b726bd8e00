//! The one trait every inference backend implements, and how replicas are loaded.

use serde::{Deserialize, Serialize};

use crate::{ModelDir, Result};

/// A loaded model replica. Each replica lives on one dedicated OS thread.
pub trait Backend: Send {
    fn name(&self) -> &'static str;

    /// Pooled, not yet normalized vectors, one per sequence, in the given order.
    /// Sequences carry special tokens and are at most the model's maximum length.
    fn embed(&mut self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>>;

    /// The same for sequences that may be text pairs: `second[i]` is where
    /// sequence `i`'s second text (token type 1) begins, `None` for one text. A
    /// classifier returns its logits, one per label, instead of a pooled vector.
    fn embed_segments(
        &mut self,
        seqs: &[&[u32]],
        second: &[Option<usize>],
    ) -> Result<Vec<Vec<f32>>> {
        if second.iter().any(Option::is_some) {
            return Err(crate::ModelError::Unsupported(format!(
                "the {} backend takes no text pairs",
                self.name()
            )));
        }
        self.embed(seqs)
    }

    /// The queue is empty: the next run is the last for now. A backend that keeps
    /// buffers between runs may give them back after it, so that memory falls
    /// back when the load ends.
    fn idle_after_next(&mut self) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Pure Rust, loads `model.safetensors`; packs batches without padding.
    #[default]
    Candle,
    /// ONNX Runtime (`onnx/model.onnx` or `model.onnx`); pads each batch to its longest.
    Onnx,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Candle => "candle",
            Self::Onnx => "onnx",
        }
    }

    /// Whether a batch costs `count × longest` tokens (padding) rather than the sum.
    pub fn pads_batches(self) -> bool {
        matches!(self, Self::Onnx)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "candle" => Ok(Self::Candle),
            "onnx" | "ort" | "onnxruntime" => Ok(Self::Onnx),
            other => Err(format!("unknown backend `{other}` (candle or onnx)")),
        }
    }
}

/// The numbers a model's weights are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    /// Dynamically quantized int8 matrix weights (onnxruntime `quantize_dynamic`,
    /// per channel): `onnx/model_int8.onnx`.
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Int8 => "int8",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    pub kind: BackendKind,
    pub precision: Precision,
    pub replicas: usize,
    /// Intra-op threads per replica; ignored when `shared_threads` is set.
    pub threads: usize,
    /// onnxruntime: every replica runs on one process-wide pool of as many threads
    /// as cores, so a lone request uses all of them and concurrent ones share them.
    pub shared_threads: bool,
    /// Path of the onnxruntime shared library; found by search when empty.
    pub onnxruntime_lib: Option<std::path::PathBuf>,
    /// onnxruntime: repack weights for the matrix kernels in every replica (see
    /// `EngineConfig::onnx_prepack`).
    pub onnx_prepack: bool,
}

/// The file a backend loads its weights from; a clear error when it is missing.
pub fn weights_file(
    model: &ModelDir,
    kind: BackendKind,
    precision: Precision,
) -> Result<std::path::PathBuf> {
    let candidates: &[&'static str] = match (kind, precision) {
        (BackendKind::Candle, Precision::Fp32) => &["model.safetensors"],
        (BackendKind::Onnx, Precision::Fp32) => &["onnx/model.onnx", "model.onnx"],
        (BackendKind::Onnx, Precision::Int8) => &["onnx/model_int8.onnx", "model_int8.onnx"],
        (BackendKind::Candle, Precision::Int8) => {
            return Err(crate::ModelError::Unsupported(
                "int8 weights need the onnx backend".into(),
            ));
        }
    };
    candidates
        .iter()
        .map(|f| model.file(f))
        .find(|p| p.is_file())
        .ok_or_else(|| crate::ModelError::MissingFile {
            path: model.path.clone(),
            file: candidates[0],
        })
}

/// Loads `replicas` instances of the model on the chosen backend.
pub fn load_backends(model: &ModelDir, opts: &BackendOptions) -> Result<Vec<Box<dyn Backend>>> {
    match opts.kind {
        BackendKind::Candle if opts.precision != Precision::Fp32 => Err(
            crate::ModelError::Unsupported("int8 weights need the onnx backend".into()),
        ),
        BackendKind::Candle => {
            Ok(
                crate::candle_bert::CandleBert::load(model, opts.replicas, opts.threads)?
                    .into_iter()
                    .map(|b| Box::new(b) as Box<dyn Backend>)
                    .collect(),
            )
        }
        #[cfg(feature = "onnx")]
        BackendKind::Onnx => crate::onnx::load(model, opts),
        #[cfg(not(feature = "onnx"))]
        BackendKind::Onnx => {
            let _ = model;
            Err(crate::ModelError::BackendUnavailable("onnx"))
        }
    }
}
