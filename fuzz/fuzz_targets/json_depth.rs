//! The depth scanner that guards the parser against deep nesting must agree with
//! the real nesting of every document serde_json accepts.
#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The nesting depth of a document as serde_json walks it (duplicate keys and all).
struct Depth(usize);

impl<'de> Deserialize<'de> for Depth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Depth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_unit<E>(self) -> Result<Depth, E> {
                Ok(Depth(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Depth, A::Error> {
                let mut max = 0;
                while let Some(Depth(d)) = seq.next_element()? {
                    max = max.max(d);
                }
                Ok(Depth(max + 1))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Depth, A::Error> {
                let mut max = 0;
                while let Some((IgnoredAny, Depth(d))) = map.next_entry()? {
                    max = max.max(d);
                }
                Ok(Depth(max + 1))
            }
        }
        d.deserialize_any(V)
    }
}

fuzz_target!(|data: &[u8]| {
    let scanned = osprey_wire::json_depth(data);
    if let Ok(Depth(real)) = serde_json::from_slice::<Depth>(data) {
        assert_eq!(scanned, real, "{:?}", String::from_utf8_lossy(data));
    }
});
