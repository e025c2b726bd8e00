//! Gzip request bodies: any stream, valid or not, decodes within the cap or is
//! refused; a valid stream round-trips; parsed while decompressed, a body is
//! accepted exactly when its plain bytes are, and parses to the same value.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use osprey_wire::{BodyLimits, WireError, decode_body, parse_body};

const CAP: usize = 4096;
const LIMITS: BodyLimits = BodyLimits {
    max_decoded: CAP,
    max_items: Some(64),
};

fuzz_target!(|data: &[u8]| {
    match decode_body(Some("gzip"), data, CAP) {
        Ok(out) => assert!(out.len() <= CAP),
        Err(WireError::TooLarge(_) | WireError::BadEncoding(_)) => {}
        Err(e) => panic!("unexpected error: {e}"),
    }
    // Compressed by us, the same bytes must come back unless over the cap.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if enc.write_all(data).is_err() {
        return;
    }
    let Ok(packed) = enc.finish() else { return };
    match decode_body(Some("gzip"), &packed, CAP) {
        Ok(out) => assert_eq!(&*out, data),
        Err(WireError::TooLarge(_)) => assert!(data.len() > CAP),
        Err(e) => panic!("our own gzip refused: {e}"),
    }
    if data.len() <= CAP {
        let plain = parse_body::<serde_json::Value>(None, data, LIMITS);
        let streamed = parse_body::<serde_json::Value>(Some("gzip"), &packed, LIMITS);
        match (plain, streamed) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("plain {a:?} but parsed while decompressed {b:?}"),
        }
    }
});
