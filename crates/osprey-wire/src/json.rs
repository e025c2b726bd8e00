//! JSON syntax (400) versus JSON values of the wrong shape (422), with a nesting
//! limit checked before serde sees the bytes.

use serde::de::{self, DeserializeOwned};

use crate::WireError;
use crate::shape::ShapeScanner;

/// Deepest nesting of arrays and objects accepted anywhere in a body. Requests are
/// flat; deeper bodies are refused before parsing, so ignored fields cannot hide
/// pathological nesting either.
pub const MAX_JSON_DEPTH: usize = 32;

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let mut shape = ShapeScanner::default();
    shape.feed(bytes);
    if let Some(refused) = refusal(&shape, None) {
        return Err(refused);
    }
    from_json_slice(bytes)
}

/// Why a body of this shape is refused before parsing, if it is.
pub(crate) fn refusal(shape: &ShapeScanner, max_items: Option<usize>) -> Option<WireError> {
    if shape.max_depth() > MAX_JSON_DEPTH {
        return Some(WireError::MalformedJson(format!(
            "JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    match max_items {
        Some(max) if shape.items() > max => Some(WireError::TooLarge(format!(
            "the request body holds more than {max} list items"
        ))),
        _ => None,
    }
}

/// Parses a body whose shape passed [`refusal`].
pub(crate) fn from_json_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
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
