//! JSON syntax (400) versus JSON values of the wrong shape (422), with a nesting
//! limit checked before serde sees the bytes.

use serde::de::{self, DeserializeOwned};

use crate::WireError;

/// Deepest nesting of arrays and objects accepted anywhere in a body. Requests are
/// flat; deeper bodies are refused before parsing, so ignored fields cannot hide
/// pathological nesting either.
pub const MAX_JSON_DEPTH: usize = 32;

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let depth = json_depth(bytes);
    if depth > MAX_JSON_DEPTH {
        return Err(WireError::MalformedJson(format!(
            "JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    // Serde would also take a struct from an array of its fields in order.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<de::IgnoredAny>(bytes) {
            Ok(_) => Err(WireError::Invalid(
                "the request body must be a JSON object".into(),
            )),
            Err(e) => Err(WireError::MalformedJson(e.to_string())),
        };
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => WireError::Invalid(e.to_string()),
        _ => WireError::MalformedJson(e.to_string()),
    })
}

/// Maximum nesting depth of arrays and objects, skipping string contents.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
