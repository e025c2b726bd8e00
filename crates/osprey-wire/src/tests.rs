use std::io::Write;

use super::*;

fn parse(s: &str) -> Result<EmbedRequest, WireError> {
    parse_json(s.as_bytes())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("compress");
    enc.finish().expect("compress")
}

#[test]
fn one_string_or_many() {
    assert_eq!(parse(r#"{"inputs":"a"}"#).expect("ok").inputs.0, vec!["a"]);
    assert_eq!(
        parse(r#"{"inputs":["a","b"]}"#).expect("ok").inputs.0,
        vec!["a", "b"]
    );
}

#[test]
fn syntax_errors_are_malformed_and_wrong_types_invalid() {
    let malformed = |s: &str| matches!(parse(s), Err(WireError::MalformedJson(_)));
    let invalid = |s: &str| matches!(parse(s), Err(WireError::Invalid(_)));
    assert!(malformed(r#"{"inputs":"#));
    assert!(invalid(r#"{"inputs":[1]}"#));
    assert!(invalid(r#"{"inputs":{}}"#));
    assert!(invalid(r#"{"nothing":1}"#));
    assert!(invalid(r#"{"inputs":"a","inputs":"b"}"#), "duplicate keys");
    assert!(
        invalid(r#"{"inputs":"a","normalize":1e999999}"#)
            || malformed(r#"{"inputs":"a","normalize":1e999999}"#)
    );
    assert!(invalid(r#"["a"]"#), "a top-level array is not a request");
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    assert!(malformed(&format!(r#"{{"inputs":{deep}}}"#)));
}

#[test]
fn depth_skips_strings() {
    assert_eq!(json_depth(br#"{"a":"[[[[{{{{"}"#), 1);
    assert_eq!(json_depth(br#"{"a":"\"[[["}"#), 1);
    assert_eq!(json_depth(br#"[[[]]]"#), 3);
    // Unbalanced closers never underflow.
    assert_eq!(json_depth(b"]]]]["), 1);
}

#[test]
fn limits() {
    let limits = InputLimits {
        max_inputs: 2,
        max_input_chars: 3,
    };
    assert!(matches!(
        check_inputs(limits, &[]),
        Err(WireError::Invalid(_))
    ));
    let three = vec!["a".to_string(); 3];
    assert!(matches!(
        check_inputs(limits, &three),
        Err(WireError::TooLarge(_))
    ));
    assert!(matches!(
        check_inputs(limits, &["abcd".into()]),
        Err(WireError::TooLarge(_))
    ));
    // Four bytes, one character: within the limit.
    check_inputs(limits, &["é€".into()]).expect("chars, not bytes");
}

#[test]
fn identity_and_gzip_bodies() {
    let body = br#"{"inputs":"a"}"#;
    assert_eq!(&*decode_body(None, body, 10).expect("identity"), body);
    assert_eq!(
        &*decode_body(Some("identity"), body, 10).expect("identity"),
        body
    );
    let packed = gzip(body);
    assert_eq!(
        &*decode_body(Some("gzip"), &packed, body.len()).expect("at the cap"),
        body
    );
    assert_eq!(
        &*decode_body(Some(" GZIP "), &packed, 100).expect("case"),
        body
    );
}

#[test]
fn gzip_bombs_stop_at_the_cap() {
    // 64 MiB of zeros packs into about 64 KiB; decoding stops one byte past the cap.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let err = decode_body(Some("gzip"), &bomb, 1 << 20).expect_err("over the cap");
    assert!(matches!(err, WireError::TooLarge(_)), "{err}");
}

#[test]
fn bad_encodings() {
    assert!(matches!(
        decode_body(Some("br"), b"x", 10),
        Err(WireError::UnsupportedEncoding(_))
    ));
    assert!(matches!(
        decode_body(Some("gzip, gzip"), b"x", 10),
        Err(WireError::UnsupportedEncoding(_))
    ));
    assert!(matches!(
        decode_body(Some("gzip"), b"not gzip at all", 10),
        Err(WireError::BadEncoding(_))
    ));
    let packed = gzip(b"0123456789");
    assert!(matches!(
        decode_body(Some("gzip"), &packed[..packed.len() / 2], 100),
        Err(WireError::BadEncoding(_))
    ));
}

#[test]
fn openai_shape() {
    let r: EmbeddingsRequest =
        parse_json(br#"{"input":["a"],"encoding_format":"base64","dimensions":8}"#).expect("ok");
    assert_eq!(r.encoding_format, EncodingFormat::Base64);
    assert_eq!(r.dimensions, Some(8));
    assert!(r.truncate);
    assert!(matches!(
        parse_json::<EmbeddingsRequest>(br#"{"input":"a","encoding_format":"hex"}"#),
        Err(WireError::Invalid(_))
    ));
    assert!(matches!(
        parse_json::<EmbeddingsRequest>(br#"{"input":"a","dimensions":1e400}"#),
        Err(WireError::Invalid(_) | WireError::MalformedJson(_))
    ));
}
