//! Command-line interface. Every flag can also come from an environment variable
//! named after its config key (`OSPREY_<SECTION>__<KEY>`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use osprey_engine::BackendKind;

#[derive(Parser)]
#[command(name = "osprey", version, about = "Osprey: a fast AI inference server", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the model over HTTP (/embed, /v1/embeddings, /info, /health/*, /metrics).
    Serve(ServeArgs),
    /// Embed texts and print the vectors as JSON, without a server.
    Embed(EmbedArgs),
    /// Load-test an embedding server (Osprey or any other speaking /embed or
    /// /v1/embeddings): latency percentiles, throughput, errors, reports.
    Bench(Box<osprey_bench::cli::BenchArgs>),
    /// Inspect or empty the result cache: the disk and Redis tiers of the
    /// configuration, or a running server's tiers with --url.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Make API keys for `auth.keys_file`.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a random key: prints the key once (give it to the client) and the
    /// entry for the keys file, which holds only its SHA-256.
    New {
        /// Name of the key's holder (shown in logs and used for rate limits).
        #[arg(long)]
        name: String,
        /// `infer` (embedding routes) or `admin` (also /admin/*).
        #[arg(long, default_value = "infer")]
        scope: String,
    },
    /// Print the SHA-256 of a key read from standard input.
    Hash,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective settings.
    Check(ConfigArgs),
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Print entries, bytes, hits and misses per tier as JSON.
    Stats(CacheArgs),
    /// Empty every tier (in Redis, only keys under the configured prefix).
    Clear(CacheArgs),
}

#[derive(Args, Clone)]
pub struct CacheArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Ask a running server instead (its memory tier included), e.g.
    /// http://127.0.0.1:8080. Needed while a server holds the disk tier open.
    #[arg(long, env = "OSPREY_URL", value_name = "URL")]
    pub url: Option<String>,
    /// API key for a server with authentication on.
    #[arg(
        long,
        env = "OSPREY_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
}

/// Where configuration comes from: defaults, then the file, then the environment,
/// then these flags.
#[derive(Args, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file (default: ./osprey.toml when it exists).
    #[arg(long, env = "OSPREY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Which model to load and how.
#[derive(Args, Clone, Default)]
pub struct ModelArgs {
    /// Model directory in Hugging Face layout (config.json, tokenizer.json, weights,
    /// and for sentence-transformers models modules.json and 1_Pooling/).
    #[arg(long, env = "OSPREY_MODEL__PATH", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Inference backend: `onnx` (ONNX Runtime, onnx/model.onnx; the default in
    /// builds with the `onnx` feature) or `candle` (pure Rust, model.safetensors).
    #[arg(long, env = "OSPREY_MODEL__BACKEND", value_name = "NAME")]
    pub backend: Option<BackendKind>,
    /// Model replicas, each on its own OS thread.
    #[arg(long, env = "OSPREY_BATCHING__REPLICAS", value_name = "N")]
    pub replicas: Option<usize>,
    /// Intra-op threads per replica (0: the machine's cores shared among replicas).
    #[arg(long, env = "OSPREY_BATCHING__THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Optimization profile: balanced (default), latency, throughput, memory, or
    /// speed (int8 weights, accuracy against fp32 reported at start-up).
    #[arg(long, env = "OSPREY_MODEL__PROFILE", value_name = "NAME")]
    pub profile: Option<crate::profile::Profile>,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on.
    #[arg(long, env = "OSPREY_SERVER__HOST", value_name = "ADDR")]
    pub host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "OSPREY_SERVER__PORT", value_name = "N")]
    pub port: Option<u16>,
    /// Most tokens in one batch (padding included on padding backends).
    #[arg(long, env = "OSPREY_BATCHING__MAX_BATCH_TOKENS", value_name = "N")]
    pub max_batch_tokens: Option<usize>,
    /// Most inputs in one batch.
    #[arg(long, env = "OSPREY_BATCHING__MAX_BATCH_REQUESTS", value_name = "N")]
    pub max_batch_requests: Option<usize>,
    /// Most tokens waiting in the queue before new requests get 429.
    #[arg(long, env = "OSPREY_BATCHING__MAX_QUEUE_TOKENS", value_name = "N")]
    pub max_queue_tokens: Option<usize>,
    /// Log format: `pretty` or `json`.
    #[arg(long, env = "OSPREY_TELEMETRY__LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// With auth off, serve admin routes and the dashboard to other machines too.
    #[arg(long)]
    pub allow_open_admin: bool,
}

#[derive(Args, Clone)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Return the pooled vectors without L2 normalization.
    #[arg(long)]
    pub no_normalize: bool,
    /// Refuse inputs over the model's maximum length instead of cutting them.
    #[arg(long)]
    pub no_truncate: bool,
    /// Texts to embed.
    #[arg(required = true, value_name = "TEXT")]
    pub texts: Vec<String>,
}
