//! The decode loop on the real gemma-3-270m GGUF: greedy answers against
//! llama.cpp's own (llama-cpp-python, `scripts/reference_generation.py`),
//! continuous batching, the KV budget, stop sequences and cancellation.

#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use osprey_generate::{Event, Finish, GenerateError, GenerationConfig, Generator, Job, Sampling};
use serde::Deserialize;
use tokio::sync::mpsc::UnboundedReceiver;

fn gguf() -> PathBuf {
    std::env::var_os("OSPREY_TEST_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf")
        })
}

fn shared() -> &'static Generator {
    static G: OnceLock<Generator> = OnceLock::new();
    G.get_or_init(|| {
        Generator::start(&gguf(), &GenerationConfig::default()).expect("load the test GGUF")
    })
}

fn greedy(prompt: Vec<i32>, max_tokens: u32) -> Job {
    Job {
        prompt,
        max_tokens,
        sampling: Sampling {
            temperature: 0.0,
            ..Sampling::default()
        },
        stop: Vec::new(),
        ignore_eos: true,
    }
}

struct Answer {
    ids: Vec<i32>,
    text: String,
    finish: Option<Finish>,
    completion_tokens: u32,
}

async fn drain(mut rx: UnboundedReceiver<Event>) -> Answer {
    let mut a = Answer {
        ids: Vec::new(),
        text: String::new(),
        finish: None,
        completion_tokens: 0,
    };
    while let Some(e) = rx.recv().await {
        match e {
            Event::Token { text, id } => {
                a.text.push_str(&text);
                if id >= 0 {
                    a.ids.push(id);
                }
            }
            Event::Done {
                finish,
                completion_tokens,
                ..
            } => {
                a.finish = Some(finish);
                a.completion_tokens = completion_tokens;
            }
            Event::Failed(e) => panic!("generation failed: {e}"),
            Event::Started => {}
        }
    }
    a
}

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    prompt: String,
    prompt_tokens: Vec<i32>,
    greedy: Vec<i32>,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("data/greedy_reference.json")).expect("reference json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_answers_match_llama_cpp() {
    // Its own engine: a sequence batched with another test's could differ.
    let g = Generator::start(&gguf(), &GenerationConfig::default()).expect("load");
    let mut same = 0;
    for case in &reference().cases {
        assert_eq!(
            g.tokenize(&case.prompt),
            case.prompt_tokens,
            "tokens of {:?}",
            case.prompt
        );
        let a = drain(
            g.submit(greedy(case.prompt_tokens.clone(), 8))
                .expect("submit"),
        )
        .await;
        assert_eq!(a.finish, Some(Finish::Length));
        assert_eq!(a.completion_tokens, 8);
        if a.ids == case.greedy {
            same += 1;
        } else {
            eprintln!(
                "{:?}: {:?} vs llama.cpp {:?}",
                case.prompt, a.ids, case.greedy
            );
        }
    }
    assert!(
        same >= 4,
        "{same} of 5 prompts match llama.cpp's greedy tokens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_that_starts_as_an_earlier_one_reads_only_the_rest() {
    // Its own engine: no other test's sequence takes the slot in between.
    let g = Generator::start(&gguf(), &GenerationConfig::default()).expect("load");
    let cached = || g.stats().prompt_cached_tokens.get();
    let mut checked = 0;
    for case in &reference().cases {
        let before = cached();
        let first = drain(
            g.submit(greedy(case.prompt_tokens.clone(), 8))
                .expect("submit"),
        )
        .await;
        assert_eq!(
            cached(),
            before,
            "nothing kept starts like {:?}",
            case.prompt
        );
        if first.ids != case.greedy {
            continue;
        }
        // The next turn holds the prompt and the start of the answer, as a
        // chat's history does: only its last token is read.
        let mut next = case.prompt_tokens.clone();
        next.extend_from_slice(&case.greedy[..4]);
        let before = cached();
        let second = drain(g.submit(greedy(next.clone(), 4)).expect("submit")).await;
        assert_eq!(cached() - before, next.len() as u64 - 1);
        // llama.cpp, reading the whole of it, goes on the same way.
        assert_eq!(second.ids, case.greedy[4..], "{:?}", case.prompt);
        // The same prompt again: all of it but its last token from the cache.
        let before = cached();
        let again = drain(
            g.submit(greedy(case.prompt_tokens.clone(), 8))
                .expect("submit"),
        )
        .await;
        assert_eq!(cached() - before, case.prompt_tokens.len() as u64 - 1);
        assert_eq!(again.ids, case.greedy, "{:?}", case.prompt);
        checked += 1;
    }
    assert!(checked >= 4, "{checked} of 5 prompts checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_cells_give_way_to_a_running_sequence() {
    let config = GenerationConfig {
        kv_budget_tokens: 64,
        context_tokens: 48,
        max_sequences: 2,
        batch_tokens: 64,
        ..GenerationConfig::default()
    };
    let g = Generator::start(&gguf(), &config).expect("load");
    let cached = || g.stats().prompt_cached_tokens.get();
    let village = g.tokenize("Once upon a time, in a small village,");
    let france = g.tokenize("The capital of France is");
    let a = drain(g.submit(greedy(village.clone(), 8)).expect("submit")).await;
    assert_eq!(a.completion_tokens, 8);
    // 18 cells kept, and this one reserves 48 of the 64: the kept ones go.
    let n = france.len() as u32;
    let b = drain(g.submit(greedy(france, 48 - n)).expect("submit")).await;
    assert_eq!(b.completion_tokens, 48 - n);
    let before = cached();
    let again = drain(g.submit(greedy(village.clone(), 8)).expect("submit")).await;
    assert_eq!(again.completion_tokens, 8);
    assert_eq!(cached(), before, "the village's cells were given up");
    // Kept again now, and found.
    let before = cached();
    drain(g.submit(greedy(village.clone(), 8)).expect("submit")).await;
    assert_eq!(cached() - before, village.len() as u64 - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sequences_share_decode_steps() {
    let g = shared();
    let reference = reference();
    let steps_before = g.stats().steps.get();
    let running: Vec<_> = reference
        .cases
        .iter()
        .map(|case| {
            let rx = g
                .submit(greedy(case.prompt_tokens.clone(), 8))
                .expect("submit");
            tokio::spawn(drain(rx))
        })
        .collect();
    for (case, run) in reference.cases.iter().zip(running) {
        let a = run.await.expect("join");
        assert_eq!(a.completion_tokens, 8);
        // A batch of several rows takes other kernels than one row, so near ties
        // can later go the other way (llama.cpp's own server does the same); the
        // start of each answer must still be llama.cpp's.
        assert_eq!(a.ids[..3], case.greedy[..3], "{:?}", case.prompt);
    }
    // Five sequences of 8 tokens, one at a time, would take 5 × 8 steps at least.
    let steps = g.stats().steps.get() - steps_before;
    assert!(
        steps < 40,
        "{steps} decode steps for 5 × 8 tokens: not batched"
    );
    assert!(
        g.stats()
            .max_step_sequences
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_sequence_ends_the_answer_before_it() {
    let g = shared();
    let prompt = g.tokenize("The capital of France is");
    // Greedy continues " the capital of the country of France."
    let mut job = greedy(prompt, 32);
    job.stop = vec!["country".into()];
    let a = drain(g.submit(job).expect("submit")).await;
    assert_eq!(a.finish, Some(Finish::Stop));
    assert_eq!(a.text, " the capital of the ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_refuses_what_does_not_fit_and_frees_on_cancel() {
    let config = GenerationConfig {
        kv_budget_tokens: 256,
        context_tokens: 200,
        max_sequences: 2,
        batch_tokens: 64,
        ..GenerationConfig::default()
    };
    let g = Generator::start(&gguf(), &config).expect("load");
    let prompt = g.tokenize("Once upon a time, in a small village,");
    let n = prompt.len() as u32;
    let first = g.submit(greedy(prompt.clone(), 180 - n)).expect("fits");
    assert_eq!(g.budget().used(), 180);
    match g.submit(greedy(prompt.clone(), 100 - n)) {
        Err(GenerateError::Busy { needed, .. }) => assert_eq!(needed, 100),
        other => panic!("expected Busy, got {:?}", other.map(|_| ())),
    }
    // Beyond the context is the client's mistake, not a busy server.
    assert!(matches!(
        g.submit(greedy(prompt.clone(), 500)),
        Err(GenerateError::Invalid(_))
    ));
    // The client goes away: its KV cells and budget come back.
    drop(first);
    let until = Instant::now() + Duration::from_secs(10);
    while g.budget().used() != 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(g.budget().used(), 0);
    assert!(g.stats().cancelled.get() >= 1);
    let again = drain(g.submit(greedy(prompt, 8)).expect("fits again")).await;
    assert_eq!(again.completion_tokens, 8);
}

#[test]
fn a_file_that_is_not_gguf_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"not a model").expect("write");
    let err = Generator::start(&bad, &GenerationConfig::default())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("could not be loaded"), "{err}");
}
