//! The server changing its own settings, or an operator changing them live.

use super::{Event, name};

/// A change the server made to itself or was told to make
/// (`osprey_self_heal_actions_total{action}`), logged with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionTaken<'a> {
    pub action: &'static str,
    pub model: Option<&'a str>,
    pub reason: &'a str,
}

impl Event for ActionTaken<'_> {
    fn emit(self) {
        metrics::counter!(name::SELF_HEAL_ACTIONS, "action" => self.action).increment(1);
        tracing::info!(
            action = self.action,
            model = self.model,
            reason = self.reason,
            "self-tuning action"
        );
    }
}

/// Replicas a model runs now (`osprey_replicas{model}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicasRunning<'a> {
    pub model: &'a str,
    pub replicas: usize,
}

impl Event for ReplicasRunning<'_> {
    fn emit(self) {
        metrics::gauge!(name::REPLICAS, "model" => self.model.to_owned()).set(self.replicas as f64);
    }
}
