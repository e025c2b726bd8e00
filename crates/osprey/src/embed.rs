//! `osprey embed`: load the model, embed the texts, print JSON, exit.

use anyhow::Context;
use osprey_engine::{EmbedOptions, Engine};

use crate::cli::EmbedArgs;
use crate::config::Config;

pub fn run(args: EmbedArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load(&args.config, &args.model, Vec::new())?;
    crate::logging::init(&config.telemetry.log_format, "warn");
    crate::threads::pin_compute_threads(config.batching.threads_per_replica());
    if config.model.low_memory {
        osprey_engine::prefer_low_memory();
    }
    let engine = Engine::start(&config.engine()).context("loading the model")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the runtime")?;
    let opts = EmbedOptions {
        normalize: !args.no_normalize,
        truncate: !args.no_truncate,
        dimensions: None,
    };
    let out = rt.block_on(engine.embed(&args.texts, opts))?;
    engine.shutdown();
    println!("{}", serde_json::to_string(&out.vectors)?);
    Ok(std::process::ExitCode::SUCCESS)
}
