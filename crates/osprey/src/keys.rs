//! `osprey key new|hash`: API keys for the keys file, which stores only digests.

use std::io::Read;

use anyhow::{Context, bail};
use osprey_server::auth::{Scope, digest_hex};

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
            println!(
                "\n[[keys]]\nname = \"{name}\"\nscope = \"{scope}\"\nsha256 = \"{}\"",
                digest_hex(&key)
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

/// `osp_` and 32 random bytes in hex, from the operating system's generator.
fn new_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().fold(String::from("osp_"), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
}
