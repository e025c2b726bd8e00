//! A request body from bytes as sent to a parsed request, within limits checked
//! before serde allocates: decoded size, nesting depth and list items. A gzip body
//! is decompressed as it is parsed, so a small one that expands into millions of
//! items is refused after reading only as far as the limits.

use std::io::{self, BufReader, Read};

use serde::de::DeserializeOwned;

use crate::WireError;
use crate::decode::{Coding, coding};
use crate::json::{from_json_slice, refusal};
use crate::shape::ShapeScanner;

/// What a request body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Bytes once decompressed.
    pub max_decoded: usize,
    /// Elements of all its lists together; `None`: no limit beyond the size.
    pub max_items: Option<usize>,
}

/// Parses a body sent with `Content-Encoding: encoding` (none, identity or gzip).
pub fn parse_body<T: DeserializeOwned>(
    encoding: Option<&str>,
    body: &[u8],
    limits: BodyLimits,
) -> Result<T, WireError> {
    match coding(encoding)? {
        Coding::Identity => {
            let mut shape = ShapeScanner::default();
            shape.feed(body);
            if let Some(refused) = refusal(&shape, limits.max_items) {
                return Err(refused);
            }
            from_json_slice(body)
        }
        Coding::Gzip => parse_gzip(body, limits),
    }
}

fn parse_gzip<T: DeserializeOwned>(body: &[u8], limits: BodyLimits) -> Result<T, WireError> {
    let cap = u64::try_from(limits.max_decoded).unwrap_or(u64::MAX);
    let guarded = Guarded {
        // One byte past the cap tells "exactly at the cap" from "over it".
        inner: flate2::read::GzDecoder::new(body).take(cap.saturating_add(1)),
        limits,
        decoded: 0,
        shape: ShapeScanner::default(),
        refused: None,
    };
    // serde_json reads byte by byte: through a buffer, not from the decompressor.
    let mut reader = BufReader::with_capacity(64 * 1024, guarded);
    let parsed = serde_json::from_reader::<_, T>(&mut reader);
    // What the limits refused comes first: serde only saw the read fail.
    let guarded = reader.get_mut();
    if let Some(refused) = guarded.refused.take() {
        return Err(refused);
    }
    match parsed {
        Ok(v) => {
            if guarded.shape.first() == Some(b'{') {
                Ok(v)
            } else {
                Err(WireError::Invalid(
                    "the request body must be a JSON object".into(),
                ))
            }
        }
        Err(e) if e.is_io() => Err(WireError::BadEncoding(e.to_string())),
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            Err(WireError::Invalid(e.to_string()))
        }
        Err(e) => Err(WireError::MalformedJson(e.to_string())),
    }
}

/// The decompressed stream, measured as it passes.
struct Guarded<R> {
    inner: R,
    limits: BodyLimits,
    decoded: usize,
    shape: ShapeScanner,
    refused: Option<WireError>,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.refused.is_some() {
            return Err(io::Error::other("request body refused"));
        }
        let n = self.inner.read(buf)?;
        self.decoded = self.decoded.saturating_add(n);
        self.shape.feed(&buf[..n]);
        self.refused = if self.decoded > self.limits.max_decoded {
            Some(WireError::TooLarge(format!(
                "the decompressed request body is larger than {} bytes",
                self.limits.max_decoded
            )))
        } else if self.shape.first().is_some_and(|b| b != b'{') {
            Some(WireError::Invalid(
                "the request body must be a JSON object".into(),
            ))
        } else {
            refusal(&self.shape, self.limits.max_items)
        };
        match self.refused {
            Some(_) => Err(io::Error::other("request body refused")),
            None => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).expect("compress");
        e.finish().expect("compress")
    }

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        inputs: Vec<String>,
    }

    const LIMITS: BodyLimits = BodyLimits {
        max_decoded: 16 << 20,
        max_items: Some(100),
    };

    #[test]
    fn a_gzip_bomb_of_empty_items_is_refused_for_its_items() {
        let bomb = format!("{{\"inputs\": [{}\"\"]}}", "\"\",".repeat(3_000_000));
        let sent = gzip(bomb.as_bytes());
        assert!(sent.len() < 64 * 1024, "{} bytes sent", sent.len());
        let got = parse_body::<Body>(Some("gzip"), &sent, LIMITS);
        assert!(
            matches!(&got, Err(WireError::TooLarge(m)) if m.contains("100 list items")),
            "{got:?}"
        );
        let plain = parse_body::<Body>(None, bomb.as_bytes(), LIMITS);
        assert!(matches!(plain, Err(WireError::TooLarge(_))), "{plain:?}");
    }

    #[test]
    fn gzip_and_plain_bodies_parse_alike() {
        let text = br#"{"inputs": ["a", "b"]}"#;
        for (enc, bytes) in [(Some("gzip"), gzip(text)), (None, text.to_vec())] {
            let got = parse_body::<Body>(enc, &bytes, LIMITS).map(|b| b.inputs);
            assert_eq!(got, Ok(vec!["a".to_owned(), "b".to_owned()]));
        }
        for bad in [&br#"["a"]"#[..], b"{\"inputs\": [", b"{\"inputs\": 3}"] {
            let plain = parse_body::<Body>(None, bad, LIMITS).map(|_| ());
            let zipped = parse_body::<Body>(Some("gzip"), &gzip(bad), LIMITS).map(|_| ());
            assert_eq!(
                std::mem::discriminant(&plain.unwrap_err()),
                std::mem::discriminant(&zipped.unwrap_err()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{{\"inputs\": {}{}}}", "[".repeat(40), "]".repeat(40));
        let zipped = parse_body::<Body>(Some("gzip"), &gzip(deep.as_bytes()), LIMITS);
        assert!(matches!(zipped, Err(WireError::MalformedJson(_))));
        let over = parse_body::<Body>(
            Some("gzip"),
            &gzip(&[b' '; 2048]),
            BodyLimits {
                max_decoded: 1024,
                max_items: None,
            },
        );
        assert!(matches!(over, Err(WireError::TooLarge(_))));
        let broken = parse_body::<Body>(Some("gzip"), b"not gzip", LIMITS);
        assert!(
            matches!(broken, Err(WireError::BadEncoding(_))),
            "{broken:?}"
        );
    }
}
