#![cfg(all(feature = "onnx", target_os = "linux"))]
#![allow(clippy::expect_used)]

//! onnxruntime's arena keeps a large batch's activations reserved; the run taken
//! when the queue is empty gives them back to the system. Alone in its test
//! binary, so that no other test's memory moves the figures.

use osprey_models::testkit::{backend_options, model_dir};
use osprey_models::{BackendKind, ModelDir, load_backends};

/// Anonymous memory of this process, in MiB.
fn anon_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("RssAnon in /proc/self/status");
    kib / 1024.0
}

#[test]
fn the_run_before_idle_gives_the_arena_back() {
    let model = ModelDir::open(model_dir()).expect("model directory (run `make model`)");
    let opts = backend_options(BackendKind::Onnx);
    let mut backend = load_backends(&model, &opts)
        .expect("onnx backend (run `make onnx`)")
        .pop()
        .expect("one replica");
    // 32 sequences of 128 tokens: [CLS], words, [SEP].
    let big: Vec<Vec<u32>> = (0..32u32)
        .map(|row| {
            let mut ids = vec![101];
            ids.extend((0..126).map(|j| 2000 + (row * 131 + j) % 5000));
            ids.push(102);
            ids
        })
        .collect();
    let big: Vec<&[u32]> = big.iter().map(Vec::as_slice).collect();
    let small: &[&[u32]] = &[&[101, 7592, 2088, 102]];

    let before = anon_mib();
    backend.embed(&big).expect("large batch");
    backend.embed(&big).expect("large batch again");
    // Under load (no idle hint) a small run keeps what the arena holds.
    backend.embed(small).expect("small run");
    let busy = anon_mib();
    backend.idle_after_next();
    backend.embed(small).expect("the last run before idle");
    let idle = anon_mib();
    eprintln!("anonymous memory: {before:.1} MiB loaded, {busy:.1} busy, {idle:.1} idle");

    assert!(
        busy - before > 40.0,
        "a batch of 32 × 128 tokens should hold tens of MiB of activations \
         ({before:.1} → {busy:.1} MiB)"
    );
    assert!(
        busy - idle > 0.75 * (busy - before),
        "the run before idle gave back {:.1} of the {:.1} MiB the batches took",
        busy - idle,
        busy - before
    );
    // And the arena grows again for the next large batch.
    backend.embed(&big).expect("large batch after idle");
}
