//! Memory defence: above `self_heal.max_rss_mb` the memory cache tier shrinks
//! (its admission policy keeps what it values most), stops taking new entries,
//! and the allocator gives free memory back to the system; fills resume once the
//! resident size is back under `resume_below` of the ceiling. The server keeps
//! serving throughout: only what the cache remembers is given up.

use std::time::Duration;

use osprey_engine::cache::MemoryTier;
use osprey_metrics::process::Proc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;

const MIB: u64 = 1024 * 1024;

/// The `[self_heal]` section; every key changes live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfHealConfig {
    /// Resident memory the process should stay under (MiB); 0: no ceiling.
    pub max_rss_mb: u64,
    /// How often resident memory is read (milliseconds).
    pub check_interval_ms: u64,
    /// New cache entries are taken again once resident memory is below this
    /// share of the ceiling.
    pub resume_below: f64,
    /// Each time memory is over the ceiling, the memory tier keeps this share of
    /// what it holds (0: it is emptied).
    pub keep_share: f64,
}

impl Default for SelfHealConfig {
    fn default() -> Self {
        Self {
            max_rss_mb: 0,
            check_interval_ms: 1000,
            resume_below: 0.9,
            keep_share: 0.5,
        }
    }
}

impl SelfHealConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.check_interval_ms < 10 {
            return Err(format!(
                "self_heal.check_interval_ms must be at least 10, not {}",
                self.check_interval_ms
            ));
        }
        if !(self.resume_below > 0.0 && self.resume_below <= 1.0) {
            return Err(format!(
                "self_heal.resume_below must be above 0 and at most 1, not {}",
                self.resume_below
            ));
        }
        if !(0.0..1.0).contains(&self.keep_share) {
            return Err(format!(
                "self_heal.keep_share must be at least 0 and below 1, not {}",
                self.keep_share
            ));
        }
        Ok(())
    }
}

/// What one reading of memory calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Over the ceiling: shrink the tier to `keep` bytes and stop its fills.
    Shed {
        keep: u64,
    },
    /// Over the ceiling with nothing left in the tier: only give memory back.
    Trim,
    /// Back under `resume_below` of the ceiling while fills are stopped: they
    /// resume, the tier at the size it was shrunk to.
    Resume,
    /// The ceiling lifted: fills resume and the tier gets its configured size.
    Restore,
    Nothing,
}

/// The memory tier as the guard sees it.
#[derive(Debug, Clone, Copy, Default)]
struct TierState {
    bytes: Option<u64>,
    paused: bool,
    /// Held below its configured size.
    shrunk: bool,
}

fn decide(cfg: &SelfHealConfig, rss: u64, tier: TierState) -> Step {
    let TierState {
        bytes: cache_bytes,
        paused,
        shrunk,
    } = tier;
    let limit = cfg.max_rss_mb.saturating_mul(MIB);
    if limit == 0 {
        return if paused || shrunk {
            Step::Restore
        } else {
            Step::Nothing
        };
    }
    if rss > limit {
        return match cache_bytes {
            Some(held) if held > 0 => Step::Shed {
                keep: (held as f64 * cfg.keep_share) as u64,
            },
            _ => Step::Trim,
        };
    }
    if paused && (rss as f64) < limit as f64 * cfg.resume_below {
        return Step::Resume;
    }
    Step::Nothing
}

/// Watches resident memory while the server runs, as `state.self_heal` says.
pub fn spawn_memory_guard(state: AppState) {
    tokio::spawn(async move {
        // Said once per episode over the ceiling, not every reading.
        let mut trimmed_in_vain = false;
        loop {
            let cfg = state.self_heal.load_full();
            tokio::time::sleep(Duration::from_millis(cfg.check_interval_ms.max(10))).await;
            let tier = state
                .models
                .cache()
                .and_then(|c| c.memory().map(|_| c.clone()));
            let memory = tier.as_ref().and_then(|c| c.memory());
            let paused = memory.is_some_and(MemoryTier::fills_paused);
            let shrunk = memory.is_some_and(|m| m.capacity() < m.configured());
            // No ceiling and nothing to restore: no reading is needed.
            if cfg.max_rss_mb == 0 && !paused && !shrunk {
                continue;
            }
            let Some(rss) = Proc::This.rss_bytes() else {
                continue;
            };
            let held = memory.map(MemoryTier::bytes);
            let seen = TierState {
                bytes: held,
                paused,
                shrunk,
            };
            let step = decide(&cfg, rss, seen);
            let limit_mb = cfg.max_rss_mb;
            match step {
                Step::Nothing => {}
                Step::Resume => {
                    if let Some(m) = memory {
                        m.pause_fills(false);
                    }
                    trimmed_in_vain = false;
                    state.actions.record(
                        "cache_fills_resumed",
                        None,
                        format!("resident memory back under the ceiling of {limit_mb} MiB"),
                        json!({"rss_mb": rss / MIB, "max_rss_mb": limit_mb}),
                    );
                }
                Step::Restore => {
                    let Some(cache) = tier.clone() else { continue };
                    tokio::task::spawn_blocking(move || {
                        if let Some(m) = cache.memory() {
                            m.resize(m.configured(), m.ttl_secs());
                            m.pause_fills(false);
                        }
                    })
                    .await
                    .ok();
                    trimmed_in_vain = false;
                    state.actions.record(
                        "cache_restored",
                        None,
                        "no memory ceiling: the memory cache tier takes new entries at its \
                         configured size again",
                        json!({"rss_mb": rss / MIB}),
                    );
                }
                Step::Shed { keep } => {
                    let Some(cache) = tier.clone() else { continue };
                    let before = held.unwrap_or(0);
                    let after = tokio::task::spawn_blocking(move || {
                        let m = cache.memory()?;
                        m.pause_fills(true);
                        m.resize(keep, m.ttl_secs());
                        osprey_engine::release_freed_memory();
                        Some((m.bytes(), Proc::This.rss_bytes().unwrap_or(0)))
                    })
                    .await
                    .ok()
                    .flatten();
                    let (bytes, rss_after) = after.unwrap_or((0, 0));
                    state.actions.record(
                        "cache_shrunk",
                        None,
                        format!(
                            "resident memory {} MiB over the ceiling of {limit_mb} MiB: \
                             the memory cache tier shrank and stopped taking new entries",
                            rss / MIB
                        ),
                        json!({
                            "rss_mb": rss / MIB,
                            "rss_mb_after": rss_after / MIB,
                            "max_rss_mb": limit_mb,
                            "cache_bytes_before": before,
                            "cache_bytes_after": bytes,
                            "cache_capacity_bytes": keep,
                        }),
                    );
                }
                Step::Trim => {
                    if let Some(m) = memory {
                        m.pause_fills(true);
                    }
                    tokio::task::spawn_blocking(osprey_engine::release_freed_memory)
                        .await
                        .ok();
                    if !trimmed_in_vain {
                        trimmed_in_vain = true;
                        state.actions.record(
                            "memory_released",
                            None,
                            format!(
                                "resident memory {} MiB over the ceiling of {limit_mb} MiB \
                                 with the memory cache empty: free memory given back to the \
                                 system; the rest is the models' and requests' own",
                                rss / MIB
                            ),
                            json!({"rss_mb": rss / MIB, "max_rss_mb": limit_mb}),
                        );
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_rss_mb: u64) -> SelfHealConfig {
        SelfHealConfig {
            max_rss_mb,
            ..SelfHealConfig::default()
        }
    }

    #[test]
    fn sheds_over_the_ceiling_and_resumes_with_room() {
        let c = cfg(100);
        let tier = |bytes: Option<u64>, paused: bool| TierState {
            bytes,
            paused,
            shrunk: paused,
        };
        assert_eq!(decide(&c, 50 * MIB, tier(Some(10), false)), Step::Nothing);
        assert_eq!(
            decide(&c, 101 * MIB, tier(Some(1000), false)),
            Step::Shed { keep: 500 }
        );
        assert_eq!(decide(&c, 101 * MIB, tier(Some(0), true)), Step::Trim);
        assert_eq!(decide(&c, 101 * MIB, tier(None, false)), Step::Trim);
        // Between the resume line and the ceiling: still paused.
        assert_eq!(decide(&c, 95 * MIB, tier(Some(10), true)), Step::Nothing);
        assert_eq!(decide(&c, 80 * MIB, tier(Some(10), true)), Step::Resume);
        // The ceiling lifted gives the tier back its size.
        assert_eq!(
            decide(&cfg(0), 500 * MIB, tier(Some(10), true)),
            Step::Restore
        );
        let resumed_small = TierState {
            bytes: Some(10),
            paused: false,
            shrunk: true,
        };
        assert_eq!(decide(&cfg(0), 500 * MIB, resumed_small), Step::Restore);
        assert_eq!(
            decide(&cfg(0), 500 * MIB, tier(Some(10), false)),
            Step::Nothing
        );
    }

    #[test]
    fn bad_values_are_named() {
        for bad in [
            SelfHealConfig {
                check_interval_ms: 1,
                ..cfg(1)
            },
            SelfHealConfig {
                resume_below: 0.0,
                ..cfg(1)
            },
            SelfHealConfig {
                keep_share: 1.0,
                ..cfg(1)
            },
        ] {
            let e = bad.validate().expect_err("refused");
            assert!(e.starts_with("self_heal."), "{e}");
        }
        assert!(SelfHealConfig::default().validate().is_ok());
    }
}
