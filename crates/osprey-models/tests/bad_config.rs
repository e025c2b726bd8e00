#![allow(clippy::expect_used)]

//! A model whose config.json holds sizes that cannot work is refused at load with a
//! clear error, never a panic or a division by zero. Each case copies the test
//! model's small files into a temporary directory, edits one value, and links the
//! weights.

use std::path::Path;

use osprey_models::testkit::model_dir;
use osprey_models::{BackendKind, BackendOptions, ModelDir, ModelError, load_backends};
use serde_json::Value;

/// A copy of the test model with `edit` applied to its config.json (and, when
/// given, to sentence_bert_config.json).
fn model_with(
    edit: impl FnOnce(&mut Value),
    edit_st: Option<&dyn Fn(&mut Value)>,
) -> tempfile::TempDir {
    let src = model_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
        "config.json",
    ] {
        std::fs::copy(src.join(name), dir.path().join(name))
            .unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
    std::fs::create_dir(dir.path().join("1_Pooling")).expect("mkdir");
    std::fs::copy(
        src.join("1_Pooling/config.json"),
        dir.path().join("1_Pooling/config.json"),
    )
    .expect("copy the pooling config");
    std::os::unix::fs::symlink(
        src.join("model.safetensors")
            .canonicalize()
            .expect("weights"),
        dir.path().join("model.safetensors"),
    )
    .expect("link the weights");
    edit_json(&dir.path().join("config.json"), edit);
    if let Some(edit_st) = edit_st {
        edit_json(&dir.path().join("sentence_bert_config.json"), edit_st);
    }
    dir
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON");
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).expect("JSON")).expect("write");
}

fn set(key: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |v| v[key] = value
}

/// Opening the directory fails with `InvalidConfig` naming `what`.
fn assert_refused_at_open(dir: &Path, what: &str) {
    match ModelDir::open(dir) {
        Err(e @ ModelError::InvalidConfig { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(what), "{msg}");
            assert!(msg.contains("config.json"), "names the file: {msg}");
        }
        Err(e) => panic!("{what}: expected InvalidConfig, got {e}"),
        Ok(_) => panic!("{what}: a model with this config must be refused"),
    }
}

fn load_candle(dir: &Path) -> Result<usize, ModelError> {
    let model = ModelDir::open(dir)?;
    let opts = BackendOptions {
        kind: BackendKind::Candle,
        precision: Default::default(),
        replicas: 1,
        threads: 1,
        onnxruntime_lib: None,
        onnx_prepack: false,
        shared_threads: false,
    };
    load_backends(&model, &opts).map(|b| b.len())
}

#[test]
fn the_unedited_copy_loads() {
    let dir = model_with(|_| {}, None);
    assert_eq!(load_candle(dir.path()).expect("loads"), 1);
}

#[test]
fn zero_attention_heads_is_refused() {
    let dir = model_with(set("num_attention_heads", 0.into()), None);
    assert_refused_at_open(dir.path(), "num_attention_heads is 0");
}

#[test]
fn hidden_size_not_divisible_by_heads_is_refused() {
    let dir = model_with(set("num_attention_heads", 5.into()), None);
    assert_refused_at_open(
        dir.path(),
        "hidden_size 384 is not a multiple of num_attention_heads 5",
    );
}

#[test]
fn zero_layers_is_refused() {
    let dir = model_with(set("num_hidden_layers", 0.into()), None);
    assert_refused_at_open(dir.path(), "num_hidden_layers is 0");
}

#[test]
fn zero_hidden_size_is_refused() {
    let dir = model_with(set("hidden_size", 0.into()), None);
    assert_refused_at_open(dir.path(), "hidden_size is 0");
}

#[test]
fn other_zero_sizes_are_refused() {
    for key in [
        "vocab_size",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    ] {
        let dir = model_with(set(key, 0.into()), None);
        assert_refused_at_open(dir.path(), &format!("{key} is 0"));
    }
}

#[test]
fn a_layer_norm_epsilon_that_is_not_positive_is_refused() {
    for eps in [0.0, -1e-12] {
        let dir = model_with(set("layer_norm_eps", eps.into()), None);
        assert_refused_at_open(dir.path(), "layer_norm_eps");
    }
}

#[test]
fn a_zero_max_seq_length_is_refused() {
    let dir = model_with(|_| {}, Some(&|v| v["max_seq_length"] = 0.into()));
    match ModelDir::open(dir.path()) {
        Err(e @ ModelError::InvalidConfig { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("sentence_bert_config.json"), "{msg}");
            assert!(msg.contains("max_seq_length is 0"), "{msg}");
        }
        other => panic!("expected InvalidConfig, got {:?}", other.map(|m| m.id)),
    }
}

#[test]
fn a_hidden_size_the_weights_do_not_have_is_refused_at_load() {
    // Divisible by the heads, so the directory opens; the weights say 384.
    let dir = model_with(set("hidden_size", 768.into()), None);
    let err = load_candle(dir.path()).expect_err("wrong width");
    assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("hidden_size is 768"), "{err}");
}

#[test]
fn more_positions_than_the_weights_hold_is_refused_at_load() {
    let dir = model_with(
        set("max_position_embeddings", 1024.into()),
        Some(&|v| v["max_seq_length"] = 1024.into()),
    );
    let err = load_candle(dir.path()).expect_err("too few positions");
    assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("the weights hold 512"), "{err}");
}
