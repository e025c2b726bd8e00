//! A request body as the server reads it: optional gzip, JSON with the depth limit,
//! both request shapes, then the input limits. Nothing may panic, and whatever is
//! accepted must respect the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_wire::{
    EmbedRequest, EmbeddingsRequest, InputLimits, MAX_JSON_DEPTH, WireError, check_inputs,
    decode_body, json_depth, parse_json,
};

const LIMITS: InputLimits = InputLimits {
    max_inputs: 8,
    max_input_chars: 64,
};

fn check(inputs: &[String]) {
    if check_inputs(LIMITS, inputs).is_ok() {
        assert!(!inputs.is_empty() && inputs.len() <= LIMITS.max_inputs);
        assert!(inputs.iter().all(|t| t.chars().count() <= LIMITS.max_input_chars));
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the content encoding, so both paths are explored.
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = match selector % 3 {
        0 => None,
        1 => Some("gzip"),
        _ => Some("identity"),
    };
    let json = match decode_body(encoding, body, 1 << 20) {
        Ok(json) => json,
        Err(WireError::TooLarge(_) | WireError::BadEncoding(_)) => return,
        Err(e) => panic!("unexpected decoding error: {e}"),
    };
    assert!(json.len() <= 1 << 20);
    if let Ok(req) = parse_json::<EmbedRequest>(&json) {
        assert!(json_depth(&json) <= MAX_JSON_DEPTH);
        check(&req.inputs.0);
    }
    if let Ok(req) = parse_json::<EmbeddingsRequest>(&json) {
        check(&req.input.0);
    }
});
