//! The bodies of the classification, reranking, tokenization and KServe v2 routes:
//! JSON with the depth limit, each request shape, then the input limits over
//! texts and text pairs. Nothing may panic, and whatever is accepted must respect
//! the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_wire::{
    CohereRerankRequest, InferRequest, InputLimits, PredictRequest, RerankRequest, Sequence,
    TokenizeRequest, check_inputs, check_texts, parse_json,
};

const LIMITS: InputLimits = InputLimits {
    max_inputs: 8,
    max_input_chars: 64,
};

fn within(count: usize, texts: &[&str]) {
    assert!(count >= 1 && count <= LIMITS.max_inputs);
    assert!(texts.iter().all(|t| t.chars().count() <= LIMITS.max_input_chars));
}

fn strings(texts: &[String]) {
    if check_inputs(LIMITS, texts).is_ok() {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        within(texts.len(), &refs);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_json::<PredictRequest>(data) {
        let (items, single) = req.inputs.into_items();
        assert!(!single || items.len() == 1);
        let texts: Vec<(usize, &str)> = items
            .iter()
            .enumerate()
            .flat_map(|(i, s)| match s {
                Sequence::One(t) => vec![(i, t.as_str())],
                Sequence::Pair(a, b) => vec![(i, a.as_str()), (i, b.as_str())],
            })
            .collect();
        if check_texts(LIMITS, items.len(), texts.iter().copied()).is_ok() {
            let refs: Vec<&str> = texts.iter().map(|(_, t)| *t).collect();
            within(items.len(), &refs);
        }
    }
    if let Ok(req) = parse_json::<RerankRequest>(data) {
        strings(&req.texts);
    }
    if let Ok(req) = parse_json::<CohereRerankRequest>(data) {
        let docs: Vec<String> = req.documents.into_iter().map(|d| d.into_text()).collect();
        strings(&docs);
    }
    if let Ok(req) = parse_json::<TokenizeRequest>(data) {
        strings(&req.inputs.0);
    }
    if let Ok(req) = parse_json::<InferRequest>(data) {
        for input in &req.inputs {
            let _ = (input.name.len(), input.shape.len(), input.datatype.len());
        }
    }
});
