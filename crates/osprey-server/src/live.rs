//! Settings applied while serving: what `PUT /admin/config` and SIGHUP may
//! change without a restart, and how each running part takes them.
//!
//! The binary owns the configuration file's shape; it merges a change into the
//! whole configuration, checks it, and hands the server the sections below
//! through [`ConfigControl`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use osprey_engine::cache::{CacheConfig, TieredCache};
use osprey_engine::{Backing, BatchingConfig};

use crate::observe::{AlertsConfig, SloConfig};
use crate::self_heal::SelfHealConfig;
use crate::{ApiError, AppState, AuthConfig, LimitsConfig};

/// Every section that changes live, as the new configuration has it.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub slo: SloConfig,
    pub alerts: AlertsConfig,
    pub batching: BatchingConfig,
    pub cache: CacheConfig,
    pub self_heal: SelfHealConfig,
    pub autoscale: crate::AutoscaleConfig,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Keys whose value cannot change while serving.
    #[error(
        "these settings cannot change while serving; restart with them in the file instead: {}",
        .0.join(", ")
    )]
    NotLive(Vec<String>),
    /// Not a configuration (an unknown key, a wrong type, a value out of range).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotLive(_) | ChangeError::Invalid(_) => ApiError::Invalid(e.to_string()),
            ChangeError::Failed(m) => ApiError::Invalid(m),
        }
    }
}

/// The configuration as the binary holds it: read whole, and changed by a
/// partial document.
pub trait ConfigControl: Send + Sync {
    /// The effective configuration, secrets hidden.
    fn effective(&self) -> serde_json::Value;

    /// Merges `patch` (a partial configuration document) into the running one,
    /// applies it, and returns what changed as `[{"key", "from", "to"}]`.
    fn change<'a>(
        &'a self,
        state: &'a AppState,
        patch: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<serde_json::Value>, ChangeError>> + Send + 'a>>;
}

impl AppState {
    /// Applies `s` to every running part: protection (keys, rate limits), each
    /// model's batch budgets and admission, the SLOs and alert rules, the cache
    /// tiers' sizes and lifetimes, and the memory ceiling. `reload_keys` builds
    /// the protection again even with the same limits (SIGHUP: the auth settings
    /// or the keys file may have changed).
    pub async fn apply_live(&self, s: &LiveSettings, reload_keys: bool) -> Result<(), ChangeError> {
        let current = self.protection.load_full();
        if reload_keys || current.limits() != &s.limits {
            // Reads the keys and JWT key files: off the runtime.
            let (auth, limits) = (s.auth.clone(), s.limits.clone());
            let next = tokio::task::spawn_blocking(move || current.renewed(&auth, &limits))
                .await
                .map_err(|_| ChangeError::Failed("reading the keys stopped".into()))?
                .map_err(|e| ChangeError::Invalid(e.to_string()))?;
            self.protection.store(Arc::new(next));
        }
        self.models.retune(&s.batching, s.limits.admission());
        self.observe.set_rules(s.slo.clone(), s.alerts.clone());
        if let Some(cache) = self.models.cache().cloned() {
            retune_cache(cache, &s.cache).await;
        }
        self.self_heal.store(Arc::new(s.self_heal.clone()));
        self.autoscale.store(Arc::new(s.autoscale.clone()));
        Ok(())
    }
}

/// Resizing the memory tier walks its entries: off the runtime.
async fn retune_cache(cache: Arc<TieredCache>, c: &CacheConfig) {
    let (memory, disk, redis_ttl) = (c.memory.clone(), c.disk.clone(), c.redis.ttl_secs);
    tokio::task::spawn_blocking(move || cache.retune(&memory, &disk, redis_ttl))
        .await
        .ok();
}

impl crate::Models {
    /// New batch budgets and admission settings for every served model, and for
    /// those loaded from now on.
    pub fn retune(&self, batching: &BatchingConfig, admission: osprey_engine::AdmissionConfig) {
        self.set_base_batching(batching, admission);
        for m in self.registry().all().iter() {
            match &m.backing {
                Backing::Text(p) => p.engine().retune(batching, admission),
                Backing::Tensor(t) => t.admission().set_config(admission),
                Backing::Generate(_) => {}
            }
        }
    }
}
