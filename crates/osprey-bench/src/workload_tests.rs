use std::collections::HashMap;

use super::*;

fn texts_of(body: &Bytes, api: Api) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("body is JSON");
    let key = match api {
        Api::Tei => "inputs",
        Api::OpenAi => "input",
    };
    v[key]
        .as_array()
        .expect("list of inputs")
        .iter()
        .map(|t| t.as_str().expect("string").to_string())
        .collect()
}

fn corpus() -> Vec<String> {
    vec![
        "Alpha \"quoted\" text.".into(),
        "Beta text.".into(),
        "Gamma.".into(),
    ]
}

#[test]
fn specs_parse() {
    let w = WorkloadSpec::parse("batch:32").expect("parses");
    assert_eq!(w.components[0].source, SourceSpec::Unique);
    assert_eq!(w.components[0].batch, 32);
    let w = WorkloadSpec::parse("zipf:500:1.2+batch:4@3, unique@1").expect("parses");
    assert_eq!(w.components.len(), 2);
    assert_eq!(w.components[0].source, SourceSpec::Zipf { n: 500, s: 1.2 });
    assert_eq!((w.components[0].batch, w.components[0].weight), (4, 3.0));
    assert_eq!(w.describe(), "zipf:500:1.2+batch:4@3,unique@1");
    assert_eq!(
        WorkloadSpec::parse("gen:5-40").expect("parses").components[0].source,
        SourceSpec::GenUniform { min: 5, max: 40 }
    );
    assert_eq!(
        WorkloadSpec::parse("gen:20:4").expect("parses").components[0].source,
        SourceSpec::GenNormal {
            mean: 20.0,
            sd: 4.0
        }
    );
    for bad in [
        "batch:0",
        "zipf:0",
        "uniq",
        "unique+zipf",
        "gen:9-2",
        "unique@-1",
        "batch:x",
        "file:",
    ] {
        assert!(WorkloadSpec::parse(bad).is_err(), "{bad} should not parse");
    }
}

#[test]
fn unique_texts_never_repeat_and_bodies_are_valid_json() {
    let spec = WorkloadSpec::parse("batch:4").expect("parses");
    let mut w = Workload::new(&spec, &corpus(), Api::Tei, None, 1).expect("builds");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let next = w.next_body();
        assert_eq!(next.items, 4);
        let v: serde_json::Value = serde_json::from_slice(&next.body).expect("JSON");
        assert_eq!(v["normalize"], true);
        for t in texts_of(&next.body, Api::Tei) {
            assert!(seen.insert(t), "a unique text repeated");
        }
    }
    // Another run (another seed) uses other suffixes, so no server cache hit.
    let mut other = Workload::new(&spec, &corpus(), Api::Tei, None, 2).expect("builds");
    for t in texts_of(&other.next_body().body, Api::Tei) {
        assert!(!seen.contains(&t));
    }
}

#[test]
fn openai_bodies_carry_the_model() {
    let spec = WorkloadSpec::parse("unique").expect("parses");
    let mut w = Workload::new(&spec, &corpus(), Api::OpenAi, Some("m\"x"), 1).expect("builds");
    let v: serde_json::Value = serde_json::from_slice(&w.next_body().body).expect("JSON");
    assert_eq!(v["model"], "m\"x");
    assert_eq!(v["input"].as_array().map(Vec::len), Some(1));
}

#[test]
fn zipf_makes_a_few_texts_hot() {
    let spec = WorkloadSpec::parse("zipf:100:1.1").expect("parses");
    let mut w = Workload::new(&spec, &corpus(), Api::Tei, None, 3).expect("builds");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..5000 {
        for t in texts_of(&w.next_body().body, Api::Tei) {
            *counts.entry(t).or_default() += 1;
        }
    }
    assert!(counts.len() <= 100);
    let mut c: Vec<usize> = counts.into_values().collect();
    c.sort_unstable_by(|a, b| b.cmp(a));
    // Rank 1 of Zipf(1.1, 100) has probability about 0.2: far above uniform's 0.01.
    assert!(c[0] > 500, "hottest text seen {} times", c[0]);
    assert!(c[0] > 5 * c[c.len() / 2]);
}

#[test]
fn mixes_follow_their_weights() {
    let spec = WorkloadSpec::parse("unique@9,batch:10@1").expect("parses");
    let mut w = Workload::new(&spec, &corpus(), Api::Tei, None, 4).expect("builds");
    let batches = (0..2000).filter(|_| w.next_body().items == 10).count();
    assert!(
        (100..320).contains(&batches),
        "batch-10 share {batches}/2000"
    );
}

#[test]
fn generated_lengths_follow_the_distribution() {
    let spec = WorkloadSpec::parse("gen:3-5").expect("parses");
    let mut w = Workload::new(&spec, &corpus(), Api::Tei, None, 5).expect("builds");
    for _ in 0..200 {
        let t = texts_of(&w.next_body().body, Api::Tei).remove(0);
        // Words plus the unique suffix.
        let words = t.split(' ').count() - 1;
        assert!((3..=5).contains(&words), "{t}");
    }
}

#[test]
fn files_cycle_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.txt");
    std::fs::write(&path, "a\nb\nc\n").expect("write");
    let spec = WorkloadSpec::parse(&format!("file:{}+batch:2", path.display())).expect("parses");
    let mut w = Workload::new(&spec, &corpus(), Api::Tei, None, 6).expect("builds");
    let all: Vec<String> = (0..3)
        .flat_map(|_| texts_of(&w.next_body().body, Api::Tei))
        .collect();
    assert_eq!(all, vec!["a", "b", "c", "a", "b", "c"]);
}
