//! Texts to send: a built-in corpus of English-like sentences (the same shape
//! as the project's benchmark sentences), or texts read from a file.

use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::error::{BenchError, Result};

/// Words the built-in corpus and generated texts draw from.
pub const WORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "model",
    "server",
    "request",
    "latency",
    "vector",
    "embedding",
    "search",
    "query",
    "user",
    "data",
    "fast",
    "slow",
    "cache",
    "memory",
    "network",
    "token",
    "batch",
    "input",
    "output",
    "service",
    "rust",
    "system",
    "engineer",
    "team",
    "deploy",
    "scale",
    "cloud",
    "machine",
    "learning",
    "semantic",
    "similar",
    "document",
    "text",
    "sentence",
    "meaning",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "river",
    "mountain",
    "city",
    "music",
    "guitar",
    "play",
    "read",
    "write",
    "book",
    "paper",
    "result",
    "measure",
    "throughput",
    "customer",
    "product",
    "order",
    "price",
    "support",
    "ticket",
    "email",
    "weather",
    "morning",
    "evening",
    "coffee",
    "garden",
    "window",
    "street",
    "train",
    "station",
    "market",
    "bridge",
    "winter",
    "summer",
    "light",
];

/// One sentence of `n` random words, capitalised, with a full stop.
pub fn sentence(rng: &mut SmallRng, n: usize) -> String {
    let mut s = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    if let Some(first) = s.get(0..1) {
        let upper = first.to_ascii_uppercase();
        s.replace_range(0..1, &upper);
    }
    s.push('.');
    s
}

/// 1,000 deterministic sentences of 6 to 40 words (about 10 to 50 tokens).
pub fn builtin() -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(7);
    const LENGTHS: [usize; 9] = [6, 8, 10, 12, 15, 20, 25, 30, 40];
    (0..1000)
        .map(|_| {
            let n = LENGTHS[rng.random_range(0..LENGTHS.len())];
            sentence(&mut rng, n)
        })
        .collect()
}

/// Reads texts from a file: one per line, or JSONL where each line is a JSON
/// string, an array of strings, or an object with a `text`, `input`, `inputs`
/// or `sentence` field. Empty lines are skipped.
pub fn load(path: &Path) -> Result<Vec<String>> {
    let raw = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    let jsonl = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson" | "json")
    );
    let mut texts = Vec::new();
    for (i, line) in raw.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if jsonl {
            let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                BenchError::invalid(format!("{}:{}", path.display(), i + 1), e.to_string())
            })?;
            let before = texts.len();
            collect_texts(&value, &mut texts);
            if texts.len() == before {
                return Err(BenchError::invalid(
                    format!("{}:{}", path.display(), i + 1),
                    "expected a string, an array of strings, or an object with a \"text\", \"input\", \"inputs\" or \"sentence\" field",
                ));
            }
        } else {
            texts.push(line.to_string());
        }
    }
    if texts.is_empty() {
        return Err(BenchError::invalid(
            path.display().to_string(),
            "no texts in the file",
        ));
    }
    Ok(texts)
}

fn collect_texts(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => {
            out.extend(items.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
        serde_json::Value::Object(map) => {
            if let Some(v) = ["text", "input", "inputs", "sentence"]
                .iter()
                .find_map(|k| map.get(*k))
            {
                collect_texts(v, out);
            }
        }
        _ => {}
    }
}

/// The text as it goes between the quotes of a JSON string.
pub fn json_escape(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_corpus_is_deterministic_and_shaped() {
        let a = builtin();
        assert_eq!(a.len(), 1000);
        assert_eq!(a, builtin());
        let words: Vec<usize> = a.iter().map(|s| s.split(' ').count()).collect();
        assert!(words.iter().all(|&n| (6..=40).contains(&n)));
        assert!(
            a.iter()
                .all(|s| s.ends_with('.') && s.chars().next().is_some_and(char::is_uppercase))
        );
    }

    #[test]
    fn files_load_as_lines_or_jsonl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let txt = dir.path().join("t.txt");
        std::fs::write(&txt, "one\n\ntwo \"quoted\"\r\n").expect("write");
        assert_eq!(load(&txt).expect("loads"), vec!["one", "two \"quoted\""]);

        let jl = dir.path().join("t.jsonl");
        std::fs::write(
            &jl,
            "\"a\"\n[\"b\",\"c\"]\n{\"text\":\"d\"}\n{\"inputs\":[\"e\"]}\n",
        )
        .expect("write");
        assert_eq!(load(&jl).expect("loads"), vec!["a", "b", "c", "d", "e"]);

        std::fs::write(&jl, "{\"other\":1}\n").expect("write");
        let err = load(&jl).expect_err("no text field").to_string();
        assert!(err.contains("t.jsonl:1"), "{err}");
        std::fs::write(&jl, "{broken\n").expect("write");
        assert!(load(&jl).is_err());
        assert!(load(&dir.path().join("missing.txt")).is_err());
    }

    #[test]
    fn escaping_matches_json() {
        assert_eq!(json_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
