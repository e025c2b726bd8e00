//! The texts of a request (`"text"` or `["text", ...]`) and the limits on them.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use crate::WireError;

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

/// How many inputs a request may carry and how long each may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    pub max_inputs: usize,
    /// In characters, before tokenization.
    pub max_input_chars: usize,
}

/// The limits every embedding route applies to its inputs.
pub fn check_inputs(limits: InputLimits, inputs: &[String]) -> Result<(), WireError> {
    check_texts(
        limits,
        inputs.len(),
        inputs.iter().enumerate().map(|(i, t)| (i, t.as_str())),
    )
}

/// The same limits for `count` items made of `texts`, each text given with the
/// index of its item (a text pair is one item of two texts).
pub fn check_texts<'a>(
    limits: InputLimits,
    count: usize,
    texts: impl Iterator<Item = (usize, &'a str)>,
) -> Result<(), WireError> {
    if count == 0 {
        return Err(WireError::Invalid("inputs must not be empty".into()));
    }
    if count > limits.max_inputs {
        return Err(WireError::TooLarge(format!(
            "{count} inputs in one request, more than the maximum of {}",
            limits.max_inputs
        )));
    }
    for (i, text) in texts {
        // Bytes bound characters from above, so the count is only needed near the limit.
        if text.len() > limits.max_input_chars {
            let chars = text.chars().count();
            if chars > limits.max_input_chars {
                return Err(WireError::TooLarge(format!(
                    "input {i} has {chars} characters, more than the maximum of {}",
                    limits.max_input_chars
                )));
            }
        }
    }
    Ok(())
}
