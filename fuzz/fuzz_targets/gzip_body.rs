//! Gzip request bodies: any stream, valid or not, decodes within the cap or is
//! refused; a valid stream round-trips.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use osprey_wire::{WireError, decode_body};

const CAP: usize = 4096;

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
});
