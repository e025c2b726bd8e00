//! Request bodies as they arrive, before any server type sees them: content
//! decoding with a cap on the decoded size, JSON parsing with a depth limit, the
//! request shapes of the embedding routes, and the limits on their inputs.
//!
//! Pure functions over bytes with no I/O, so the fuzz targets build this crate
//! alone instead of the server and its model backends.

#![forbid(unsafe_code)]

mod body;
mod decode;
mod error;
mod inputs;
mod json;
mod requests;
mod scoring;
mod shape;
mod v2;

pub use body::{BodyLimits, parse_body};
pub use decode::decode_body;
pub use error::WireError;
pub use inputs::{InputLimits, Inputs, check_inputs, check_texts};
pub use json::{MAX_JSON_DEPTH, parse_json};
pub use requests::{EmbedRequest, EmbeddingsRequest, EncodingFormat, yes};
pub use scoring::{
    CohereRerankRequest, Document, PredictInputs, PredictRequest, RerankRequest, Sequence,
    TokenizeRequest,
};
pub use shape::{ShapeScanner, json_depth};
pub use v2::{InferInput, InferRequest, RequestedOutput};

#[cfg(test)]
mod tests;
