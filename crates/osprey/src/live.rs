//! The configuration while serving: `PUT /admin/config` merges a partial
//! document into it, and SIGHUP reads the file again. Only the settings listed
//! in [`LIVE`] change without a restart; a change that touches any other is
//! refused whole, naming the keys.

use std::future::Future;
use std::pin::Pin;

use osprey_server::{AppState, ChangeError, ConfigControl};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::config::Config;

/// Settings (or whole sections, ending in `.`) that change while serving.
const LIVE: &[&str] = &[
    "limits.",
    "slo.",
    "alerts.",
    "batching.max_batch_tokens",
    "batching.max_batch_requests",
    "batching.max_queue_tokens",
    "batching.max_padding_ratio",
    "cache.memory.max_bytes",
    "cache.memory.ttl_secs",
    "cache.disk.max_bytes",
    "cache.disk.ttl_secs",
    "cache.redis.ttl_secs",
    "telemetry.log_level",
    "self_heal.",
    "autoscale.",
];

/// Inside live sections, what still takes a restart: compression is part of the
/// router, and the alert evaluator and its webhook start once.
const FIXED: &[&str] = &[
    "limits.compression",
    "limits.compression_min_bytes",
    "alerts.enabled",
    "alerts.webhook_",
];

fn matches(path: &str, rule: &str) -> bool {
    if rule.ends_with('.') || rule.ends_with('_') {
        path.starts_with(rule)
    } else {
        path == rule
    }
}

fn is_live(path: &str) -> bool {
    LIVE.iter().any(|r| matches(path, r)) && !FIXED.iter().any(|r| matches(path, r))
}

/// The dotted paths whose values differ; arrays compare whole.
fn differences(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let null = Value::Null;
                differences(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &path,
                    out,
                );
            }
        }
        _ if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}

/// Merges `patch` into `base` (objects key by key, anything else replaced).
fn merge(base: &mut Value, patch: Value) -> Result<(), String> {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    return Err(format!("`{k}`: null is not a setting; give a value"));
                }
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v)?,
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        (b, p) => {
            *b = p;
            Ok(())
        }
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .unwrap_or(&Value::Null)
}

/// Turning the memory tier on or off takes a restart; resizing it does not.
fn switches_memory_tier(old: &Value, new: &Value) -> bool {
    let on = |v: &Value| at(v, "cache.memory.max_bytes").as_u64().unwrap_or(0) > 0;
    on(old) != on(new)
}

/// The running configuration, and how to read the file again.
pub struct LiveConfig {
    current: Mutex<Config>,
    /// What `GET /admin/config` shows, kept beside the lock a change holds.
    shown: std::sync::Mutex<Value>,
    reload: Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>,
}

impl LiveConfig {
    pub fn new(
        config: Config,
        reload: impl Fn() -> anyhow::Result<Config> + Send + Sync + 'static,
    ) -> Self {
        Self {
            shown: std::sync::Mutex::new(shown(&config)),
            current: Mutex::new(config),
            reload: Box::new(reload),
        }
    }

    /// Makes `next` the running configuration for the keys in `changed` (all
    /// live), and returns them with their old and new values, secrets hidden.
    async fn apply(
        &self,
        state: &AppState,
        current: &mut Config,
        next: Config,
        changed: &[String],
        reload_keys: bool,
    ) -> Result<Vec<Value>, ChangeError> {
        if changed.iter().any(|k| k == "telemetry.log_level") {
            crate::logging::set_level(&next.telemetry.log_level).map_err(ChangeError::Invalid)?;
        }
        state.apply_live(&next.live(), reload_keys).await?;
        let (old_shown, new_shown) = (shown(current), shown(&next));
        let listed = changed
            .iter()
            .map(|k| json!({"key": k, "from": at(&old_shown, k), "to": at(&new_shown, k)}))
            .collect();
        *self.shown.lock().unwrap_or_else(|p| p.into_inner()) = new_shown;
        *current = next;
        Ok(listed)
    }

    /// SIGHUP: reads the file (and the keys file) again and applies what can
    /// change live; other changes are logged as waiting for a restart.
    /// `[[models]]` is the caller's.
    pub async fn reread(&self, state: &AppState) -> anyhow::Result<Config> {
        let next = (self.reload)()?;
        if !next.telemetry.log_level.is_empty() {
            crate::logging::valid_level(&next.telemetry.log_level).map_err(anyhow::Error::msg)?;
        }
        let mut current = self.current.lock().await;
        let (old, new) = (raw(&current), raw(&next));
        let mut changed = Vec::new();
        differences(&old, &new, "", &mut changed);
        let (live, fixed): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .filter(|k| !k.starts_with("models"))
            .partition(|k| {
                // Auth is re-read on SIGHUP (with the keys file), never over HTTP.
                k.starts_with("auth.")
                    || (is_live(k)
                        && !(k == "cache.memory.max_bytes" && switches_memory_tier(&old, &new)))
            });
        if !fixed.is_empty() {
            tracing::warn!(keys = ?fixed, "SIGHUP: these settings take effect at the next restart");
        }
        // What cannot change now keeps its running value, so a later change
        // compares against what runs.
        let applied = adopt(&current, &next, true);
        let listed = self
            .apply(state, &mut current, applied, &live, true)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        state.actions.record(
            "config_reloaded",
            None,
            "SIGHUP: the configuration and keys files were read again",
            json!({"changed": listed, "needs_restart": fixed}),
        );
        Ok(next)
    }
}

/// `current` with the live settings of `next` (and its auth, for SIGHUP). Field
/// by field: `next` may come from a document whose secrets were hidden, and
/// only live settings, which hold none, may come from it.
fn adopt(current: &Config, next: &Config, with_auth: bool) -> Config {
    let mut c = current.clone();
    c.limits = osprey_server::LimitsConfig {
        compression: c.limits.compression,
        compression_min_bytes: c.limits.compression_min_bytes,
        ..next.limits.clone()
    };
    c.slo = next.slo.clone();
    let a = &current.alerts;
    c.alerts = osprey_server::AlertsConfig {
        enabled: a.enabled,
        webhook_url: a.webhook_url.clone(),
        webhook_ca_file: a.webhook_ca_file.clone(),
        webhook_timeout_ms: a.webhook_timeout_ms,
        webhook_retries: a.webhook_retries,
        webhook_backoff_ms: a.webhook_backoff_ms,
        webhook_queue: a.webhook_queue,
        ..next.alerts.clone()
    };
    let (b, n) = (&mut c.batching, &next.batching);
    b.max_batch_tokens = n.max_batch_tokens;
    b.max_batch_requests = n.max_batch_requests;
    b.max_queue_tokens = n.max_queue_tokens;
    b.max_padding_ratio = n.max_padding_ratio;
    // A tier turned on or off stays as it runs until a restart.
    if (c.cache.memory.max_bytes > 0) == (next.cache.memory.max_bytes > 0) {
        c.cache.memory = next.cache.memory.clone();
    }
    c.cache.disk.max_bytes = next.cache.disk.max_bytes;
    c.cache.disk.ttl_secs = next.cache.disk.ttl_secs;
    c.cache.redis.ttl_secs = next.cache.redis.ttl_secs;
    c.telemetry.log_level = next.telemetry.log_level.clone();
    c.self_heal = next.self_heal.clone();
    c.autoscale = next.autoscale.clone();
    if with_auth {
        c.auth = next.auth.clone();
    }
    c
}

#[cfg(test)]
fn set(v: &mut Value, path: &str, value: Value) {
    use serde_json::Map;
    let mut slot = v;
    for k in path.split('.') {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(map) = slot else { return };
        slot = map.entry(k.to_owned()).or_insert(Value::Null);
    }
    *slot = value;
}

fn raw(c: &Config) -> Value {
    serde_json::to_value(c).unwrap_or_default()
}

fn shown(c: &Config) -> Value {
    serde_json::to_value(c.redacted()).unwrap_or_default()
}

impl ConfigControl for LiveConfig {
    fn effective(&self) -> Value {
        self.shown.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn change<'a>(
        &'a self,
        state: &'a AppState,
        patch: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Value>, ChangeError>> + Send + 'a>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            let old = raw(&current);
            let mut merged = old.clone();
            merge(&mut merged, patch).map_err(ChangeError::Invalid)?;
            // Secrets read back hidden here; `adopt` takes only live settings from it.
            let asked: Config = serde_json::from_value(merged)
                .map_err(|e| ChangeError::Invalid(format!("invalid configuration: {e}")))?;
            let new = raw(&asked);
            let mut changed = Vec::new();
            differences(&old, &new, "", &mut changed);
            let fixed: Vec<String> = changed
                .iter()
                .filter(|k| {
                    !is_live(k)
                        || (*k == "cache.memory.max_bytes" && switches_memory_tier(&old, &new))
                })
                .cloned()
                .collect();
            if !fixed.is_empty() {
                return Err(ChangeError::NotLive(fixed));
            }
            if changed.is_empty() {
                return Ok(Vec::new());
            }
            let next = adopt(&current, &asked, false);
            next.validate()
                .map_err(|e| ChangeError::Invalid(format!("{e:#}")))?;
            self.apply(state, &mut current, next, &changed, false).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_and_the_ones_that_wait_for_a_restart() {
        for k in [
            "limits.max_in_flight",
            "limits.requests_per_second",
            "slo.latency_ms",
            "alerts.cpu_percent",
            "batching.max_batch_tokens",
            "cache.memory.max_bytes",
            "telemetry.log_level",
            "self_heal.max_rss_mb",
        ] {
            assert!(is_live(k), "{k}");
        }
        for k in [
            "limits.compression",
            "alerts.enabled",
            "alerts.webhook_url",
            "batching.replicas",
            "server.port",
            "model.path",
            "cache.redis.url",
            "telemetry.log_format",
            "auth.enabled",
        ] {
            assert!(!is_live(k), "{k}");
        }
    }

    #[test]
    fn merging_and_comparing_name_leaf_keys() {
        let mut base = json!({"limits": {"a": 1, "b": 2}, "x": [1, 2]});
        merge(&mut base, json!({"limits": {"b": 3}, "x": [1]})).expect("merged");
        assert_eq!(base, json!({"limits": {"a": 1, "b": 3}, "x": [1]}));
        let mut out = Vec::new();
        differences(
            &json!({"limits": {"a": 1, "b": 2}, "x": [1, 2]}),
            &base,
            "",
            &mut out,
        );
        assert_eq!(out, vec!["limits.b".to_owned(), "x".to_owned()]);
        assert!(merge(&mut base, json!({"limits": null})).is_err());
    }

    #[test]
    fn a_change_is_checked_like_a_file() {
        let mut v = raw(&Config::default());
        merge(&mut v, json!({"limits": {"no_such_key": 1}})).expect("merged");
        let e = serde_json::from_value::<Config>(v).expect_err("unknown key refused");
        assert!(e.to_string().contains("no_such_key"), "{e}");
        let mut v = raw(&Config::default());
        set(&mut v, "self_heal.resume_below", json!(2.0));
        let c: Config = serde_json::from_value(v).expect("a config");
        assert!(c.validate().is_err());
    }
}
