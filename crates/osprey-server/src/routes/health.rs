//! Liveness and readiness. Ready means the model is loaded and warmed up.
//!
//! Bodies list their fields in alphabetical order, the order clients have always
//! seen them in.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use osprey_engine::Pipeline;
use osprey_engine::cache::{HealthStatus, TierHealth};
use serde::Serialize;

use crate::AppState;
use crate::protect::AnonymousProbe;

#[derive(Debug, Serialize)]
pub struct Live {
    status: &'static str,
    uptime_seconds: f64,
}

/// The server as a whole: `ready`, `degraded` (ready, a cache tier is not),
/// `not_ready`, or `draining` (shutting down: still serving, taking no new work
/// from load balancers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    Degraded,
    NotReady,
    Draining,
}

/// One component's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// The model: loaded and warmed up.
    Ready,
    /// The model: still loading.
    Loading,
    /// The model: could not be loaded.
    Failed,
    /// The queue or a cache tier: fine.
    Ok,
    /// The queue: over 80% full.
    Busy,
    /// The queue: full, refusing work.
    Saturated,
    /// A cache tier: skipped or failing; lookups miss.
    Degraded,
}

impl From<HealthStatus> for ComponentStatus {
    fn from(s: HealthStatus) -> Self {
        match s {
            HealthStatus::Ok => Self::Ok,
            HealthStatus::Degraded => Self::Degraded,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    components: BTreeMap<String, Component>,
    status: ReadyStatus,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Component {
    Model(ModelComponent),
    Queue(QueueComponent),
    /// A status and why: the model while not ready, and cache tiers.
    Plain(PlainComponent),
    /// A status alone (anonymous probes with auth on).
    Status(StatusOnly),
}

#[derive(Debug, Serialize)]
pub struct StatusOnly {
    status: ComponentStatus,
}

#[derive(Debug, Serialize)]
pub struct ModelComponent {
    backend: &'static str,
    id: String,
    reason: String,
    revision: String,
    status: ComponentStatus,
}

#[derive(Debug, Serialize)]
pub struct QueueComponent {
    capacity_tokens: usize,
    queued_tokens: usize,
    reason: String,
    saturation: f64,
    status: ComponentStatus,
}

#[derive(Debug, Serialize)]
pub struct PlainComponent {
    reason: String,
    status: ComponentStatus,
}

pub async fn live(State(state): State<AppState>) -> Json<Live> {
    Json(Live {
        status: "live",
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    })
}

pub async fn ready(
    State(state): State<AppState>,
    anonymous: Option<Extension<AnonymousProbe>>,
) -> (StatusCode, Json<Readiness>) {
    let (mut status, Json(mut body)) = readiness_of(&state);
    // Collections open beside the models; not ready until they serve too.
    if let Some(slot) = &state.collections
        && !state.is_draining()
    {
        let (component, ok) = match slot.get() {
            Some(Ok(_)) => (
                PlainComponent {
                    reason: "open".into(),
                    status: ComponentStatus::Ok,
                },
                true,
            ),
            Some(Err(e)) => (
                PlainComponent {
                    reason: e.clone(),
                    status: ComponentStatus::Failed,
                },
                false,
            ),
            None => (
                PlainComponent {
                    reason: "loading the collections' indexes".into(),
                    status: ComponentStatus::Loading,
                },
                false,
            ),
        };
        if !ok {
            status = StatusCode::SERVICE_UNAVAILABLE;
            body.status = ReadyStatus::NotReady;
        }
        body.components
            .insert("collections".to_owned(), Component::Plain(component));
    }
    if anonymous.is_some() {
        body.redact();
    }
    (status, Json(body))
}

impl Readiness {
    /// Statuses only: what a probe needs, nothing about paths, errors, revisions
    /// or load that an anonymous caller could use.
    fn redact(&mut self) {
        for component in self.components.values_mut() {
            let status = match component {
                Component::Model(m) => m.status,
                Component::Queue(q) => q.status,
                Component::Plain(p) => p.status,
                Component::Status(s) => s.status,
            };
            *component = Component::Status(StatusOnly { status });
        }
    }
}

fn readiness_of(state: &AppState) -> (StatusCode, Json<Readiness>) {
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                components: BTreeMap::new(),
                status: ReadyStatus::Draining,
            }),
        );
    }
    // Ready once every configured model serves, not just the first.
    let loading = state.models.registry().still_loading();
    match state.engine.get().filter(|_| loading.is_empty()) {
        // A degraded cache tier slows nothing down and loses nothing: still ready.
        Some(pipeline) => (StatusCode::OK, Json(readiness(&pipeline))),
        // Only generation or tensor models: no text pipeline, no shared queue.
        None if state.serves_a_model() => {
            let model = Component::Plain(PlainComponent {
                reason: format!("{} loaded", served_list(&state.models.registry().all())),
                status: ComponentStatus::Ready,
            });
            (
                StatusCode::OK,
                Json(Readiness {
                    components: BTreeMap::from([("model".to_owned(), model)]),
                    status: ReadyStatus::Ready,
                }),
            )
        }
        None => {
            let (status, reason) = match state.engine.failure() {
                Some(f) => (ComponentStatus::Failed, f.to_owned()),
                None if loading.len() > 1 || state.engine.get().is_some() => (
                    ComponentStatus::Loading,
                    format!("loading and warming up: {}", loading.join(", ")),
                ),
                None => (
                    ComponentStatus::Loading,
                    "loading and warming up the model".to_owned(),
                ),
            };
            let model = Component::Plain(PlainComponent { reason, status });
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    components: BTreeMap::from([("model".to_owned(), model)]),
                    status: ReadyStatus::NotReady,
                }),
            )
        }
    }
}

/// `name@version (task)` of each served model.
fn served_list(served: &[std::sync::Arc<osprey_engine::Served>]) -> String {
    served
        .iter()
        .map(|m| format!("{} ({})", m.label, m.task()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn readiness(pipeline: &Pipeline) -> Readiness {
    let info = pipeline.info();
    let mut components = BTreeMap::new();
    components.insert(
        "model".to_owned(),
        Component::Model(ModelComponent {
            backend: info.backend,
            id: info.id.clone(),
            reason: format!("{} loaded and warmed up on {}", info.id, info.backend),
            revision: info.revision.clone(),
            status: ComponentStatus::Ready,
        }),
    );
    components.insert(
        "queue".to_owned(),
        Component::Queue(queue(
            pipeline.engine().queued_tokens(),
            info.max_queue_tokens,
        )),
    );
    let mut degraded = false;
    if let Some(cache) = pipeline.cache() {
        for (tier, health) in cache.health() {
            degraded |= health.status != HealthStatus::Ok;
            components.insert(
                format!("cache_{}", tier.label()),
                Component::Plain(cache_tier(health)),
            );
        }
    }
    Readiness {
        components,
        status: if degraded {
            ReadyStatus::Degraded
        } else {
            ReadyStatus::Ready
        },
    }
}

fn queue(queued: usize, capacity: usize) -> QueueComponent {
    let load = queued as f64 / capacity.max(1) as f64;
    // Busy warns before the queue starts refusing work.
    let status = match load {
        l if l >= 1.0 => ComponentStatus::Saturated,
        l if l >= 0.8 => ComponentStatus::Busy,
        _ => ComponentStatus::Ok,
    };
    QueueComponent {
        capacity_tokens: capacity,
        queued_tokens: queued,
        reason: format!(
            "{queued} of {capacity} tokens queued ({:.0}%)",
            load * 100.0
        ),
        saturation: load,
        status,
    }
}

fn cache_tier(health: TierHealth) -> PlainComponent {
    PlainComponent {
        reason: health.reason.unwrap_or_else(|| "answering".to_owned()),
        status: health.status.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_the_strings_clients_know() {
        let names = [
            (ComponentStatus::Ready, "ready"),
            (ComponentStatus::Loading, "loading"),
            (ComponentStatus::Failed, "failed"),
            (ComponentStatus::Ok, "ok"),
            (ComponentStatus::Busy, "busy"),
            (ComponentStatus::Saturated, "saturated"),
            (ComponentStatus::Degraded, "degraded"),
        ];
        for (status, name) in names {
            assert_eq!(serde_json::to_value(status).ok(), Some(name.into()));
        }
        assert_eq!(
            serde_json::to_string(&ReadyStatus::NotReady)
                .ok()
                .as_deref(),
            Some("\"not_ready\"")
        );
        assert_eq!(
            serde_json::to_string(&ReadyStatus::Draining)
                .ok()
                .as_deref(),
            Some("\"draining\"")
        );
    }

    #[test]
    fn the_queue_turns_busy_at_80_percent_and_saturated_when_full() {
        assert_eq!(queue(0, 100).status, ComponentStatus::Ok);
        assert_eq!(queue(80, 100).status, ComponentStatus::Busy);
        assert_eq!(queue(100, 100).status, ComponentStatus::Saturated);
        assert_eq!(queue(5, 0).status, ComponentStatus::Saturated);
        let q = serde_json::to_string(&queue(1, 4)).unwrap_or_default();
        assert_eq!(
            q,
            r#"{"capacity_tokens":4,"queued_tokens":1,"reason":"1 of 4 tokens queued (25%)","saturation":0.25,"status":"ok"}"#
        );
    }

    #[test]
    fn a_cache_tier_without_a_reason_is_answering() {
        let c = serde_json::to_string(&cache_tier(TierHealth::ok())).unwrap_or_default();
        assert_eq!(c, r#"{"reason":"answering","status":"ok"}"#);
        let c =
            serde_json::to_string(&cache_tier(TierHealth::degraded("down"))).unwrap_or_default();
        assert_eq!(c, r#"{"reason":"down","status":"degraded"}"#);
    }
}
