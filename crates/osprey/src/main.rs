//! The `osprey` binary: command line, configuration, and wiring.

mod cache;
mod cli;
mod config;
mod embed;
mod keys;
mod live;
mod logging;
mod otlp;
mod profile;
mod serve;
mod threads;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Embed(args) => embed::run(args),
        cli::Command::Bench(args) => Ok(osprey_bench::run(*args)?.exit_code()),
        cli::Command::Cache { command } => match command {
            cli::CacheCommand::Stats(args) => cache::stats(&args),
            cli::CacheCommand::Clear(args) => cache::clear(&args),
        },
        cli::Command::Config { command } => match command {
            cli::ConfigCommand::Check(args) => config::check(&args),
        },
        cli::Command::Key { command } => keys::run(command),
    }
}
