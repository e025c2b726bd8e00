//! The decode loop: one thread owns the llama.cpp context and steps every running
//! sequence together (continuous batching). Each step carries one token of each
//! answering sequence, then as much waiting prompt as the step has room for;
//! requests join and leave between steps. A sequence that ends leaves its KV
//! cells in its slot for a prompt that starts the same way ([`crate::kept`]).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use rayon::prelude::*;

use crate::budget::Budget;
use crate::kept::{Kept, choose, reusable, to_evict};
use crate::request::{Event, Finish, Job};
use crate::sampler::TokenSampler;
use crate::stats::Stats;
use crate::text::TextStream;

/// A job on its way to the loop, with where its events go and the KV tokens it
/// holds.
pub(crate) struct Submitted {
    pub job: Job,
    pub events: UnboundedSender<Event>,
    pub reserved: u32,
    pub queued_at: Instant,
}

/// What the loop is sized by.
pub(crate) struct LoopConfig {
    pub max_sequences: u32,
    pub kv_tokens: u32,
    pub batch_tokens: u32,
    pub threads: i32,
    /// The model's attention window on its sliding-window layers (0: none).
    pub swa_window: u32,
}

impl LoopConfig {
    pub fn context_params(&self) -> LlamaContextParams {
        LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.kv_tokens))
            .with_n_batch(self.batch_tokens)
            .with_n_ubatch(self.batch_tokens)
            .with_n_seq_max(self.max_sequences)
            // One pool of cells for all sequences: the budget is shared, not split.
            .with_kv_unified(true)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
    }
}

struct Sequence {
    events: UnboundedSender<Event>,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache.
    fed: usize,
    /// Of those, the ones an earlier sequence left there.
    cached: usize,
    /// Every token in the KV cache, prompt and answer, from position 0.
    history: Vec<LlamaToken>,
    /// The token to feed next once the prompt is in.
    next: Option<LlamaToken>,
    sampler: TokenSampler,
    /// The token chosen in the step just decoded.
    chosen: Option<i32>,
    text: TextStream,
    generated: u32,
    max_tokens: u32,
    ignore_eos: bool,
    reserved: u32,
    /// Where this sequence's logits are in the step just decoded.
    logits_at: Option<i32>,
    queued_at: Instant,
    last_token_at: Option<Instant>,
}

impl Sequence {
    /// Where the token to feed next goes: after the prompt and every generated
    /// token before it (it is itself the last one generated).
    fn position(&self) -> i32 {
        let at = self.fed + (self.generated as usize).saturating_sub(1);
        // Positions fit: prompt plus answer is checked against the context.
        i32::try_from(at).unwrap_or(i32::MAX)
    }
}

/// Runs until the job channel closes and every sequence has ended.
pub(crate) fn run(
    model: &LlamaModel,
    mut ctx: LlamaContext<'_>,
    config: &LoopConfig,
    jobs: &mpsc::Receiver<Submitted>,
    budget: &Budget,
    stats: &Stats,
) {
    let slots = config.max_sequences as usize;
    let mut running: Vec<Option<Sequence>> = (0..slots).map(|_| None).collect();
    let mut kept: Vec<Kept> = (0..slots).map(|_| Kept::default()).collect();
    let mut waiting: VecDeque<Submitted> = VecDeque::new();
    let mut batch = LlamaBatch::new(config.batch_tokens as usize, 1);
    let mut open = true;
    loop {
        let idle = running.iter().all(Option::is_none) && waiting.is_empty();
        if idle {
            if !open {
                return;
            }
            match jobs.recv() {
                Ok(s) => waiting.push_back(s),
                Err(_) => return,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(s) => waiting.push_back(s),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        admit(
            &mut ctx,
            &mut running,
            &mut kept,
            &mut waiting,
            config.swa_window,
            budget,
            stats,
        );
        let reserved: u64 = running
            .iter()
            .flatten()
            .map(|s| u64::from(s.reserved))
            .sum();
        for i in to_evict(&kept, reserved, u64::from(config.kv_tokens)) {
            forget(&mut ctx, &mut kept[i], i);
        }
        let step_no = stats.steps.get();
        let active = running.iter().flatten().count();
        stats.active.store(active as u64, Ordering::Relaxed);
        stats.queued.store(waiting.len() as u64, Ordering::Relaxed);

        // Fill the step: one token per answering sequence first, so answers keep
        // flowing while a long prompt is read in chunks.
        batch.clear();
        let mut room = config.batch_tokens as usize;
        let mut in_step = 0u64;
        for (id, slot) in running.iter_mut().enumerate() {
            let Some(seq) = slot else { continue };
            seq.logits_at = None;
            if seq.events.is_closed() {
                end(
                    &mut ctx,
                    slot,
                    id,
                    budget,
                    None,
                    Some((&mut kept[id], step_no)),
                );
                stats.cancelled.add(1);
                continue;
            }
            if let Some(tok) = seq.next {
                let at = batch.n_tokens();
                if batch.add(tok, seq.position(), &[id as i32], true).is_ok() {
                    seq.history.push(tok);
                    seq.logits_at = Some(at);
                    room -= 1;
                    in_step += 1;
                }
            }
        }
        for (id, slot) in running.iter_mut().enumerate() {
            let Some(seq) = slot else { continue };
            if seq.next.is_some() || seq.fed >= seq.prompt.len() || room == 0 {
                continue;
            }
            let take = room.min(seq.prompt.len() - seq.fed);
            let last = seq.fed + take == seq.prompt.len();
            for i in seq.fed..seq.fed + take {
                let at = batch.n_tokens();
                let logits = last && i + 1 == seq.prompt.len();
                let pos = i32::try_from(i).unwrap_or(i32::MAX);
                if batch.add(seq.prompt[i], pos, &[id as i32], logits).is_ok() && logits {
                    seq.logits_at = Some(at);
                }
            }
            seq.history
                .extend_from_slice(&seq.prompt[seq.fed..seq.fed + take]);
            seq.fed += take;
            room -= take;
            in_step += 1;
        }
        if batch.n_tokens() == 0 {
            continue;
        }
        stats.steps.add(1);
        stats.step_sequences.add(in_step);
        stats
            .step_tokens
            .add(u64::try_from(batch.n_tokens()).unwrap_or(0));
        stats
            .max_step_sequences
            .fetch_max(in_step, Ordering::Relaxed);
        if let Err(e) = ctx.decode(&mut batch) {
            tracing::error!(error = %e, "decode step failed");
            for (id, slot) in running.iter_mut().enumerate() {
                if slot.is_some() {
                    let msg = format!("the model failed this step: {e}");
                    end(&mut ctx, slot, id, budget, Some(Event::Failed(msg)), None);
                }
            }
            // What the cache holds is no longer known: start afresh.
            for (id, k) in kept.iter_mut().enumerate() {
                forget(&mut ctx, k, id);
            }
            continue;
        }
        // Every sequence's next token at once, reading its logits in place.
        let logits: Vec<Option<&[f32]>> = running
            .iter()
            .map(|slot| {
                let at = slot.as_ref()?.logits_at?;
                Some(ctx.get_logits_ith(at))
            })
            .collect();
        let pick = |(slot, logits): (&mut Option<Sequence>, &Option<&[f32]>)| {
            if let (Some(seq), Some(l)) = (slot.as_mut(), logits) {
                seq.chosen = Some(seq.sampler.sample(l));
            }
        };
        // A lone sequence samples on this thread: handing one draw to the pool
        // would wait on threads that llama.cpp's OpenMP workers, still spinning
        // after the step, hold the cores from.
        if logits.iter().flatten().nth(1).is_some() {
            running.par_iter_mut().zip(logits.par_iter()).for_each(pick);
        } else {
            running.iter_mut().zip(logits.iter()).for_each(pick);
        }
        drop(logits);
        let now = Instant::now();
        for (id, slot) in running.iter_mut().enumerate() {
            let Some(seq) = slot else { continue };
            let Some(tok) = seq.chosen.take() else {
                continue;
            };
            let tok = LlamaToken(tok);
            match seq.last_token_at {
                None => {
                    stats.ttft.record(now - seq.queued_at);
                    let _ = seq.events.send(Event::Started);
                }
                Some(t) => stats.inter_token.record(now - t),
            }
            seq.last_token_at = Some(now);
            let keep = Some((&mut kept[id], step_no));
            if model.vocab().is_eog(tok) && !seq.ignore_eos {
                finish(&mut ctx, slot, id, budget, Finish::Stop, keep);
                continue;
            }
            seq.generated += 1;
            stats.completion_tokens.add(1);
            let piece = model.vocab().token_to_piece(tok, false, None);
            let step = seq.text.push(&piece);
            if !step.text.is_empty() || !step.stopped {
                let _ = seq.events.send(Event::Token {
                    text: step.text,
                    id: tok.0,
                });
            }
            if step.stopped {
                finish(&mut ctx, slot, id, budget, Finish::Stop, keep);
            } else if seq.generated >= seq.max_tokens {
                finish(&mut ctx, slot, id, budget, Finish::Length, keep);
            } else {
                seq.next = Some(tok);
            }
        }
    }
}

/// Moves waiting jobs into free slots, dropping those whose client has gone.
/// Each goes to the slot that keeps the longest start of its prompt.
fn admit(
    ctx: &mut LlamaContext<'_>,
    running: &mut [Option<Sequence>],
    kept: &mut [Kept],
    waiting: &mut VecDeque<Submitted>,
    swa_window: u32,
    budget: &Budget,
    stats: &Stats,
) {
    while running.iter().any(Option::is_none) {
        let Some(s) = (loop {
            match waiting.pop_front() {
                Some(s) if s.events.is_closed() => {
                    budget.release(s.reserved);
                    stats.cancelled.add(1);
                }
                other => break other,
            }
        }) else {
            return;
        };
        let prompt: Vec<LlamaToken> = s.job.prompt.iter().map(|&t| LlamaToken(t)).collect();
        let free = (0..running.len()).filter(|&i| running[i].is_none());
        let Some(id) = choose(free, kept, &prompt) else {
            waiting.push_front(s);
            return;
        };
        let fed = adopt(ctx, id, &mut kept[id], &prompt, swa_window);
        stats
            .prompt_tokens
            .add(u64::try_from(prompt.len()).unwrap_or(0));
        stats
            .prompt_cached_tokens
            .add(u64::try_from(fed).unwrap_or(0));
        running[id] = Some(Sequence {
            history: prompt[..fed].to_vec(),
            prompt,
            fed,
            cached: fed,
            next: None,
            sampler: TokenSampler::new(&s.job.sampling),
            chosen: None,
            text: TextStream::new(s.job.stop),
            generated: 0,
            max_tokens: s.job.max_tokens,
            ignore_eos: s.job.ignore_eos,
            reserved: s.reserved,
            logits_at: None,
            queued_at: s.queued_at,
            last_token_at: None,
            events: s.events,
        });
    }
}

/// Readies slot `id` for `prompt`: keeps the cells of the start they share and
/// drops the rest. Returns how many prompt tokens are already in the cache.
fn adopt(
    ctx: &mut LlamaContext<'_>,
    id: usize,
    kept: &mut Kept,
    prompt: &[LlamaToken],
    swa_window: u32,
) -> usize {
    let tokens = std::mem::take(&mut kept.tokens);
    let common = reusable(&tokens, prompt);
    if common > 0 {
        // A sliding-window cache drops old positions; the prompt's next token
        // must still see its window.
        let needed = match swa_window {
            0 => 0,
            w => common.saturating_sub(w as usize),
        };
        let oldest = ctx.kv_cache_seq_pos_min(i32::try_from(id).unwrap_or(i32::MAX));
        let present = usize::try_from(oldest).is_ok_and(|o| o <= needed);
        if present
            && matches!(
                ctx.clear_kv_cache_seq(u32::try_from(id).ok(), u32::try_from(common).ok(), None),
                Ok(true)
            )
        {
            return common;
        }
    }
    free_cells(ctx, id);
    0
}

/// Drops what slot `id` keeps.
fn forget(ctx: &mut LlamaContext<'_>, kept: &mut Kept, id: usize) {
    if !kept.tokens.is_empty() {
        kept.tokens.clear();
        free_cells(ctx, id);
    }
}

/// Frees every KV cell of slot `id`'s sequence.
fn free_cells(ctx: &mut LlamaContext<'_>, id: usize) {
    let _ = ctx.clear_kv_cache_seq(u32::try_from(id).ok(), None, None);
}

/// Ends a sequence normally: the text held back as a possible stop sequence
/// (none is left after a stop sequence matched), then `Done`.
fn finish(
    ctx: &mut LlamaContext<'_>,
    slot: &mut Option<Sequence>,
    id: usize,
    budget: &Budget,
    why: Finish,
    keep: Option<(&mut Kept, u64)>,
) {
    if let Some(seq) = slot {
        let rest = seq.text.finish();
        if !rest.is_empty() {
            let _ = seq.events.send(Event::Token { text: rest, id: -1 });
        }
        let done = Event::Done {
            finish: why,
            prompt_tokens: u32::try_from(seq.prompt.len()).unwrap_or(u32::MAX),
            cached_tokens: u32::try_from(seq.cached).unwrap_or(u32::MAX),
            completion_tokens: seq.generated,
        };
        end(ctx, slot, id, budget, Some(done), keep);
    }
}

/// Frees a sequence's slot and budget, sending `last` first. Its KV cells stay
/// for the next prompt that starts the same way when `keep` says where (with
/// the step it is kept at); otherwise they are freed too.
fn end(
    ctx: &mut LlamaContext<'_>,
    slot: &mut Option<Sequence>,
    id: usize,
    budget: &Budget,
    last: Option<Event>,
    keep: Option<(&mut Kept, u64)>,
) {
    if let Some(seq) = slot.take() {
        if let Some(e) = last {
            let _ = seq.events.send(e);
        }
        match keep {
            Some((kept, since)) => {
                kept.tokens = seq.history;
                kept.since = since;
            }
            None => free_cells(ctx, id),
        }
        budget.release(seq.reserved);
    }
}
