#![allow(clippy::expect_used)]

//! Backend throughput without HTTP: `cargo run --release -p osprey-models --example
//! backend_speed -- MODEL_DIR [candle|onnx] [BATCH] [THREADS] [shared]`. Embeds the sentences
//! in bench/sentences.txt in batches and prints sentences and tokens per second.
//! `PREPACK=1` repacks onnxruntime's weights; `SORTED=1` batches by length.

use std::time::Instant;

use osprey_models::{BackendOptions, ModelDir, TextTokenizer, load_backends};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map_or("models/all-MiniLM-L6-v2", String::as_str);
    let kind = args.get(2).map_or("candle", String::as_str).parse()?;
    let batch: usize = args.get(3).map_or(Ok(32), |s| s.parse())?;
    let threads: usize = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let shared_threads = args.get(5).is_some_and(|s| s == "shared");
    let model = ModelDir::open(dir)?;
    let tok = TextTokenizer::load(&model.file("tokenizer.json"), model.max_seq_length)?;
    let mut backend = load_backends(
        &model,
        &BackendOptions {
            kind,
            precision: Default::default(),
            replicas: 1,
            threads,
            onnxruntime_lib: None,
            onnx_prepack: std::env::var_os("PREPACK").is_some(),
            shared_threads,
        },
    )?
    .remove(0);
    let text = std::fs::read_to_string("bench/sentences.txt")?;
    let seqs: Vec<Vec<u32>> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            tok.encode(&format!("{l} req 123456t1x{i}"), true)
                .map(|e| e.ids)
        })
        .collect::<Result<_, _>>()?;
    let mut refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    // SORTED=1: batches of similar lengths, as the server's queue groups them.
    if std::env::var_os("SORTED").is_some() {
        refs.sort_by_key(|s| s.len());
    }
    backend.embed(&refs[..batch])?;
    let started = Instant::now();
    let mut tokens = 0;
    for chunk in refs.chunks(batch) {
        backend.embed(chunk)?;
        tokens += chunk.iter().map(|s| s.len()).sum::<usize>();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{kind} batch {batch} threads {threads}: {:.1} sentences/s, {:.0} tokens/s ({} sentences, mean {:.1} tokens)",
        refs.len() as f64 / secs,
        tokens as f64 / secs,
        refs.len(),
        tokens as f64 / refs.len() as f64
    );
    Ok(())
}
