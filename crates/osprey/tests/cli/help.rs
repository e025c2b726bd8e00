//! `--help`: commands, flags and environment variables.

use std::time::Duration;

use crate::support::*;

#[test]
fn help_mentions_commands_flags_and_env_vars() {
    let dir = tempdir();
    let out = run(osprey(dir.path()).arg("--help"), Duration::from_secs(30));
    assert!(out.status.success());
    let text = stdout(&out);
    for word in ["serve", "embed", "config"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }

    let out = run(
        osprey(dir.path()).args(["serve", "--help"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    let text = stdout(&out);
    for word in [
        "--config",
        "--model",
        "--backend",
        "--host",
        "--port",
        "--max-batch-tokens",
        "--max-batch-requests",
        "--max-queue-tokens",
        "--replicas",
        "--threads",
        "OSPREY_CONFIG",
        "OSPREY_MODEL__PATH",
        "OSPREY_SERVER__HOST",
        "OSPREY_SERVER__PORT",
        "OSPREY_BATCHING__MAX_BATCH_TOKENS",
        "OSPREY_BATCHING__MAX_QUEUE_TOKENS",
    ] {
        assert!(text.contains(word), "serve --help lacks {word}:\n{text}");
    }

    let out = run(
        osprey(dir.path()).args(["embed", "--help"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    let text = stdout(&out);
    for word in ["--no-normalize", "--no-truncate", "--model"] {
        assert!(text.contains(word), "embed --help lacks {word}:\n{text}");
    }

    let out = run(osprey(dir.path()).arg("--version"), Duration::from_secs(30));
    assert!(out.status.success());
    assert!(stdout(&out).contains(env!("CARGO_PKG_VERSION")));

    let out = run(
        osprey(dir.path()).arg("frobnicate"),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "an unknown subcommand fails");
}
