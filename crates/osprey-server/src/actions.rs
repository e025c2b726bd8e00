//! What the server changed about itself, and what operators changed live: the
//! last [`KEPT`] actions, each with its reason, for `GET /admin/actions` and the
//! dashboard. Each is also counted (`osprey_self_heal_actions_total{action}`) and
//! logged.

use std::collections::VecDeque;
use std::sync::Mutex;

use osprey_metrics::event::{ActionTaken, Event};
use serde::Serialize;

/// Actions kept for `/admin/actions`.
pub const KEPT: usize = 100;

/// One change and why it was made.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// Counts actions since start; the newest has the highest.
    pub id: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// What was done: `config_changed`, `cache_shrunk`, `replica_added`, ...
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub reason: String,
    /// The figures the decision was made on, or what changed.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

#[derive(Default)]
pub struct Actions {
    kept: Mutex<(u64, VecDeque<Action>)>,
}

impl Actions {
    /// Records an action: counted, logged and kept.
    pub fn record(
        &self,
        action: &'static str,
        model: Option<&str>,
        reason: impl Into<String>,
        detail: serde_json::Value,
    ) {
        let reason = reason.into();
        ActionTaken {
            action,
            model,
            reason: &reason,
        }
        .emit();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.0 += 1;
        let id = kept.0;
        if kept.1.len() == KEPT {
            kept.1.pop_front();
        }
        kept.1.push_back(Action {
            id,
            at_ms: osprey_observe::unix_ms(),
            action,
            model: model.map(str::to_owned),
            reason,
            detail,
        });
    }

    /// The kept actions, newest first.
    pub fn recent(&self) -> Vec<Action> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.1.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hundred_newest_first() {
        let a = Actions::default();
        for i in 0..(KEPT + 5) {
            a.record(
                "config_changed",
                None,
                format!("change {i}"),
                serde_json::Value::Null,
            );
        }
        let recent = a.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].id, (KEPT + 5) as u64);
        assert_eq!(recent[0].reason, format!("change {}", KEPT + 4));
        assert_eq!(recent[KEPT - 1].id, 6);
    }
}
