//! `GET /admin/cache` (statistics per tier), `DELETE /admin/cache[?tier=...]`
//! (empty every tier, or one).
//!
//! Bodies list their fields in alphabetical order, the order clients have always
//! seen them in.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use osprey_engine::cache::{Cleared, Tier, TierSnapshot};
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState};

#[derive(Debug, Serialize)]
pub struct CacheStatsBody {
    enabled: bool,
    in_flight: usize,
    tiers: Vec<TierSnapshot>,
}

#[derive(Debug, Serialize)]
pub struct CacheClearedBody {
    cleared: ClearedTiers,
    enabled: bool,
}

/// What was emptied; `{}` without a cache.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ClearedTiers {
    Tiers(Cleared),
    NoCache {},
}

pub async fn cache_stats(State(state): State<AppState>) -> Result<Json<CacheStatsBody>, ApiError> {
    let pipeline = state.engine()?;
    let cache = pipeline.cache();
    Ok(Json(CacheStatsBody {
        enabled: cache.is_some(),
        in_flight: pipeline.in_flight(),
        tiers: cache.map(|c| c.stats().tiers).unwrap_or_default(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearQuery {
    tier: Option<String>,
}

pub async fn cache_clear(
    State(state): State<AppState>,
    query: Result<Query<ClearQuery>, QueryRejection>,
) -> Result<Json<CacheClearedBody>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let tier = match query.tier.as_deref() {
        None => None,
        Some("memory") => Some(Tier::Memory),
        Some("disk") => Some(Tier::Disk),
        Some("redis") => Some(Tier::Redis),
        Some(other) => {
            return Err(ApiError::BadQuery(format!(
                "tier must be memory, disk or redis, not `{other}`"
            )));
        }
    };
    let pipeline = state.engine()?;
    let Some(cache) = pipeline.cache() else {
        if let Some(t) = tier {
            return Err(tier_off(t));
        }
        return Ok(Json(CacheClearedBody {
            cleared: ClearedTiers::NoCache {},
            enabled: false,
        }));
    };
    let cleared = match tier {
        None => cache.clear().await?,
        Some(t) => cache.clear_tier(t).await?.ok_or_else(|| tier_off(t))?,
    };
    tracing::info!(?cleared, "cache cleared");
    Ok(Json(CacheClearedBody {
        cleared: ClearedTiers::Tiers(cleared),
        enabled: true,
    }))
}

fn tier_off(t: Tier) -> ApiError {
    ApiError::Invalid(format!("the {} cache tier is not enabled", t.label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_keep_their_shape() {
        let none = CacheClearedBody {
            cleared: ClearedTiers::NoCache {},
            enabled: false,
        };
        assert_eq!(
            serde_json::to_string(&none).unwrap_or_default(),
            r#"{"cleared":{},"enabled":false}"#
        );
        let some = CacheClearedBody {
            cleared: ClearedTiers::Tiers(Cleared {
                disk: false,
                memory: true,
                redis_keys: None,
            }),
            enabled: true,
        };
        assert_eq!(
            serde_json::to_string(&some).unwrap_or_default(),
            r#"{"cleared":{"disk":false,"memory":true,"redis_keys":null},"enabled":true}"#
        );
    }
}
