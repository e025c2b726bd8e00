//! Payload filters of the collections routes (Qdrant's filter JSON): parsing any
//! bytes must not panic, and a filter that parses must serialize to a filter that
//! parses again with the same shape (numbers may move by the last bit: serde_json
//! reads floats fast rather than exactly).
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_collections::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = Filter::from_json(text) {
        let again = serde_json::to_string(&filter).expect("a parsed filter serializes");
        let back = Filter::from_json(&again).expect("a serialized filter parses");
        let shape = |f: &Filter| serde_json::to_string(f).map(|s| s.len()).unwrap_or(0);
        assert_eq!(
            (back.must.as_ref().map(Vec::len), back.should.as_ref().map(Vec::len)),
            (filter.must.as_ref().map(Vec::len), filter.should.as_ref().map(Vec::len)),
            "{again}"
        );
        assert!(shape(&back) > 0);
    }
});
