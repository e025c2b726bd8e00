//! llama.cpp alone, without the server: time to first token under several
//! context settings (the prompt's decode step plus a greedy pick, the cache
//! cleared between rounds), then decode tokens/s of 1 and 8 sequences stepped
//! together. Tells the engine's own cost apart from the server's.
//!
//! cargo run --release -p osprey-generate --example engine_speed -- GGUF [ROUNDS]
//!
//! The settings: Osprey's (16,384 cells shared by 16 sequences, flash attention
//! as llama.cpp decides) and llama-cpp-python's defaults (2,048 cells, one
//! sequence, flash attention off), and the steps between them.

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use osprey_generate::argmax;

// llama.cpp's `llama_flash_attn_type`.
const LLAMA_FLASH_ATTN_TYPE_AUTO: i32 = -1;
const LLAMA_FLASH_ATTN_TYPE_DISABLED: i32 = 0;
const LLAMA_FLASH_ATTN_TYPE_ENABLED: i32 = 1;

const PROMPT: &str = "Here is a long story about a lighthouse keeper and the sea:";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: engine_speed GGUF [ROUNDS]")?;
    let rounds = args.next().map_or(Ok(20), |r| r.parse::<usize>())?.max(1);
    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default())?;
    let prompt = model.vocab().tokenize(PROMPT.as_bytes(), true, true);
    println!("prompt: {} tokens", prompt.len());
    let settings = [
        ("osprey", 16_384, 16, true, LLAMA_FLASH_ATTN_TYPE_AUTO),
        ("python", 2_048, 1, false, LLAMA_FLASH_ATTN_TYPE_DISABLED),
        (
            "osprey-fa-off",
            16_384,
            16,
            true,
            LLAMA_FLASH_ATTN_TYPE_DISABLED,
        ),
        ("small-fa-auto", 2_048, 1, false, LLAMA_FLASH_ATTN_TYPE_AUTO),
        (
            "small-fa-on",
            2_048,
            1,
            false,
            LLAMA_FLASH_ATTN_TYPE_ENABLED,
        ),
    ];
    for (name, n_ctx, seqs, unified, flash) in settings {
        let mut ctx = model.new_context(&backend, params(n_ctx, seqs, unified, flash))?;
        let mut batch = LlamaBatch::new(512, 1);
        let mut times = Vec::with_capacity(rounds);
        let mut steps = Vec::with_capacity(rounds);
        for _ in 0..=rounds {
            ctx.clear_kv_cache();
            batch.clear();
            for (i, &t) in prompt.iter().enumerate() {
                batch.add(t, i as i32, &[0], i + 1 == prompt.len())?;
            }
            let t0 = Instant::now();
            ctx.decode(&mut batch)?;
            let best = argmax(ctx.get_logits_ith(batch.n_tokens() - 1));
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            // One decode step after it, as the first answer token goes in.
            batch.clear();
            batch.add(
                llama_cpp_2::token::LlamaToken(best),
                prompt.len() as i32,
                &[0],
                true,
            )?;
            let t1 = Instant::now();
            ctx.decode(&mut batch)?;
            steps.push(t1.elapsed().as_secs_f64() * 1e3);
        }
        times.remove(0);
        steps.remove(0);
        times.sort_by(f64::total_cmp);
        steps.sort_by(f64::total_cmp);
        println!(
            "{name:>14}: first token {:.1} ms (p10 {:.1}, p90 {:.1}); next step {:.1} ms",
            times[rounds / 2],
            times[rounds / 10],
            times[rounds * 9 / 10],
            steps[rounds / 2]
        );
    }
    for seqs in [1, 8] {
        let tps = decode_rate(&model, &backend, &prompt, seqs, 64)?;
        println!("{seqs} sequence(s): {tps:.1} tokens/s aggregate over 64 steps");
    }
    Ok(())
}

/// A context of `n_ctx` cells for `seqs` sequences on two threads.
fn params(n_ctx: u32, seqs: u32, unified: bool, flash: i32) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_seq_max(seqs)
        .with_kv_unified(unified)
        .with_flash_attention_policy(flash)
        .with_n_threads(2)
        .with_n_threads_batch(2)
}

/// Aggregate decode tokens/s of `seqs` sequences stepped together with Osprey's
/// context settings, after their prompts are in.
fn decode_rate(
    model: &LlamaModel,
    backend: &LlamaBackend,
    prompt: &[llama_cpp_2::token::LlamaToken],
    seqs: i32,
    steps: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let settings = params(16_384, 16, true, LLAMA_FLASH_ATTN_TYPE_AUTO);
    let mut ctx = model.new_context(backend, settings)?;
    let mut batch = LlamaBatch::new(512, 1);
    for s in 0..seqs {
        for (i, &t) in prompt.iter().enumerate() {
            batch.add(t, i as i32, &[s], i + 1 == prompt.len())?;
        }
    }
    ctx.decode(&mut batch)?;
    let mut next: Vec<i32> = (0..seqs).map(|s| (s + 1) * 100).collect();
    let t0 = Instant::now();
    for step in 0..steps {
        batch.clear();
        for (s, &t) in next.iter().enumerate() {
            let pos = (prompt.len() + step) as i32;
            batch.add(llama_cpp_2::token::LlamaToken(t), pos, &[s as i32], true)?;
        }
        ctx.decode(&mut batch)?;
        for (s, t) in next.iter_mut().enumerate() {
            *t = argmax(ctx.get_logits_ith(s as i32));
        }
    }
    Ok(f64::from(seqs) * steps as f64 / t0.elapsed().as_secs_f64())
}
