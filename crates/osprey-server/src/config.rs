use serde::{Deserialize, Serialize};

use crate::TlsConfig;

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// Most inputs in one request.
    pub max_inputs: usize,
    /// Longest input accepted, in characters (before tokenization).
    pub max_input_chars: usize,
    /// How long shutdown waits for in-flight requests (seconds).
    pub shutdown_grace_secs: u64,
    /// HTTPS: `[server.tls]` with `cert_file` and `key_file`.
    pub tls: TlsConfig,
    /// What an embedding request with `truncate: false` gets for an input longer
    /// than the model's window: an error, or the input embedded whole in chunks.
    pub long_inputs: LongInputs,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongInputs {
    /// 413, naming the input and its token count.
    #[default]
    Error,
    /// Overlapping windows, embedded and averaged weighted by tokens.
    Chunk,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 4 * 1024 * 1024,
            max_inputs: 256,
            max_input_chars: 32_768,
            shutdown_grace_secs: 30,
            tls: TlsConfig::default(),
            long_inputs: LongInputs::Error,
        }
    }
}
