use std::sync::OnceLock;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

type Filter = Box<dyn Layer<Registry> + Send + Sync>;

/// Swaps the filter when `telemetry.log_level` changes live.
static LEVEL: OnceLock<reload::Handle<Filter, Registry>> = OnceLock::new();

/// Logs to stderr; `RUST_LOG` overrides the configured level.
pub fn init(format: &str, level: &str) {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|d| !d.trim().is_empty() && EnvFilter::try_new(d).is_ok())
        .unwrap_or_else(|| level.to_owned());
    let (filter, handle) = reload::Layer::new(filter(&directives));
    let _ = LEVEL.set(handle);
    let base = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = if format == "json" {
        base.with(fmt.json()).try_init()
    } else {
        base.with(fmt).try_init()
    };
}

/// Whether `directives` is a filter `set_level` takes.
pub fn valid_level(directives: &str) -> Result<(), String> {
    EnvFilter::try_new(directives)
        .map(|_| ())
        .map_err(|e| format!("telemetry.log_level `{directives}` is not a log filter: {e}"))
}

/// Logs from now on as `directives` says (`PUT /admin/config`, SIGHUP); an
/// operator asking outranks `RUST_LOG`.
pub fn set_level(directives: &str) -> Result<(), String> {
    valid_level(directives)?;
    let Some(handle) = LEVEL.get() else {
        return Ok(());
    };
    handle
        .reload(filter(directives))
        .map_err(|e| format!("changing the log level: {e}"))
}

/// The filter for `directives`. `EnvFilter` takes a lock on its table of spans
/// at every span's start, enter, exit and close, from every core: on each poll of
/// every request, since each runs in a span. Its span and field directives
/// (`target[span{field=value}]=level`) need that table; target and level
/// directives alone are served the same by `Targets`, which keeps no per-span
/// state.
fn filter(directives: &str) -> Box<dyn Layer<Registry> + Send + Sync> {
    match targets_only(directives) {
        Some(targets) => targets.boxed(),
        None => EnvFilter::new(directives).boxed(),
    }
}

/// `directives` as `Targets`, when they name nothing but targets and levels.
fn targets_only(directives: &str) -> Option<Targets> {
    if directives.contains(['[', '{']) {
        return None;
    }
    directives.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn target_and_level_directives_need_no_span_table() {
        let t = targets_only("info").expect("a bare level");
        assert!(t.would_enable("osprey::serve", &Level::INFO));
        assert!(!t.would_enable("osprey::serve", &Level::DEBUG));
        let t = targets_only("warn,osprey_engine=debug").expect("targets");
        assert!(t.would_enable("osprey_engine::engine", &Level::DEBUG));
        assert!(!t.would_enable("osprey_server::observe", &Level::INFO));
        assert!(t.would_enable("osprey_server::observe", &Level::WARN));
    }

    #[test]
    fn span_and_field_directives_keep_env_filter() {
        assert!(targets_only("osprey[request]=debug").is_none());
        assert!(targets_only("osprey[request{id=7}]=trace,info").is_none());
        assert!(targets_only("[{id}]=debug").is_none());
    }
}
