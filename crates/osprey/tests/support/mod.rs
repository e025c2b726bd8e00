//! What every test of the binary needs: the model and a clean command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The default model, or `OSPREY_TEST_MODEL`.
pub fn model_dir() -> PathBuf {
    std::env::var_os("OSPREY_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
}

/// The binary with a clean environment: no `OSPREY_*` variables from the caller, no
/// colours, and run from `dir` so no stray `osprey.toml` is picked up.
pub fn osprey(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osprey"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OSPREY_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .current_dir(dir);
    cmd
}
