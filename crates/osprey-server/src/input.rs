//! Reading and validating request bodies: content type, size, JSON syntax (400) vs
//! JSON values of the wrong shape (422), and the limits on inputs.

use std::fmt;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use crate::{ApiError, ServerConfig};

/// `"text"` or `["text", ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs(pub Vec<String>);

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Inputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Inputs, E> {
                Ok(Inputs(vec![s.to_owned()]))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Inputs, E> {
                Ok(Inputs(vec![s]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inputs, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(s) = seq.next_element::<ItemString>()? {
                    out.push(s.0);
                }
                Ok(Inputs(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One array element, with an error that names what was expected.
struct ItemString(String);

impl<'de> Deserialize<'de> for ItemString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ItemString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("every input to be a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ItemString, E> {
                Ok(ItemString(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<ItemString, E> {
                Ok(ItemString(s))
            }
        }
        d.deserialize_string(V)
    }
}

/// Serde default for flags that are on unless a request turns them off.
pub fn yes() -> bool {
    true
}

/// Checks the content type, reads the body within the size limit and parses it.
pub async fn read_json<T: de::DeserializeOwned>(
    config: &ServerConfig,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    check_content_type(headers)?;
    let limit = config.max_body_bytes;
    let too_large = || ApiError::TooLarge(format!("request body is larger than {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::MalformedJson(format!("could not read the request body: {e}"))
        }
    })?;
    parse_json(&bytes)
}

/// Deepest nesting of arrays and objects accepted anywhere in a body. Requests are
/// flat; deeper bodies are refused before parsing, so ignored fields cannot hide
/// pathological nesting either.
pub const MAX_JSON_DEPTH: usize = 32;

pub fn parse_json<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let depth = json_depth(bytes);
    if depth > MAX_JSON_DEPTH {
        return Err(ApiError::MalformedJson(format!(
            "JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    // Serde would also take a struct from an array of its fields in order.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::Invalid(
                "the request body must be a JSON object".into(),
            )),
            Err(e) => Err(ApiError::MalformedJson(e.to_string())),
        };
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Invalid(e.to_string()),
        _ => ApiError::MalformedJson(e.to_string()),
    })
}

/// Maximum nesting depth of arrays and objects, skipping string contents.
fn json_depth(bytes: &[u8]) -> usize {
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

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType("(none)".into()));
    };
    let text = value.to_str().unwrap_or("(not text)");
    let mime = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(text.to_owned()))
    }
}

/// The limits every embedding route applies to its inputs.
pub fn check_inputs(config: &ServerConfig, inputs: &[String]) -> Result<(), ApiError> {
    if inputs.is_empty() {
        return Err(ApiError::Invalid("inputs must not be empty".into()));
    }
    if inputs.len() > config.max_inputs {
        return Err(ApiError::TooLarge(format!(
            "{} inputs in one request, more than the maximum of {}",
            inputs.len(),
            config.max_inputs
        )));
    }
    for (i, text) in inputs.iter().enumerate() {
        // Bytes bound characters from above, so the count is only needed near the limit.
        if text.len() > config.max_input_chars {
            let chars = text.chars().count();
            if chars > config.max_input_chars {
                return Err(ApiError::TooLarge(format!(
                    "input {i} has {chars} characters, more than the maximum of {}",
                    config.max_input_chars
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
