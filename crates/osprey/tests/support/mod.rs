//! What every test of the binary needs: the model, a clean command, and ways to
//! run it.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

mod process;

#[allow(unused_imports)]
pub use process::*;

use std::path::Path;
use std::process::Command;

/// The default model, or `OSPREY_TEST_MODEL`.
pub use osprey_models::testkit::model_dir;

/// The binary with a clean environment: no `OSPREY_*` variables from the caller, no
/// colours, and run from `dir` so no stray `osprey.toml` is picked up. The binary
/// is the one cargo built, or another (a release build) named by `OSPREY_TEST_BIN`.
pub fn osprey(dir: &Path) -> Command {
    let bin = std::env::var_os("OSPREY_TEST_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_osprey")));
    let mut cmd = Command::new(bin);
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
