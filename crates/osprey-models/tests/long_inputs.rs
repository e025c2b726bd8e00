#![allow(clippy::expect_used)]
//! Long inputs are tokenized only as far as the model can use: the ids must be
//! exactly those of tokenizing the whole text with the tokenizer library itself
//! and cutting at the model's maximum.

use std::path::PathBuf;

use osprey_models::{TextTokenizer, TokenizeError};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

const MAX: usize = 256;

fn tokenizer_file() -> PathBuf {
    std::env::var_os("OSPREY_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
        .join("tokenizer.json")
}

/// The independent answer: the library's own truncation on the whole text.
fn whole(text: &str) -> (Vec<u32>, usize) {
    let mut t = Tokenizer::from_file(tokenizer_file()).expect("tokenizer.json");
    t.with_padding(None);
    t.with_truncation(None).expect("no truncation");
    let all = t.encode(text, true).expect("encode").len();
    t.with_truncation(Some(TruncationParams {
        max_length: MAX,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
        direction: TruncationDirection::Right,
    }))
    .expect("truncation");
    (
        t.encode(text, true).expect("encode").get_ids().to_vec(),
        all,
    )
}

#[test]
fn long_texts_give_the_whole_texts_first_tokens() {
    let ours = TextTokenizer::load(&tokenizer_file(), MAX).expect("load");
    let texts = [
        "The osprey dives feet first to catch fish. ".repeat(800),
        "Punctuation,everywhere;and(no)spaces!at?all.".repeat(500),
        format!("{} tail words after a long run", "x".repeat(5000)),
        "长江是中国最长的河流，全长六千多公里。".repeat(400),
        "ünïcödé wörds with àccents and émojis 🦅 ".repeat(600),
        format!("short start{}", " ".repeat(20_000)),
        "a ".repeat(100),
    ];
    for text in &texts {
        let (want, all) = whole(text);
        let got = ours.encode(text, true).expect("truncating encode");
        assert_eq!(got.ids, want, "{:.40}", text);
        assert_eq!(got.truncated, all > MAX, "{:.40}", text);
        match ours.encode(text, false) {
            Ok(e) => assert_eq!(e.ids, want, "{:.40}", text),
            Err(TokenizeError::TooLong { tokens, max }) => {
                assert_eq!((tokens, max), (all, MAX), "{:.40}", text);
            }
            Err(e) => panic!("{e}"),
        }
    }
}
