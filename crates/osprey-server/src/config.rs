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
    /// How long shutdown waits for in-flight requests (seconds), counted from
    /// the end of the drain delay.
    pub shutdown_grace_secs: u64,
    /// After SIGTERM, how long Osprey keeps accepting and serving requests while
    /// `/health/ready` answers 503 (seconds): the time a load balancer needs to
    /// see the readiness drop and stop sending. Then the listener closes and
    /// in-flight requests get `shutdown_grace_secs` to finish.
    pub drain_delay_secs: u64,
    /// Longest a client may take to send a request's line and headers, counted
    /// from the accept on a new connection and from the first byte of the next
    /// request on a kept-alive one (milliseconds; 0: no limit).
    pub header_timeout_ms: u64,
    /// Longest a request body may take to arrive, counted from the end of its
    /// headers; a body still arriving then gets 408 (milliseconds; 0: no limit).
    pub body_timeout_ms: u64,
    /// How long a connection may sit idle between requests before it is closed
    /// (seconds; 0: no keep-alive, a connection closes once its requests are
    /// answered).
    pub keep_alive_secs: u64,
    /// Connections open at once; beyond it new ones wait in the listen backlog
    /// until one closes (0: no limit).
    pub max_connections: usize,
    /// HTTPS: `[server.tls]` with `cert_file` and `key_file`.
    pub tls: TlsConfig,
    /// What an embedding request with `truncate: false` gets for an input longer
    /// than the model's window: an error, or the input embedded whole in chunks.
    pub long_inputs: LongInputs,
    /// With auth off, serve admin routes and the dashboard to clients on other
    /// machines too (by default only loopback clients get them).
    pub allow_open_admin: bool,
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
            drain_delay_secs: 0,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            keep_alive_secs: 75,
            max_connections: 4096,
            tls: TlsConfig::default(),
            long_inputs: LongInputs::Error,
            allow_open_admin: false,
        }
    }
}
