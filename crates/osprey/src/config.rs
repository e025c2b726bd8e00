//! The configuration file and how it is merged: defaults, then `osprey.toml` (or
//! `--config`), then `OSPREY_<SECTION>__<KEY>` variables, then flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use osprey_collections::CollectionsConfig;
use osprey_engine::cache::CacheConfig;
use osprey_engine::generate::GenerationConfig;
use osprey_engine::{BackendKind, BatchingConfig, EngineConfig, Precision};
use osprey_server::{
    AlertsConfig, AuthConfig, AutoscaleConfig, LimitsConfig, LiveSettings, ModelSpec,
    ObserveConfig, SelfHealConfig, ServerConfig, SloConfig,
};
use serde::{Deserialize, Serialize};

use crate::cli::{ConfigArgs, ModelArgs};
use crate::profile::Profile;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Model directory.
    pub path: PathBuf,
    pub backend: BackendKind,
    /// A named preset of threads, replicas, batching and weights (`profile.rs`).
    pub profile: Profile,
    /// `fp32`, or `int8` weights (onnx; `onnx/model_int8.onnx`).
    pub precision: Precision,
    /// The onnxruntime shared library; searched for when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime: repack weights for the matrix kernels in every replica
    /// (faster; a copy of the matrix weights per replica).
    pub onnx_prepack: bool,
    /// Give a batch's activations back to the system when it ends (no
    /// onnxruntime arena, a fixed glibc mmap threshold): less memory under load,
    /// fewer inputs per second. For the whole process.
    pub low_memory: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("models/all-MiniLM-L6-v2"),
            // onnxruntime is the faster backend; candle serves builds without it.
            backend: if cfg!(feature = "onnx") {
                BackendKind::Onnx
            } else {
                BackendKind::Candle
            },
            profile: Profile::default(),
            precision: Precision::default(),
            onnxruntime_lib: None,
            // A lone request runs 20-30% faster with repacked weights.
            onnx_prepack: true,
            low_memory: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `pretty` or `json`.
    pub log_format: String,
    /// Default log filter when `RUST_LOG` is unset.
    pub log_level: String,
    /// Request metrics, Server-Timing, statistics, SLOs and alerts (off only to
    /// measure what they cost).
    pub metrics: bool,
    /// One log line per request: status, duration, inputs.
    pub access_log: bool,
    /// Debug only: log request texts (at debug level).
    pub log_request_text: bool,
    /// `x-cache` and the cache's stages in `Server-Timing`; off, no response tells
    /// a caller whether anyone embedded the same text recently.
    pub expose_cache_status: bool,
    /// Where a day of per-minute statistics is saved, to survive restarts
    /// (`/admin/stats.csv?window=24h`); unset, the day is kept in memory only.
    pub history_path: Option<PathBuf>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: "pretty".into(),
            log_level: "info".into(),
            metrics: true,
            access_log: true,
            log_request_text: false,
            expose_cache_status: true,
            history_path: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub model: ModelConfig,
    pub batching: BatchingConfig,
    pub cache: CacheConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub telemetry: TelemetryConfig,
    pub slo: SloConfig,
    pub alerts: AlertsConfig,
    /// Vector collections over Qdrant's API; an empty path turns them off.
    pub collections: CollectionsConfig,
    /// Text generation: the decode loop, its KV budget, chat sessions.
    pub generation: GenerationConfig,
    /// The memory ceiling and how the server defends it.
    pub self_heal: SelfHealConfig,
    /// Replicas that follow the load.
    pub autoscale: AutoscaleConfig,
    /// The model repository; empty: the one `[model]` is served.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelSpec>,
}

impl Config {
    /// Merges every source; `overrides` are `(dotted.key, value)` pairs from flags.
    pub fn load(
        args: &ConfigArgs,
        model: &ModelArgs,
        overrides: Vec<(&str, figment::value::Value)>,
    ) -> anyhow::Result<Self> {
        let mut sources = Figment::new();
        match &args.config {
            Some(file) => {
                if !file.is_file() {
                    bail!("config file {} does not exist", file.display());
                }
                sources = sources.merge(Toml::file_exact(file));
            }
            None if Path::new("osprey.toml").is_file() => {
                sources = sources.merge(Toml::file_exact("osprey.toml"))
            }
            None => {}
        }
        // Only nested keys (OSPREY_SECTION__KEY) are config; OSPREY_CONFIG is a flag.
        sources = sources.merge(
            Env::prefixed("OSPREY_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let mut pairs = overrides;
        if let Some(p) = &model.model {
            pairs.push(("model.path", p.to_string_lossy().into_owned().into()));
        }
        if let Some(b) = model.backend {
            pairs.push(("model.backend", b.as_str().into()));
        }
        if let Some(n) = model.replicas {
            pairs.push(("batching.replicas", n.into()));
        }
        if let Some(n) = model.threads {
            pairs.push(("batching.threads", n.into()));
        }
        if let Some(p) = model.profile {
            pairs.push(("model.profile", p.as_str().into()));
        }
        for (key, value) in pairs {
            sources = sources.merge(Serialized::default(key, value));
        }
        // The profile's preset goes between the defaults and every source, so
        // whatever a source sets wins over it.
        let profile: Profile = match sources.find_value("model.profile") {
            Ok(v) => v.deserialize().context("invalid model.profile")?,
            Err(_) => Profile::default(),
        };
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&profile.preset()))
            .merge(sources)
            .extract()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let b = &self.batching;
        for (name, v) in [
            ("batching.max_batch_tokens", b.max_batch_tokens),
            ("batching.max_batch_requests", b.max_batch_requests),
            ("batching.max_queue_tokens", b.max_queue_tokens),
            ("server.max_body_bytes", self.server.max_body_bytes),
            ("server.max_inputs", self.server.max_inputs),
            ("server.max_input_chars", self.server.max_input_chars),
            (
                "limits.max_decompressed_bytes",
                self.limits.max_decompressed_bytes,
            ),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        self.validate_models()?;
        self.cache.validate().map_err(anyhow::Error::msg)?;
        self.slo.validate().map_err(anyhow::Error::msg)?;
        self.alerts.validate().map_err(anyhow::Error::msg)?;
        self.generation.validate().map_err(anyhow::Error::msg)?;
        self.self_heal.validate().map_err(anyhow::Error::msg)?;
        self.autoscale.validate().map_err(anyhow::Error::msg)?;
        // Reads `alerts.webhook_ca_file`: a bad one stops `serve` and `config check`
        // here instead of silently disabling the webhook later.
        if self.alerts.webhook_url.is_some() || self.alerts.webhook_ca_file.is_some() {
            self.alerts.webhook_client().map_err(anyhow::Error::msg)?;
        }
        if !matches!(self.telemetry.log_format.as_str(), "pretty" | "json") {
            bail!(
                "telemetry.log_format must be `pretty` or `json`, not `{}`",
                self.telemetry.log_format
            );
        }
        Ok(())
    }

    /// The configuration with secrets hidden, for printing.
    pub fn redacted(&self) -> Self {
        let mut cache = self.cache.clone();
        cache.redis.url = cache.redis.url.as_deref().map(redact_url);
        let mut alerts = self.alerts.clone();
        alerts.webhook_url = alerts.webhook_url.as_deref().map(redact_url);
        Self {
            auth: self.auth.redacted(),
            cache,
            alerts,
            ..self.clone()
        }
    }

    /// The sections that change while serving.
    pub fn live(&self) -> LiveSettings {
        LiveSettings {
            auth: self.auth.clone(),
            limits: self.limits.clone(),
            slo: self.slo.clone(),
            alerts: self.alerts.clone(),
            batching: self.batching.clone(),
            cache: self.cache.clone(),
            self_heal: self.self_heal.clone(),
            autoscale: self.autoscale.clone(),
        }
    }

    pub fn observe(&self) -> ObserveConfig {
        ObserveConfig {
            metrics: self.telemetry.metrics,
            access_log: self.telemetry.access_log,
            log_request_text: self.telemetry.log_request_text,
            slo: self.slo.clone(),
            alerts: self.alerts.clone(),
            history_path: self.telemetry.history_path.clone(),
        }
    }

    fn validate_models(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            m.validate().map_err(anyhow::Error::msg)?;
            if !seen.insert(m.label()) {
                bail!("[[models]] lists {} twice", m.label());
            }
        }
        Ok(())
    }

    /// The models to serve: `[[models]]`, or the one `[model]` named after its
    /// directory.
    pub fn model_specs(&self) -> Vec<ModelSpec> {
        if !self.models.is_empty() {
            return self.models.clone();
        }
        let path = &self.model.path;
        let name = path
            .canonicalize()
            .unwrap_or_else(|_| path.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| ModelSpec::plain_name(n))
            .unwrap_or_else(|| "default".into());
        let mut specs = vec![ModelSpec {
            name,
            path: path.clone(),
            task: None,
            backend: Some(self.model.backend),
            replicas: None,
            version: None,
            traffic: None,
            autoscale: None,
        }];
        if let Some(gguf) = &self.generation.model {
            let name = gguf
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| ModelSpec::plain_name(n))
                .unwrap_or_else(|| "generate".into());
            specs.push(ModelSpec {
                name,
                path: gguf.clone(),
                task: Some(osprey_engine::Task::Generate),
                backend: None,
                replicas: None,
                version: None,
                traffic: None,
                autoscale: None,
            });
        }
        specs
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            model_path: self.model.path.clone(),
            backend: self.model.backend,
            profile: self.model.profile.as_str().into(),
            precision: self.model.precision,
            onnxruntime_lib: self.model.onnxruntime_lib.clone(),
            onnx_prepack: self.model.onnx_prepack,
            batching: self.batching.clone(),
            admission: self.limits.admission(),
        }
    }
}

/// `osprey config check`: validates and prints the effective configuration.
pub fn check(args: &ConfigArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load(args, &ModelArgs::default(), Vec::new())?;
    let text = toml::to_string_pretty(&config.redacted()).context("rendering the configuration")?;
    println!("{text}");
    // Key files, JWT keys and certificates are read here too, so a bad one shows
    // now rather than at start-up.
    osprey_server::Protection::new(&config.auth, &config.limits)
        .context("invalid auth or limits")?;
    if config.server.tls.enabled() {
        config.server.tls.acceptor().context("invalid server.tls")?;
    }
    if !config.model.path.is_dir() {
        eprintln!(
            "warning: model directory {} does not exist (fetch the default model with `make onnx`)",
            config.model.path.display()
        );
    }
    eprintln!("configuration is valid");
    Ok(std::process::ExitCode::SUCCESS)
}

/// How a URL is printed: scheme, host and port, and nothing that may be a
/// credential. User and password become `***` (parsed as browsers and the Redis
/// client do, so an `@` inside a password splits where they split). Redis URLs
/// keep their database path and the `db`/`protocol` parameters, and hide every
/// other parameter's value (`?pass=`, `?user=` of a unix socket). Any other URL
/// (webhooks) hides its whole path, query and fragment, where receivers put their
/// tokens. A string that does not parse is hidden whole.
pub fn redact_url(raw: &str) -> String {
    const HIDDEN: &str = "***";
    let Ok(mut url) = url::Url::parse(raw) else {
        return HIDDEN.to_owned();
    };
    // Both fail only on URLs without a host, which cannot hold a user either.
    if !url.username().is_empty() && url.set_username(HIDDEN).is_err() {
        return HIDDEN.to_owned();
    }
    if url.password().is_some() && url.set_password(Some(HIDDEN)).is_err() {
        return HIDDEN.to_owned();
    }
    let redis = matches!(
        url.scheme(),
        "redis" | "rediss" | "valkey" | "valkeys" | "redis+unix" | "valkey+unix" | "unix"
    );
    if redis {
        let unix = matches!(url.scheme(), "redis+unix" | "valkey+unix" | "unix");
        // A TCP URL's path is its database number; a unix URL's is the socket.
        let db = url.path().trim_matches('/');
        if !unix && !db.bytes().all(|b| b.is_ascii_digit()) {
            url.set_path("/***");
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let keep = matches!(k.as_ref(), "db" | "protocol");
                    (
                        k.into_owned(),
                        if keep {
                            v.into_owned()
                        } else {
                            HIDDEN.to_owned()
                        },
                    )
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        // `#insecure` (skip certificate checks) is worth seeing; nothing else is valid.
        if url.fragment().is_some_and(|f| f != "insecure") {
            url.set_fragment(Some(HIDDEN));
        }
    } else if url.cannot_be_a_base() {
        // `mailto:` and the like: everything after the scheme is opaque.
        return format!("{}:{HIDDEN}", url.scheme());
    } else {
        if !matches!(url.path(), "" | "/") {
            url.set_path("/***");
        }
        if url.query().is_some() {
            url.set_query(Some(HIDDEN));
        }
        if url.fragment().is_some() {
            url.set_fragment(Some(HIDDEN));
        }
    }
    url.into()
}

#[cfg(test)]
mod tests;
