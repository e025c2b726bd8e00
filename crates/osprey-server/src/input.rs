//! Reading request bodies: content type, the size of the body as sent and once
//! decompressed, then the parsing and limits of `osprey-wire`.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde::de;

use osprey_engine::Text;

use crate::{ApiError, AppState, ServerConfig};

/// Checks the content type, reads the body within the size limit, decompresses it
/// within its own limit and parses it. For bodies of texts: their lists may hold
/// about as many items as `server.max_inputs` allows (pairs count three: the pair
/// and its two texts), refused before anything is built from them.
pub async fn read_json<T: de::DeserializeOwned + Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let items = state.config.max_inputs.saturating_mul(3).saturating_add(16);
    read_json_within(
        state,
        headers,
        body,
        Some(items),
        state.config.max_body_bytes,
    )
    .await
}

/// [`read_json`] for bodies of numbers (KServe v2 tensors), whose lists are
/// bounded by the body's size alone.
pub async fn read_tensor_json<T: de::DeserializeOwned + Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    read_json_within(state, headers, body, None, state.config.max_body_bytes).await
}

/// [`read_tensor_json`] with a body limit of its own: collection writes carry up
/// to thousands of vectors per request.
pub async fn read_json_up_to<T: de::DeserializeOwned + Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    read_json_within(state, headers, body, None, limit).await
}

async fn read_json_within<T: de::DeserializeOwned + Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    max_items: Option<usize>,
    limit: usize,
) -> Result<T, ApiError> {
    check_content_type(headers)?;
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
    let bytes_len = bytes.len();
    let encoding = match headers.get(header::CONTENT_ENCODING) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::UnsupportedEncoding("(not text)".into()))?
                .to_owned(),
        ),
    };
    let limits = osprey_wire::BodyLimits {
        max_decoded: state.protection.load().limits().max_decompressed_bytes,
        max_items,
    };
    let decode = move || -> Result<T, ApiError> {
        Ok(osprey_wire::parse_body(
            encoding.as_deref(),
            &bytes,
            limits,
        )?)
    };
    // A small plain body parses in microseconds; a compressed or large one can take
    // milliseconds of CPU, which belong on the blocking pool, not a runtime worker.
    if headers.contains_key(header::CONTENT_ENCODING) || bytes_len > INLINE_PARSE_BYTES {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|_| ApiError::MalformedJson("the body could not be decoded".into()))?
    } else {
        decode()
    }
}

/// Bodies up to this size are decoded on the calling task.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

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
    Ok(osprey_wire::check_inputs(limits(config), inputs)?)
}

/// The same limits for classifier and cross-encoder items (a pair is one item).
pub fn check_items(config: &ServerConfig, items: &[Text]) -> Result<(), ApiError> {
    let texts = items.iter().enumerate().flat_map(|(i, item)| match item {
        Text::One(t) => [Some((i, t.as_str())), None],
        Text::Pair(a, b) => [Some((i, a.as_str())), Some((i, b.as_str()))],
    });
    Ok(osprey_wire::check_texts(
        limits(config),
        items.len(),
        texts.flatten(),
    )?)
}

fn limits(config: &ServerConfig) -> osprey_wire::InputLimits {
    osprey_wire::InputLimits {
        max_inputs: config.max_inputs,
        max_input_chars: config.max_input_chars,
    }
}
