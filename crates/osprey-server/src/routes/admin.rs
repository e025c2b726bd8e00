//! `GET /admin/cache` (statistics per tier) and `DELETE /admin/cache` (empty every tier).
//!
//! Bodies list their fields in alphabetical order, the order clients have always
//! seen them in.

use axum::Json;
use axum::extract::State;
use osprey_engine::cache::{Cleared, TierSnapshot};
use serde::Serialize;

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

pub async fn cache_clear(
    State(state): State<AppState>,
) -> Result<Json<CacheClearedBody>, ApiError> {
    let pipeline = state.engine()?;
    let Some(cache) = pipeline.cache() else {
        return Ok(Json(CacheClearedBody {
            cleared: ClearedTiers::NoCache {},
            enabled: false,
        }));
    };
    let cleared = cache.clear().await?;
    tracing::info!(?cleared, "cache cleared");
    Ok(Json(CacheClearedBody {
        cleared: ClearedTiers::Tiers(cleared),
        enabled: true,
    }))
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
