//! `osprey key new|hash`: API keys for the keys file, which stores only digests.

use std::io::Read;

use anyhow::{Context, bail};
use osprey_server::auth::{Scope, digest_hex};
use serde::Serialize;

use crate::cli::KeyCommand;

pub fn run(command: KeyCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        KeyCommand::New { name, scope } => {
            if Scope::parse(&scope).is_none() {
                bail!("--scope must be `infer` or `admin`, not `{scope}`");
            }
            if name.is_empty() || name.contains(['"', '\\', '\n']) {
                bail!("--name must be non-empty, without quotes, backslashes or newlines");
            }
            let key = new_key()?;
            eprintln!("key (shown once; give it to the client):");
            println!("{key}");
            eprintln!("\nentry for the keys file:");
            let entry = KeysFile {
                keys: vec![KeyEntry {
                    name: &name,
                    scope: &scope,
                    sha256: digest_hex(&key),
                }],
            };
            println!(
                "\n{}",
                toml::to_string(&entry)
                    .context("writing the entry")?
                    .trim_end()
            );
        }
        KeyCommand::Hash => {
            let mut key = String::new();
            std::io::stdin()
                .read_to_string(&mut key)
                .context("reading the key from standard input")?;
            let key = key.trim_end_matches(['\r', '\n']);
            if key.is_empty() {
                bail!("no key on standard input");
            }
            println!("{}", digest_hex(key));
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// One `[[keys]]` entry of the keys file, as `toml` writes it.
#[derive(Serialize)]
struct KeysFile<'a> {
    keys: Vec<KeyEntry<'a>>,
}

#[derive(Serialize)]
struct KeyEntry<'a> {
    name: &'a str,
    scope: &'a str,
    sha256: String,
}

/// `osp_` and 32 random bytes in hex, from the operating system's generator.
fn new_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).context("reading the system's random generator")?;
    Ok(format!("osp_{}", hex::encode(bytes)))
}
