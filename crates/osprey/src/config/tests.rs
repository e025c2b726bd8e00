use super::*;

#[test]
fn defaults_serve() {
    let c =
        Config::load(&ConfigArgs::default(), &ModelArgs::default(), Vec::new()).expect("defaults");
    assert_eq!(c.server.port, 8080);
    assert_eq!(c.server.host, "127.0.0.1");
    assert_eq!(c.model.backend, BackendKind::Onnx);
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
    std::fs::write(&file, "[batching]\nmax_batch_requests = 0\n").expect("write");
    let err = Config::load(
        &ConfigArgs { config: Some(file) },
        &ModelArgs::default(),
        Vec::new(),
    )
    .expect_err("zero");
    assert!(format!("{err:#}").contains("max_batch_requests"), "{err:#}");
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
fn urls_lose_every_credential() {
    let cases = [
        // Redis: user and password, whatever they hold.
        (
            "redis://:s3cret@127.0.0.1:6379/0",
            "redis://:***@127.0.0.1:6379/0",
        ),
        (
            "redis://user:s3cret@cache:6379",
            "redis://***:***@cache:6379",
        ),
        ("redis://user@cache", "redis://***@cache"),
        ("rediss://user:pass@host", "rediss://***:***@host"),
        (
            "rediss://user:pass@host:6380/3#insecure",
            "rediss://***:***@host:6380/3#insecure",
        ),
        ("valkey://default:s3cret@host/1", "valkey://***:***@host/1"),
        // An `@` inside the password: split at the last one, as the client does.
        (
            "redis://user:p@ss@cache:6379/2",
            "redis://***:***@cache:6379/2",
        ),
        ("redis://:@@@@cache", "redis://:***@cache"),
        ("redis://user:p%40ss@cache", "redis://***:***@cache"),
        // IPv6 hosts stay readable.
        ("redis://:s3cret@[::1]:6379/1", "redis://:***@[::1]:6379/1"),
        ("redis://[::1]:6379", "redis://[::1]:6379"),
        // Unix sockets carry their credentials in the query.
        (
            "redis+unix:///run/redis.sock?pass=s3cret",
            "redis+unix:///run/redis.sock?pass=***",
        ),
        (
            "redis+unix:///run/redis.sock?db=2&user=bob&pass=s3cret&x=y",
            "redis+unix:///run/redis.sock?db=2&user=***&pass=***&x=***",
        ),
        (
            "unix:///run/redis.sock?pass=s%3Fcr%26t&protocol=resp3",
            "unix:///run/redis.sock?pass=***&protocol=resp3",
        ),
        ("redis://cache/s3cret", "redis://cache/***"),
        (
            "redis://cache:6379?pass=s3cret",
            "redis://cache:6379?pass=***",
        ),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        // Webhooks: tokens live in the path and the query.
        (
            "https://hooks.example/services/T000/B000/s3cret",
            "https://hooks.example/***",
        ),
        (
            "https://hooks.example/hook?token=s3cret",
            "https://hooks.example/***?***",
        ),
        (
            "https://hooks.example?token=s3cret",
            "https://hooks.example/?***",
        ),
        (
            "https://u:p%40ss@hooks.example/x?y=1#s3cret",
            "https://***:***@hooks.example/***?***#***",
        ),
        (
            "https://s3cret@[2001:db8::1]:8443/hook",
            "https://***@[2001:db8::1]:8443/***",
        ),
        ("https://hooks.example/a@b", "https://hooks.example/***"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/"),
        ("http://[::1]:9000", "http://[::1]:9000/"),
        ("mailto:s3cret@example.com", "mailto:***"),
        // Unparsable: which part is the secret cannot be told, so none is shown.
        ("not a url", "***"),
        ("s3cret@host", "***"),
        ("http://us er:s3cret@[bad/", "***"),
        ("redis://user:s3/cret@cache", "***"),
        ("", "***"),
    ];
    for (raw, want) in cases {
        let got = redact_url(raw);
        assert_eq!(got, want, "{raw}");
        assert!(!got.contains("s3cret") && !got.contains("cret"), "{raw}");
    }
}

#[test]
fn printed_config_hides_webhook_and_redis_secrets() {
    let mut c = Config::default();
    c.cache.redis.url = Some("rediss://app:p@ss-s3cret@redis.internal:6380/0".into());
    c.alerts.webhook_url = Some("https://hooks.example/T0KEN?token=s3cret".into());
    let text = toml::to_string_pretty(&c.redacted()).expect("render");
    for secret in ["s3cret", "T0KEN", "app:", "p@ss"] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
    assert!(
        text.contains("url = \"rediss://***:***@redis.internal:6380/0\""),
        "{text}"
    );
    assert!(
        text.contains("webhook_url = \"https://hooks.example/***?***\""),
        "{text}"
    );
}

#[test]
fn a_generation_model_is_served_beside_the_default_model() {
    let c = Config::load(
        &ConfigArgs::default(),
        &ModelArgs::default(),
        vec![(
            "generation.model",
            "models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf".into(),
        )],
    )
    .expect("config");
    let specs = c.model_specs();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[1].name, "gemma-3-270m-q4_k_m");
    assert_eq!(specs[1].task, Some(osprey_engine::Task::Generate));
    let bad = Config::load(
        &ConfigArgs::default(),
        &ModelArgs::default(),
        vec![("generation.max_sequences", 0.into())],
    );
    assert!(
        bad.is_err_and(|e| e.to_string().contains("max_sequences")),
        "max_sequences 0 must be refused"
    );
}

#[test]
fn a_profile_fills_what_no_source_sets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[model]\nprofile = \"throughput\"\n[batching]\nmax_batch_requests = 5\n",
    )
    .expect("write");
    let c = Config::load(
        &ConfigArgs {
            config: Some(file.clone()),
        },
        &ModelArgs::default(),
        Vec::new(),
    )
    .expect("throughput");
    assert_eq!(c.model.profile, Profile::Throughput);
    assert_eq!(c.batching.thread_pool, osprey_engine::ThreadPool::Replica);
    assert_eq!(c.batching.threads, 1);
    assert_eq!(c.batching.max_batch_tokens, 8192);
    // The file's own value wins over the preset's 64.
    assert_eq!(c.batching.max_batch_requests, 5);

    // A flag picks the profile over the file's.
    let c = Config::load(
        &ConfigArgs { config: Some(file) },
        &ModelArgs {
            profile: Some(Profile::Speed),
            ..ModelArgs::default()
        },
        Vec::new(),
    )
    .expect("speed");
    assert_eq!(c.model.profile, Profile::Speed);
    assert_eq!(c.model.precision, osprey_engine::Precision::Int8);
    assert_eq!(c.batching.thread_pool, osprey_engine::ThreadPool::Shared);
    assert_eq!(c.batching.max_batch_requests, 5);
    assert_eq!(c.engine().profile, "speed");

    let none = Config::load(
        &ConfigArgs { config: None },
        &ModelArgs::default(),
        Vec::new(),
    )
    .expect("defaults");
    assert_eq!(none.model.profile, Profile::Balanced);
    assert_eq!(none.batching, osprey_engine::BatchingConfig::default());
}
