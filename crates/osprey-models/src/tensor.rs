//! Tensors as the KServe v2 protocol names them, and the trait a tensor model (any
//! ONNX graph) implements: named tensors in, named tensors out.

use serde::Serialize;

use crate::Result;

/// The element types Osprey's tensor models take and give, by their KServe v2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DataType {
    #[serde(rename = "FP32")]
    Fp32,
    #[serde(rename = "FP64")]
    Fp64,
    #[serde(rename = "INT32")]
    Int32,
    #[serde(rename = "INT64")]
    Int64,
    #[serde(rename = "BOOL")]
    Bool,
    /// Strings: what text models take through the v2 protocol.
    #[serde(rename = "BYTES")]
    Bytes,
}

impl DataType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Bool => "BOOL",
            Self::Bytes => "BYTES",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Fp32,
            Self::Fp64,
            Self::Int32,
            Self::Int64,
            Self::Bool,
            Self::Bytes,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tensor's elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Bool(Vec<bool>),
    Bytes(Vec<String>),
}

macro_rules! each {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Bool($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> DataType {
        match self {
            Self::Fp32(_) => DataType::Fp32,
            Self::Fp64(_) => DataType::Fp64,
            Self::Int32(_) => DataType::Int32,
            Self::Int64(_) => DataType::Int64,
            Self::Bool(_) => DataType::Bool,
            Self::Bytes(_) => DataType::Bytes,
        }
    }

    /// Appends `other`'s elements; `false` (and nothing appended) when the types differ.
    pub fn extend(&mut self, other: &TensorData) -> bool {
        match (self, other) {
            (Self::Fp32(a), Self::Fp32(b)) => a.extend_from_slice(b),
            (Self::Fp64(a), Self::Fp64(b)) => a.extend_from_slice(b),
            (Self::Int32(a), Self::Int32(b)) => a.extend_from_slice(b),
            (Self::Int64(a), Self::Int64(b)) => a.extend_from_slice(b),
            (Self::Bool(a), Self::Bool(b)) => a.extend_from_slice(b),
            (Self::Bytes(a), Self::Bytes(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// Elements `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        match self {
            Self::Fp32(v) => Self::Fp32(v[start..end].to_vec()),
            Self::Fp64(v) => Self::Fp64(v[start..end].to_vec()),
            Self::Int32(v) => Self::Int32(v[start..end].to_vec()),
            Self::Int64(v) => Self::Int64(v[start..end].to_vec()),
            Self::Bool(v) => Self::Bool(v[start..end].to_vec()),
            Self::Bytes(v) => Self::Bytes(v[start..end].to_vec()),
        }
    }
}

/// A tensor with its name and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// What a model declares of one input or output; `-1` marks a dimension of any size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

/// A loaded tensor model replica, run on its own OS thread.
pub trait TensorBackend: Send {
    /// Runs the graph on inputs matching its declared inputs (in that order);
    /// returns every output, in the graph's order.
    fn run(&mut self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>>;
}

/// A tensor model's replicas and what it declares.
pub struct TensorModel {
    pub backends: Vec<Box<dyn TensorBackend>>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// Loads `replicas` sessions of the ONNX graph at `path` (a `.onnx` file or a
/// directory holding `model.onnx`).
pub fn load_tensor_model(
    path: &std::path::Path,
    replicas: usize,
    threads: usize,
    onnxruntime_lib: Option<&std::path::Path>,
    prepack: bool,
) -> Result<TensorModel> {
    #[cfg(feature = "onnx")]
    {
        crate::onnx_tensor::load(path, replicas, threads, onnxruntime_lib, prepack)
    }
    #[cfg(not(feature = "onnx"))]
    {
        let _ = (path, replicas, threads, onnxruntime_lib, prepack);
        Err(crate::ModelError::BackendUnavailable("onnx"))
    }
}
