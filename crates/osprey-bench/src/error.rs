//! One error type for the crate; each variant says what the user can fix.

use std::path::PathBuf;

/// Everything that can stop a benchmark before it produces a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag, scenario key or spec string that does not parse.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A report file that is not an `osprey bench` JSON report.
    #[error("{path}: not an osprey bench report: {source}")]
    ReportFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A scenario file that is not valid TOML or has unknown keys.
    #[error("{path}: {source}")]
    Scenario {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The target cannot be reached or does not speak a known API.
    #[error("{0}")]
    Target(String),
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl BenchError {
    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
