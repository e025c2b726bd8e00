//! KServe v2 / Open Inference Protocol over REST: health, model metadata and
//! readiness, and inference. Tensor models (any ONNX graph) take their declared
//! inputs; text models take one BYTES input of texts (pairs of texts for a
//! reranker) and give their vectors, logits or scores as FP32 tensors.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use osprey_engine::{
    Backing, DataType, EmbedOptions, EngineError, NamedTensor, Served, Task, TensorData,
    TensorSpec, Text,
};
use osprey_wire::{InferInput, InferRequest};
use serde::Serialize;
use serde_json::Value;

use super::Call;
use crate::input::read_tensor_json;
use crate::{ApiError, AppState};

pub async fn live() -> Json<Value> {
    Json(serde_json::json!({ "live": true }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let ready = state.serves_a_model() && !state.is_draining();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({ "ready": ready })))
}

/// `name` from the path, pinned to `version` when the path has one.
fn named(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_owned(),
    }
}

#[derive(Serialize)]
pub struct Metadata {
    name: String,
    versions: Vec<String>,
    platform: &'static str,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

fn metadata_of(state: &AppState, served: &Served) -> Metadata {
    let versions = state
        .models
        .registry()
        .all()
        .iter()
        .filter(|m| m.name == served.name)
        .map(|m| m.version.clone())
        .collect();
    let (platform, inputs, outputs) = match &served.backing {
        Backing::Tensor(t) => (
            "onnxruntime_onnx",
            t.info().inputs.clone(),
            t.info().outputs.clone(),
        ),
        Backing::Text(p) => {
            let info = p.info();
            let (input, output) = text_signature(info.task, info.dims);
            ("osprey_text", vec![input], vec![output])
        }
        // Generation speaks OpenAI's chat and completions routes, not v2 tensors.
        Backing::Generate(_) => ("llama_cpp_gguf", Vec::new(), Vec::new()),
    };
    Metadata {
        name: served.name.clone(),
        versions,
        platform,
        inputs,
        outputs,
    }
}

/// What a text model takes and gives through the v2 protocol.
fn text_signature(task: Task, dims: usize) -> (TensorSpec, TensorSpec) {
    let spec = |name: &str, datatype, shape: Vec<i64>| TensorSpec {
        name: name.to_owned(),
        datatype,
        shape,
    };
    let dims = dims as i64;
    match task {
        Task::Rerank => (
            spec("text", DataType::Bytes, vec![-1, 2]),
            spec("score", DataType::Fp32, vec![-1]),
        ),
        Task::Classify => (
            spec("text", DataType::Bytes, vec![-1]),
            spec("logits", DataType::Fp32, vec![-1, dims]),
        ),
        _ => (
            spec("text", DataType::Bytes, vec![-1]),
            spec("embedding", DataType::Fp32, vec![-1, dims]),
        ),
    }
}

pub async fn metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Metadata>, ApiError> {
    let served = state.models.registry().get(&name)?;
    Ok(Json(metadata_of(&state, &served)))
}

pub async fn metadata_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Metadata>, ApiError> {
    let served = state.models.registry().get(&named(&name, Some(&version)))?;
    Ok(Json(metadata_of(&state, &served)))
}

fn readiness(state: &AppState, name: &str) -> Result<Json<Value>, ApiError> {
    let served = state.models.registry().get(name)?;
    Ok(Json(serde_json::json!({
        "name": served.name,
        "version": served.version,
        "ready": true,
    })))
}

pub async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    readiness(&state, &name)
}

pub async fn version_ready(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    readiness(&state, &named(&name, Some(&version)))
}

pub async fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    run_infer(state, name, call, body).await
}

pub async fn infer_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    run_infer(state, named(&name, Some(&version)), call, body).await
}

#[derive(Serialize)]
struct OutputTensor {
    name: String,
    datatype: DataType,
    shape: Vec<i64>,
    data: Value,
}

#[derive(Serialize)]
struct InferResponse {
    model_name: String,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<OutputTensor>,
}

async fn run_infer(
    state: AppState,
    name: String,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let req: InferRequest = read_tensor_json(&state, &call.headers, body).await?;
    let ab_key = call
        .headers
        .get("x-osprey-ab-key")
        .and_then(|v| v.to_str().ok());
    // A name without a version spreads by traffic like every other route.
    let served = match state.models.registry().get(&name) {
        Ok(m) if !name.contains('@') => {
            state
                .models
                .registry()
                .resolve(Some(&name), m.task(), ab_key)?
        }
        other => other?,
    };
    let inputs = req
        .inputs
        .into_iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = match &served.backing {
        Backing::Tensor(engine) => infer_tensor(&state, &call, &served, engine, inputs).await?,
        Backing::Text(_) => infer_text(&state, &call, &served, inputs).await?,
        Backing::Generate(_) => {
            return Err(ApiError::Invalid(format!(
                "model `{}` generates text: use POST /v1/chat/completions or /v1/completions",
                served.name
            )));
        }
    };
    let wanted: Option<Vec<String>> = req.outputs.map(|o| o.into_iter().map(|o| o.name).collect());
    if let Some(w) = &wanted
        && let Some(missing) = w.iter().find(|n| !outputs.iter().any(|o| &o.name == *n))
    {
        let known: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        return Err(ApiError::Engine(EngineError::BadTensor(format!(
            "output `{missing}` is not an output of this model (outputs: {known:?})"
        ))));
    }
    let t = Instant::now();
    let outputs = outputs
        .into_iter()
        .filter(|o| wanted.as_ref().is_none_or(|w| w.contains(&o.name)))
        .map(encode)
        .collect();
    let resp = InferResponse {
        model_name: served.name.clone(),
        model_version: served.version.clone(),
        id: req.id,
        outputs,
    };
    let mut r = Json(resp).into_response();
    super::name_model(&mut r, &served);
    tracing::trace!(serialize_us = t.elapsed().as_micros() as u64, "v2 response");
    Ok(r)
}

async fn infer_tensor(
    state: &AppState,
    call: &Call,
    served: &Served,
    engine: &Arc<osprey_engine::TensorEngine>,
    inputs: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, ApiError> {
    let asked = crate::deadline::asked(&call.headers)?;
    state
        .protection
        .load()
        .charge_items(call.caller.as_ref(), 1)?;
    let inputs = engine.check(inputs)?;
    let rows = inputs
        .first()
        .and_then(|t| t.shape.first())
        .map_or(1, |&r| r.max(0) as usize);
    let permit = engine.admission().enter(asked)?;
    let out = permit.within(engine.infer(inputs)).await?;
    served.answered(rows);
    Ok(out)
}

/// A text model through v2: one BYTES input of texts, or of (query, text) pairs
/// shaped `[n, 2]` for a reranker.
async fn infer_text(
    state: &AppState,
    call: &Call,
    served: &Served,
    mut inputs: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, ApiError> {
    let task = served.task();
    let info = served.pipeline()?.info();
    let (spec, out_spec) = text_signature(task, info.dims);
    let bad = |m: String| ApiError::Engine(EngineError::BadTensor(m));
    if inputs.len() != 1 {
        return Err(bad(format!(
            "a {task} model takes one BYTES input (`{}`), not {}",
            spec.name,
            inputs.len()
        )));
    }
    let input = inputs.remove(0);
    let TensorData::Bytes(texts) = input.data else {
        return Err(bad(format!(
            "input `{}` is {}; a {task} model takes BYTES",
            input.name,
            input.data.datatype()
        )));
    };
    let rows = match (task, input.shape.as_slice()) {
        (Task::Rerank, [n, 2]) => *n,
        (Task::Rerank, _) => {
            return Err(bad(format!(
                "input `{}` has shape {:?}; a reranker takes [n, 2] (query, text) pairs",
                input.name, input.shape
            )));
        }
        (_, [n]) => *n,
        _ => {
            return Err(bad(format!(
                "input `{}` has shape {:?}; a {task} model takes [n] texts",
                input.name, input.shape
            )));
        }
    };
    let per_row = if task == Task::Rerank { 2 } else { 1 };
    if rows < 0 || (rows as usize).checked_mul(per_row) != Some(texts.len()) {
        return Err(bad(format!(
            "input `{}` has {} elements; its shape {:?} holds a different number",
            input.name,
            texts.len(),
            input.shape
        )));
    }
    state
        .protection
        .load()
        .charge_items(call.caller.as_ref(), rows as usize)?;
    let opts = EmbedOptions {
        normalize: task == Task::Embed,
        truncate: true,
        dimensions: None,
    };
    let out = if task == Task::Embed {
        crate::input::check_inputs(&state.config, &texts)?;
        super::run(state, call, served, &texts, opts).await?.0
    } else {
        let items: Vec<Text> = if task == Task::Rerank {
            let mut texts = texts.into_iter();
            std::iter::from_fn(|| Some(Text::Pair(texts.next()?, texts.next()?))).collect()
        } else {
            texts.into_iter().map(Text::One).collect()
        };
        crate::input::check_items(&state.config, &items)?;
        super::run(state, call, served, &items, opts).await?.0
    };
    let n = out.entries.len();
    let (shape, data) = if task == Task::Rerank {
        let scores = out
            .entries
            .iter()
            .map(|e| e.vector.first().copied().unwrap_or(f32::NAN))
            .collect();
        (vec![n as i64], scores)
    } else {
        let width = out.entries.first().map_or(0, |e| e.vector.len());
        let flat = out
            .entries
            .iter()
            .flat_map(|e| e.vector.iter().copied())
            .collect();
        (vec![n as i64, width as i64], flat)
    };
    Ok(vec![NamedTensor {
        name: out_spec.name,
        shape,
        data: TensorData::Fp32(data),
    }])
}

/// A v2 input's JSON elements (flat or nested) as a typed tensor.
fn decode(input: InferInput) -> Result<NamedTensor, ApiError> {
    let bad = |m: String| ApiError::Engine(EngineError::BadTensor(m));
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        bad(format!(
            "input `{}` has datatype `{}`; Osprey takes FP32, FP64, INT32, INT64, BOOL and BYTES",
            input.name, input.datatype
        ))
    })?;
    let mut flat = Vec::new();
    flatten(input.data, &mut flat, 0).map_err(|m| bad(format!("input `{}`: {m}", input.name)))?;
    let name = input.name;
    let wrong = |i: usize, v: &Value| {
        bad(format!(
            "input `{name}` element {i} is {v}, not a {datatype} value"
        ))
    };
    macro_rules! numbers {
        ($variant:ident, $conv:expr) => {
            TensorData::$variant(
                flat.iter()
                    .enumerate()
                    .map(|(i, v)| $conv(v).ok_or_else(|| wrong(i, v)))
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    let data = match datatype {
        DataType::Fp32 => numbers!(Fp32, |v: &Value| v.as_f64().map(|x| x as f32)),
        DataType::Fp64 => numbers!(Fp64, |v: &Value| v.as_f64()),
        DataType::Int32 => numbers!(Int32, |v: &Value| v
            .as_i64()
            .and_then(|x| i32::try_from(x).ok())),
        DataType::Int64 => numbers!(Int64, |v: &Value| v.as_i64()),
        DataType::Bool => numbers!(Bool, |v: &Value| v.as_bool()),
        DataType::Bytes => numbers!(Bytes, |v: &Value| v.as_str().map(str::to_owned)),
    };
    Ok(NamedTensor {
        name: name.clone(),
        shape: input.shape,
        data,
    })
}

/// Nested arrays in row-major order; the JSON parser already bounds the depth.
fn flatten(v: Value, out: &mut Vec<Value>, depth: usize) -> Result<(), String> {
    match v {
        Value::Array(items) => {
            if depth > 16 {
                return Err("data is nested deeper than 16 levels".into());
            }
            for item in items {
                flatten(item, out, depth + 1)?;
            }
            Ok(())
        }
        other => {
            out.push(other);
            Ok(())
        }
    }
}

fn encode(t: NamedTensor) -> OutputTensor {
    let datatype = t.data.datatype();
    let data = match t.data {
        TensorData::Fp32(v) => v
            .into_iter()
            .map(|x| {
                // JSON has no NaN or infinity: those become null.
                serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number)
            })
            .collect(),
        TensorData::Fp64(v) => v
            .into_iter()
            .map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
            .collect(),
        TensorData::Int32(v) => v.into_iter().map(Value::from).collect(),
        TensorData::Int64(v) => v.into_iter().map(Value::from).collect(),
        TensorData::Bool(v) => v.into_iter().map(Value::from).collect(),
        TensorData::Bytes(v) => v.into_iter().map(Value::from).collect(),
    };
    OutputTensor {
        name: t.name,
        datatype,
        shape: t.shape,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(datatype: &str, data: Value) -> InferInput {
        InferInput {
            name: "x".into(),
            shape: vec![2, 2],
            datatype: datatype.into(),
            data,
            parameters: None,
        }
    }

    fn decoded(datatype: &str, data: Value) -> Result<TensorData, String> {
        decode(input(datatype, data))
            .map(|t| t.data)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_datatype_decodes_from_flat_or_nested_data() {
        let nested = serde_json::json!([[1, 2], [3, 4]]);
        assert_eq!(
            decoded("INT32", nested.clone()),
            Ok(TensorData::Int32(vec![1, 2, 3, 4]))
        );
        assert_eq!(
            decoded("INT64", serde_json::json!([1, 2, 3, -4])),
            Ok(TensorData::Int64(vec![1, 2, 3, -4]))
        );
        assert_eq!(
            decoded("FP64", nested.clone()),
            Ok(TensorData::Fp64(vec![1.0, 2.0, 3.0, 4.0]))
        );
        assert_eq!(
            decoded("FP32", serde_json::json!([0.5, 1, 2, 3])),
            Ok(TensorData::Fp32(vec![0.5, 1.0, 2.0, 3.0]))
        );
        assert_eq!(
            decoded("BOOL", serde_json::json!([true, false, true, true])),
            Ok(TensorData::Bool(vec![true, false, true, true]))
        );
        assert_eq!(
            decoded("BYTES", serde_json::json!(["a", "b"])),
            Ok(TensorData::Bytes(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn wrong_elements_name_the_input_and_the_element() {
        let e = decoded("INT32", serde_json::json!([1, 2, 3_000_000_000_i64, 4]));
        assert!(
            e.as_ref().is_err_and(|m| m.contains("`x` element 2")),
            "{e:?}"
        );
        let e = decoded("BOOL", serde_json::json!([1, 0, 1, 0]));
        assert!(e.as_ref().is_err_and(|m| m.contains("BOOL")), "{e:?}");
        let e = decoded("UINT8", serde_json::json!([1]));
        assert!(e.as_ref().is_err_and(|m| m.contains("UINT8")), "{e:?}");
        let deep = (0..20).fold(serde_json::json!(1), |v, _| serde_json::json!([v]));
        let e = decoded("INT32", deep);
        assert!(e.as_ref().is_err_and(|m| m.contains("deeper")), "{e:?}");
    }

    #[test]
    fn outputs_encode_with_their_datatype_and_nan_as_null() {
        let out = encode(NamedTensor {
            name: "y".into(),
            shape: vec![2],
            data: TensorData::Fp32(vec![1.5, f32::NAN]),
        });
        assert_eq!(out.datatype, DataType::Fp32);
        assert_eq!(out.data, serde_json::json!([1.5, null]));
    }
}
