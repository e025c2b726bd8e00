//! The model repository end to end: one real server in-process serving every kind
//! of model at once (two embedding models, a classifier, a cross-encoder and two
//! ONNX tensor models, all built from PyPI by `make test-models`), checked against
//! independent references: float64 numpy for the BERT family, scikit-learn for
//! the tensor models.

#![allow(clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod clients;
mod manage;
mod routing;
mod tasks;
mod tensor;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use common::*;
use osprey_engine::{AdmissionConfig, BackendKind, BatchingConfig, EngineConfig};
use osprey_server::{AppState, LongInputs, ModelSpec, Models, ServerConfig};
use serde_json::Value;

/// The repository root (models/, scripts/, .venv/ live there).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn spec(name: &str, dir: &str) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        path: root().join("models").join(dir),
        task: None,
        backend: None,
        replicas: None,
        version: None,
        traffic: None,
        autoscale: None,
    }
}

/// What the shared server serves, in this order.
pub fn served_specs() -> Vec<ModelSpec> {
    vec![
        spec("minilm", "all-MiniLM-L6-v2"),
        spec("para", "paraphrase-MiniLM-L3-v2"),
        spec("polarity", "minilm-polarity-classifier"),
        spec("ranker", "minilm-polarity-reranker"),
        spec("risk", "breast-cancer-risk"),
        spec("digits", "digits-classifier"),
    ]
}

pub struct Repo {
    pub base: String,
    pub state: AppState,
}

/// One server for the whole binary, every model loaded through the same path
/// `osprey serve` takes for `[[models]]`.
pub fn repo() -> &'static Repo {
    static REPO: OnceLock<Repo> = OnceLock::new();
    REPO.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("osprey-test-repository".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind an ephemeral port");
                    let port = listener.local_addr().expect("address").port();
                    let base_engine = EngineConfig {
                        model_path: PathBuf::new(),
                        backend: BackendKind::Candle,
                        precision: Default::default(),
                        profile: String::new(),
                        onnxruntime_lib: None,
                        onnx_prepack: false,
                        batching: BatchingConfig {
                            replicas: 1,
                            threads: 1,
                            ..BatchingConfig::default()
                        },
                        // A debug build's models are many times slower than a release
                        // build's: no queue bound here, the live changes are the point.
                        admission: AdmissionConfig {
                            max_queue: None,
                            ..AdmissionConfig::default()
                        },
                    };
                    // Long inputs with `truncate: false` are embedded whole.
                    let server = ServerConfig {
                        long_inputs: LongInputs::Chunk,
                        ..ServerConfig::default()
                    };
                    let state = AppState::new(server, osprey_server::install_metrics())
                        .with_models(Models::new(base_engine, None, false));
                    tokio::spawn(osprey_server::serve(
                        listener,
                        state.clone(),
                        std::future::pending(),
                    ));
                    for s in served_specs() {
                        state.models.add(&s).await.unwrap_or_else(|e| {
                            panic!("{} failed to load (run `make test-models`): {e}", s.label())
                        });
                    }
                    tx.send(Repo {
                        base: format!("http://127.0.0.1:{port}"),
                        state,
                    })
                    .expect("report the server");
                    std::future::pending::<()>().await;
                });
            })
            .expect("spawn the server thread");
        rx.recv()
            .expect("the repository server failed to start (see its panic)")
    })
}

/// Runs one of the reference scripts with `input` as its JSON stdin.
pub fn python(script: &str, input: &Value) -> Value {
    use std::io::Write;
    let root = root();
    let mut child = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts").join(script))
        .current_dir(&root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {script} (run `make test-models`): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the request");
    let out = child.wait_with_output().expect("reference output");
    assert!(out.status.success(), "{script} failed on {input}");
    serde_json::from_slice(&out.stdout).expect("reference JSON")
}

/// A JSON array of numbers as f64.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not an array"))
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

pub async fn post(path: &str, body: Value) -> Reply {
    post_json(&client(), &format!("{}{path}", repo().base), body).await
}

pub async fn fetch(path: &str) -> Reply {
    get(&client(), &format!("{}{path}", repo().base)).await
}

pub fn models_path(dir: &str) -> String {
    root()
        .join("models")
        .join(dir)
        .to_string_lossy()
        .into_owned()
}

pub fn shared_state() -> Arc<Models> {
    repo().state.models.clone()
}

/// Float64 sentence embeddings of `texts` by the model in `models/<dir>`, and how
/// many windows each took (`chunk`: long texts embedded whole, else cut).
pub fn reference_embeddings(dir: &str, texts: &[&str], chunk: bool) -> (Vec<Vec<f64>>, Vec<u64>) {
    let out = python(
        "reference_heads.py",
        &serde_json::json!({ "model_dir": models_path(dir), "embed": true, "chunk": chunk, "inputs": texts }),
    );
    let vectors = out["embeddings"]
        .as_array()
        .expect("embeddings")
        .iter()
        .map(floats)
        .collect();
    let chunks = out["chunks"]
        .as_array()
        .expect("chunks")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    (vectors, chunks)
}

/// Each vector within 1e-4 of its reference, element by element.
pub fn assert_close(got: &[Vec<f32>], want: &[Vec<f64>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: vector count");
    for (v, w) in got.iter().zip(want) {
        let v: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
        let diff = max_diff(&v, w);
        assert!(diff < 1e-4, "{what} differs from the reference by {diff}");
    }
}
