//! GGUF files of other architectures (Llama, Qwen2) go through the same paths as
//! Gemma 3: each test writes a tiny model of its own (2 layers, 64 wide, seeded
//! random weights, a byte-level SentencePiece vocabulary, a ChatML template in
//! its metadata) in GGUF v3, loads it, applies the file's chat template, and
//! generates with several sequences batched together.

#![allow(clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use osprey_generate::{Event, Finish, GenerationConfig, Generator, Job, Message, Sampling};
use tokio::sync::mpsc::UnboundedReceiver;

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + \
     message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}\
     {{ '<|im_start|>assistant\\n' }}{% endif %}";
const WIDTH: u64 = 64;
const LAYERS: u64 = 2;
const HEADS: u64 = 4;
const KV_HEADS: u64 = 2;
const FFN: u64 = 128;

/// A metadata value, in GGUF's type numbering.
enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    let array = |out: &mut Vec<u8>, kind: u32, n: usize| {
        out.extend_from_slice(&9u32.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(n as u64).to_le_bytes());
    };
    match v {
        Value::U32(x) => {
            out.extend_from_slice(&4u32.to_le_bytes());
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::F32(x) => {
            out.extend_from_slice(&6u32.to_le_bytes());
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Bool(x) => {
            out.extend_from_slice(&7u32.to_le_bytes());
            out.push(u8::from(*x));
        }
        Value::Str(s) => {
            out.extend_from_slice(&8u32.to_le_bytes());
            put_str(out, s);
        }
        Value::Strs(v) => {
            array(out, 8, v.len());
            v.iter().for_each(|s| put_str(out, s));
        }
        Value::F32s(v) => {
            array(out, 6, v.len());
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        Value::I32s(v) => {
            array(out, 5, v.len());
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
    }
}

/// Byte tokens, special tokens and a few pieces; their SentencePiece types.
fn vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let (normal, unknown, control, byte) = (1, 2, 3, 6);
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    let mut types = vec![unknown, control, control, control, control];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    types.extend(std::iter::repeat_n(byte, 256));
    let pieces = [
        "\u{2581}the",
        "\u{2581}a",
        "\u{2581}is",
        "user",
        "assistant",
        "e",
        "t",
    ];
    tokens.extend(pieces.map(String::from));
    types.extend(std::iter::repeat_n(normal, pieces.len()));
    let mut scores = vec![0.0; 261];
    scores.extend((0..pieces.len()).map(|i| -(i as f32)));
    (tokens, scores, types)
}

/// Seeded weights in about ±0.35 (xorshift), so every file is the same.
fn weights(seed: &mut u64, n: u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.7
        })
        .collect()
}

fn write_tiny(path: &Path, arch: &str) {
    let (tokens, scores, types) = vocab();
    let n_vocab = tokens.len() as u64;
    let key = |k: &str| format!("{arch}.{k}");
    let meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str(arch.into())),
        ("general.name".into(), Value::Str(format!("tiny-{arch}"))),
        ("general.file_type".into(), Value::U32(0)),
        (key("context_length"), Value::U32(512)),
        (key("embedding_length"), Value::U32(WIDTH as u32)),
        (key("block_count"), Value::U32(LAYERS as u32)),
        (key("feed_forward_length"), Value::U32(FFN as u32)),
        (key("attention.head_count"), Value::U32(HEADS as u32)),
        (key("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (
            key("rope.dimension_count"),
            Value::U32((WIDTH / HEADS) as u32),
        ),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        (key("rope.freq_base"), Value::F32(10_000.0)),
        ("tokenizer.ggml.model".into(), Value::Str("llama".into())),
        ("tokenizer.ggml.tokens".into(), Value::Strs(tokens)),
        ("tokenizer.ggml.scores".into(), Value::F32s(scores)),
        ("tokenizer.ggml.token_type".into(), Value::I32s(types)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        // <|im_end|> ends a ChatML answer.
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(4)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
        ("tokenizer.chat_template".into(), Value::Str(CHATML.into())),
    ];
    // Tensors as GGUF lists dimensions: the fastest-varying first.
    let kv = WIDTH / HEADS * KV_HEADS;
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("token_embd.weight".into(), vec![WIDTH, n_vocab]),
        ("output_norm.weight".into(), vec![WIDTH]),
        ("output.weight".into(), vec![WIDTH, n_vocab]),
    ];
    for i in 0..LAYERS {
        let p = |n: &str| format!("blk.{i}.{n}");
        tensors.push((p("attn_norm.weight"), vec![WIDTH]));
        tensors.push((p("attn_q.weight"), vec![WIDTH, WIDTH]));
        tensors.push((p("attn_k.weight"), vec![WIDTH, kv]));
        tensors.push((p("attn_v.weight"), vec![WIDTH, kv]));
        tensors.push((p("attn_output.weight"), vec![WIDTH, WIDTH]));
        if arch == "qwen2" {
            tensors.push((p("attn_q.bias"), vec![WIDTH]));
            tensors.push((p("attn_k.bias"), vec![kv]));
            tensors.push((p("attn_v.bias"), vec![kv]));
        }
        tensors.push((p("ffn_norm.weight"), vec![WIDTH]));
        tensors.push((p("ffn_gate.weight"), vec![WIDTH, FFN]));
        tensors.push((p("ffn_up.weight"), vec![WIDTH, FFN]));
        tensors.push((p("ffn_down.weight"), vec![FFN, WIDTH]));
    }
    let align = |n: u64| n.div_ceil(32) * 32;
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    for (k, v) in &meta {
        put_str(&mut out, k);
        put_value(&mut out, v);
    }
    let mut offset = 0u64;
    for (name, dims) in &tensors {
        put_str(&mut out, name);
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        dims.iter()
            .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
        out.extend_from_slice(&0u32.to_le_bytes()); // F32
        out.extend_from_slice(&offset.to_le_bytes());
        offset = align(offset + dims.iter().product::<u64>() * 4);
    }
    out.resize(align(out.len() as u64) as usize, 0);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for (name, dims) in &tensors {
        let n = dims.iter().product::<u64>();
        let data = if name.ends_with("norm.weight") {
            vec![1.0f32; n as usize]
        } else {
            weights(&mut seed, n)
        };
        data.iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        out.resize(align(out.len() as u64) as usize, 0);
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .expect("write the GGUF");
}

async fn ids(mut rx: UnboundedReceiver<Event>) -> (Vec<i32>, Option<Finish>) {
    let mut ids = Vec::new();
    let mut finish = None;
    while let Some(e) = rx.recv().await {
        match e {
            Event::Token { id, .. } if id >= 0 => ids.push(id),
            Event::Done { finish: f, .. } => finish = Some(f),
            Event::Failed(e) => panic!("generation failed: {e}"),
            _ => {}
        }
    }
    (ids, finish)
}

async fn check(arch: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("tiny-{arch}.gguf"));
    write_tiny(&path, arch);
    let config = GenerationConfig {
        kv_budget_tokens: 1024,
        context_tokens: 256,
        max_sequences: 4,
        batch_tokens: 128,
        ..GenerationConfig::default()
    };
    let g = Generator::start(&path, &config).expect("load the tiny GGUF");
    assert_eq!(g.info().architecture, arch);
    assert_eq!(g.info().chat_template, "from the model file");
    let messages = [
        Message {
            role: "system".into(),
            content: "Be brief.".into(),
        },
        Message {
            role: "user".into(),
            content: "hi".into(),
        },
    ];
    let (prompt, stops) = g.chat_prompt(&messages).expect("template");
    assert_eq!(
        prompt,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    assert!(stops.is_empty());
    let tokens = g.tokenize(&prompt);
    // The start token, then the template's markers as single special tokens.
    assert_eq!(&tokens[..2], &[1, 3], "{tokens:?}");
    assert_eq!(tokens.iter().filter(|&&t| t == 4).count(), 2, "{tokens:?}");
    let job = |max_tokens| Job {
        prompt: tokens.clone(),
        max_tokens,
        sampling: Sampling {
            temperature: 0.0,
            ..Sampling::default()
        },
        stop: Vec::new(),
        ignore_eos: true,
    };
    let (alone, finish) = ids(g.submit(job(8)).expect("submit")).await;
    assert_eq!((alone.len(), finish), (8, Some(Finish::Length)));
    // Three at once share the steps.
    let before = g.stats().steps.get();
    let runs: Vec<_> = (0..3)
        .map(|_| tokio::spawn(ids(g.submit(job(8)).expect("submit"))))
        .collect();
    for r in runs {
        let (got, finish) = r.await.expect("join");
        assert_eq!((got.len(), finish), (8, Some(Finish::Length)));
    }
    let steps = g.stats().steps.get() - before;
    assert!(steps < 24, "{steps} steps for 3 × 8 tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_llama_gguf_loads_templates_and_batches() {
    check("llama").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qwen2_gguf_loads_templates_and_batches() {
    check("qwen2").await;
}
