use super::*;

#[test]
fn defaults_serve() {
    let c =
        Config::load(&ConfigArgs::default(), &ModelArgs::default(), Vec::new()).expect("defaults");
    assert_eq!(c.server.port, 8080);
    assert_eq!(c.server.host, "127.0.0.1");
    assert_eq!(c.model.backend, BackendKind::Candle);
}

#[test]
fn file_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("osprey.toml");
    std::fs::write(
        &file,
        "[server]\nport = 9000\nhost = \"0.0.0.0\"\n[batching]\nmax_batch_tokens = 1000\n",
    )
    .expect("write");
    let args = ConfigArgs { config: Some(file) };
    let c = Config::load(
        &args,
        &ModelArgs::default(),
        vec![("server.port", 9100u16.into())],
    )
    .expect("load");
    assert_eq!(c.server.host, "0.0.0.0");
    assert_eq!(c.server.port, 9100, "flag beats file");
    assert_eq!(c.batching.max_batch_tokens, 1000);
}

#[test]
fn typos_and_bad_values_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nprot = 1\n").expect("write");
    let err = Config::load(
        &ConfigArgs {
            config: Some(file.clone()),
        },
        &ModelArgs::default(),
        Vec::new(),
    )
    .expect_err("unknown key");
    assert!(format!("{err:#}").contains("prot"), "{err:#}");
    std::fs::write(&file, "[batching]\nreplicas = 0\n").expect("write");
    let err = Config::load(
        &ConfigArgs { config: Some(file) },
        &ModelArgs::default(),
        Vec::new(),
    )
    .expect_err("zero");
    assert!(format!("{err:#}").contains("replicas"), "{err:#}");
    let missing = ConfigArgs {
        config: Some(dir.path().join("none.toml")),
    };
    assert!(Config::load(&missing, &ModelArgs::default(), Vec::new()).is_err());
}

#[test]
fn example_file_is_valid_and_matches_defaults() {
    let file =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../osprey.example.toml");
    let c = Config::load(
        &ConfigArgs { config: Some(file) },
        &ModelArgs::default(),
        Vec::new(),
    )
    .expect("example");
    assert_eq!(c, Config::default());
}

#[test]
fn urls_lose_their_passwords() {
    let cases = [
        (
            "redis://:s3cret@127.0.0.1:6379/0",
            "redis://:***@127.0.0.1:6379/0",
        ),
        (
            "redis://user:s3cret@cache:6379",
            "redis://user:***@cache:6379",
        ),
        ("redis://user@cache", "redis://user:***@cache"),
        (
            "https://u:p%40ss@hooks.example/x?y=1",
            "https://u:***@hooks.example/x?y=1",
        ),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("https://hooks.example/a@b", "https://hooks.example/a@b"),
        ("not a url", "not a url"),
        // Unparsable with an `@`: it may hold a secret, so none of it is shown.
        ("s3cret@host", "***"),
        ("http://us er:s3cret@[bad/", "***"),
    ];
    for (raw, want) in cases {
        assert_eq!(redact_url(raw), want, "{raw}");
    }
}
