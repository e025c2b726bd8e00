//! The decode loop: one thread owns the llama.cpp context and steps every running
//! sequence together (continuous batching). Each step carries one token of each
//! answering sequence, then as much waiting prompt as the step has room for;
//! requests join and leave between steps.

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
        admit(&mut running, &mut waiting, budget, stats);
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
                end(&mut ctx, slot, id, budget, None);
                stats.cancelled.add(1);
                continue;
            }
            if let Some(tok) = seq.next {
                let at = batch.n_tokens();
                if batch.add(tok, seq.position(), &[id as i32], true).is_ok() {
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
                    end(&mut ctx, slot, id, budget, Some(Event::Failed(msg)));
                }
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
            if model.vocab().is_eog(tok) && !seq.ignore_eos {
                finish(&mut ctx, slot, id, budget, Finish::Stop);
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
                finish(&mut ctx, slot, id, budget, Finish::Stop);
            } else if seq.generated >= seq.max_tokens {
                finish(&mut ctx, slot, id, budget, Finish::Length);
            } else {
                seq.next = Some(tok);
            }
        }
    }
}

/// Moves waiting jobs into free slots, dropping those whose client has gone.
fn admit(
    running: &mut [Option<Sequence>],
    waiting: &mut VecDeque<Submitted>,
    budget: &Budget,
    stats: &Stats,
) {
    for slot in running.iter_mut().filter(|s| s.is_none()) {
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
        stats
            .prompt_tokens
            .add(u64::try_from(s.job.prompt.len()).unwrap_or(0));
        *slot = Some(Sequence {
            prompt: s.job.prompt.iter().map(|&t| LlamaToken(t)).collect(),
            fed: 0,
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

/// Ends a sequence normally: the text held back as a possible stop sequence
/// (none is left after a stop sequence matched), then `Done`.
fn finish(
    ctx: &mut LlamaContext<'_>,
    slot: &mut Option<Sequence>,
    id: usize,
    budget: &Budget,
    why: Finish,
) {
    if let Some(seq) = slot {
        let rest = seq.text.finish();
        if !rest.is_empty() {
            let _ = seq.events.send(Event::Token { text: rest, id: -1 });
        }
        let done = Event::Done {
            finish: why,
            prompt_tokens: u32::try_from(seq.prompt.len()).unwrap_or(u32::MAX),
            completion_tokens: seq.generated,
        };
        end(ctx, slot, id, budget, Some(done));
    }
}

/// Frees a sequence's slot, KV cells and budget, sending `last` first.
fn end(
    ctx: &mut LlamaContext<'_>,
    slot: &mut Option<Sequence>,
    id: usize,
    budget: &Budget,
    last: Option<Event>,
) {
    if let Some(seq) = slot.take() {
        if let Some(e) = last {
            let _ = seq.events.send(e);
        }
        let _ = ctx.clear_kv_cache_seq(u32::try_from(id).ok(), None, None);
        budget.release(seq.reserved);
    }
}
