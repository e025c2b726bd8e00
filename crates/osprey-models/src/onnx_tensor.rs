//! Any ONNX graph as a tensor model: its declared inputs and outputs become the
//! KServe v2 metadata, and each run feeds and reads named tensors.

use std::path::{Path, PathBuf};

use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use crate::onnx::{environment, ort_err};
use crate::onnx_graph::{GraphSession, Threads, sessions};
use crate::tensor::{DataType, NamedTensor, TensorBackend, TensorData, TensorModel, TensorSpec};
use crate::{ModelError, Result};

struct OnnxTensor {
    graph: GraphSession,
}

/// The graph file of a tensor model path: the file itself or `model.onnx` in it.
pub fn graph_file(path: &Path) -> Result<PathBuf> {
    let file = if path.is_dir() {
        path.join("model.onnx")
    } else {
        path.to_path_buf()
    };
    if file.is_file() {
        Ok(file)
    } else {
        Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            file: "model.onnx",
        })
    }
}

/// Loads `replicas` sessions of the graph at `path`.
pub fn load(
    path: &Path,
    replicas: usize,
    threads: usize,
    lib: Option<&Path>,
    prepack: bool,
) -> Result<TensorModel> {
    let env = environment(lib)?;
    let file = graph_file(path)?;
    let sessions = sessions(&env, &file, Threads::Own(threads), replicas, prepack)?;
    let first = &sessions
        .first()
        .ok_or_else(|| ModelError::Onnx("no session was built".into()))?
        .session;
    let specs = |outlets: &[ort::value::Outlet]| -> Result<Vec<TensorSpec>> {
        outlets
            .iter()
            .map(|o| spec(o.name(), o.dtype(), &file))
            .collect()
    };
    let inputs = specs(first.inputs())?;
    let outputs = specs(first.outputs())?;
    Ok(TensorModel {
        backends: sessions
            .into_iter()
            .map(|graph| Box::new(OnnxTensor { graph }) as Box<dyn TensorBackend>)
            .collect(),
        inputs,
        outputs,
    })
}

fn spec(name: &str, ty: &ValueType, file: &Path) -> Result<TensorSpec> {
    let unsupported = |what: String| {
        ModelError::Unsupported(format!(
            "{}: `{name}` is {what}; tensor models take and give FP32, FP64, INT32, INT64 \
             and BOOL tensors (export classifiers with zipmap=False)",
            file.display()
        ))
    };
    let ValueType::Tensor { ty, shape, .. } = ty else {
        return Err(unsupported(format!("{ty:?}")));
    };
    let datatype = match ty {
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Bool => DataType::Bool,
        other => return Err(unsupported(format!("a tensor of {other:?}"))),
    };
    Ok(TensorSpec {
        name: name.to_owned(),
        datatype,
        shape: shape.to_vec(),
    })
}

fn value(t: &NamedTensor) -> Result<DynValue> {
    let shape = t.shape.clone();
    Ok(match &t.data {
        TensorData::Fp32(v) => Tensor::from_array((shape, v.clone()))
            .map_err(ort_err)?
            .into_dyn(),
        TensorData::Fp64(v) => Tensor::from_array((shape, v.clone()))
            .map_err(ort_err)?
            .into_dyn(),
        TensorData::Int32(v) => Tensor::from_array((shape, v.clone()))
            .map_err(ort_err)?
            .into_dyn(),
        TensorData::Int64(v) => Tensor::from_array((shape, v.clone()))
            .map_err(ort_err)?
            .into_dyn(),
        TensorData::Bool(v) => Tensor::from_array((shape, v.clone()))
            .map_err(ort_err)?
            .into_dyn(),
        TensorData::Bytes(_) => {
            return Err(ModelError::Unsupported(format!(
                "`{}` is BYTES; this graph takes numbers",
                t.name
            )));
        }
    })
}

fn read(name: &str, v: &DynValue) -> Result<NamedTensor> {
    let ValueType::Tensor { ty, .. } = v.dtype() else {
        return Err(ModelError::Onnx(format!("output `{name}` is not a tensor")));
    };
    macro_rules! take {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = v.try_extract_tensor::<$t>().map_err(ort_err)?;
            (shape.to_vec(), TensorData::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Float32 => take!(f32, Fp32),
        TensorElementType::Float64 => take!(f64, Fp64),
        TensorElementType::Int32 => take!(i32, Int32),
        TensorElementType::Int64 => take!(i64, Int64),
        TensorElementType::Bool => take!(bool, Bool),
        other => {
            return Err(ModelError::Onnx(format!(
                "output `{name}` is a tensor of {other:?}"
            )));
        }
    };
    Ok(NamedTensor {
        name: name.to_owned(),
        shape,
        data,
    })
}

impl TensorBackend for OnnxTensor {
    fn run(&mut self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        let values: Vec<(String, DynValue)> = inputs
            .iter()
            .map(|t| Ok((t.name.clone(), value(t)?)))
            .collect::<Result<_>>()?;
        let outputs = self.graph.session.run(values).map_err(ort_err)?;
        outputs.iter().map(|(name, v)| read(name, &v)).collect()
    }
}
