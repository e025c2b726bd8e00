//! `osprey config check`: the effective configuration, and what it refuses.

use std::time::Duration;

use crate::support::*;

#[test]
fn config_check_prints_the_effective_config() {
    let dir = tempdir();
    let file = dir.path().join("good.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nport = 9123\nmax_inputs = 17\n\n[model]\npath = {:?}\n\n[batching]\nmax_batch_tokens = 2048\n",
            model_arg()
        ),
    )
    .expect("write the config");
    let out = run(
        osprey(dir.path())
            .args(["config", "check", "--config"])
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "port = 9123",
        "max_inputs = 17",
        "max_batch_tokens = 2048",
        // Defaults for what the file leaves out.
        "max_queue_tokens = 32768",
        "host = \"127.0.0.1\"",
    ] {
        assert!(
            text.contains(line),
            "effective config lacks `{line}`:\n{text}"
        );
    }
    for section in ["[server]", "[model]", "[batching]", "[telemetry]"] {
        assert!(text.contains(section), "lacks {section}:\n{text}");
    }

    // The environment overrides the file; OSPREY_CONFIG names the file.
    let out = run(
        osprey(dir.path())
            .args(["config", "check"])
            .env("OSPREY_CONFIG", &file)
            .env("OSPREY_SERVER__PORT", "9555"),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("port = 9555"), "{text}");
    assert!(text.contains("max_inputs = 17"), "{text}");
}

#[test]
fn config_check_rejects_unknown_keys_and_bad_values() {
    let dir = tempdir();
    for (name, body, needle) in [
        ("key.toml", "[server]\nbogus_key = 1\n", "bogus_key"),
        ("section.toml", "[servr]\nport = 1\n", "servr"),
        (
            "zero.toml",
            "[batching]\nmax_batch_tokens = 0\n",
            "max_batch_tokens",
        ),
        ("type.toml", "[server]\nport = \"eighty\"\n", "port"),
        ("syntax.toml", "[server\nport = 1\n", "server"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, body).expect("write the config");
        let out = run(
            osprey(dir.path())
                .args(["config", "check", "--config"])
                .arg(&file),
            Duration::from_secs(30),
        );
        assert!(!out.status.success(), "{name} should be refused");
        let err = stderr(&out);
        assert!(
            err.contains(needle),
            "{name}: message should name `{needle}`: {err}"
        );
    }

    let out = run(
        osprey(dir.path()).args(["config", "check", "--config", "/nonexistent/osprey.toml"]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/osprey.toml"),
        "{}",
        stderr(&out)
    );
}
