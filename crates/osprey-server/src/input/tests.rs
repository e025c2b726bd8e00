use super::*;

#[derive(Debug, serde::Deserialize)]
struct Req {
    inputs: Inputs,
}

fn parse(s: &str) -> Result<Req, ApiError> {
    parse_json(s.as_bytes())
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
fn syntax_errors_are_400_and_wrong_types_422() {
    assert_eq!(parse(r#"{"inputs":"#).expect_err("eof").status(), 400);
    assert_eq!(parse(r#"{"inputs":[1]}"#).expect_err("type").status(), 422);
    assert_eq!(parse(r#"{"inputs":{}}"#).expect_err("type").status(), 422);
    assert_eq!(
        parse(r#"{"nothing":1}"#).expect_err("missing").status(),
        422
    );
    assert_eq!(
        parse(r#"{"inputs":"a","inputs":"b"}"#)
            .expect_err("duplicate")
            .status(),
        422
    );
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    assert_eq!(
        parse(&format!(r#"{{"inputs":{deep}}}"#))
            .expect_err("deep")
            .status(),
        400
    );
}

#[test]
fn limits() {
    let cfg = ServerConfig {
        max_inputs: 2,
        max_input_chars: 3,
        ..ServerConfig::default()
    };
    assert_eq!(check_inputs(&cfg, &[]).expect_err("empty").status(), 422);
    let three = vec!["a".to_string(); 3];
    assert_eq!(check_inputs(&cfg, &three).expect_err("count").status(), 413);
    assert_eq!(
        check_inputs(&cfg, &["abcd".into()])
            .expect_err("chars")
            .status(),
        413
    );
    // Four bytes, one character: within the limit.
    check_inputs(&cfg, &["é€".into()]).expect("chars, not bytes");
}
