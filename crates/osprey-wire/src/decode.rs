//! `Content-Encoding` of request bodies: identity or gzip, decoded within a cap so a
//! small compressed body cannot expand into unbounded memory.

use std::borrow::Cow;
use std::io::Read;

use crate::WireError;

/// The body as JSON bytes. `encoding` is the `Content-Encoding` header, if any;
/// gzip bodies are decompressed and refused once they pass `max_decoded` bytes.
pub fn decode_body<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
    max_decoded: usize,
) -> Result<Cow<'a, [u8]>, WireError> {
    if coding(encoding)? == Coding::Identity {
        return Ok(Cow::Borrowed(body));
    }
    let cap = u64::try_from(max_decoded).unwrap_or(u64::MAX);
    // Read one byte past the cap to tell "exactly at the cap" from "over it".
    let mut reader = flate2::read::GzDecoder::new(body).take(cap.saturating_add(1));
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max_decoded));
    reader
        .read_to_end(&mut out)
        .map_err(|e| WireError::BadEncoding(e.to_string()))?;
    if out.len() > max_decoded {
        return Err(WireError::TooLarge(format!(
            "the decompressed request body is larger than {max_decoded} bytes"
        )));
    }
    Ok(Cow::Owned(out))
}

/// The content codings a request body may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Identity,
    Gzip,
}

/// The coding a `Content-Encoding` value names; 415 material otherwise.
pub(crate) fn coding(encoding: Option<&str>) -> Result<Coding, WireError> {
    let encoding = encoding.map(str::trim).unwrap_or("");
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        Ok(Coding::Identity)
    } else if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
        Ok(Coding::Gzip)
    } else {
        Err(WireError::UnsupportedEncoding(
            encoding.chars().take(64).collect(),
        ))
    }
}
