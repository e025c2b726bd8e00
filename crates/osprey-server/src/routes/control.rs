//! Runtime control: `GET`/`PUT /admin/config`, `GET /admin/actions` and
//! `POST /admin/warmup`.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use osprey_engine::Backing;
use serde::Serialize;
use serde_json::json;

use crate::input::read_json;
use crate::{Action, ApiError, AppState};

/// `GET /admin/config`: the effective configuration, secrets hidden.
pub async fn config(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(c) = &state.control {
        return Ok(Json(c.effective()));
    }
    state
        .effective_config
        .as_ref()
        .map(|c| Json(c.as_ref().clone()))
        .ok_or_else(|| ApiError::NotFound("no configuration was loaded".into()))
}

#[derive(Debug, Serialize)]
pub struct Changed {
    changed: Vec<serde_json::Value>,
}

/// `PUT /admin/config`: a partial document merged into the running
/// configuration; 422 naming any key that cannot change live, and nothing applied.
pub async fn change_config(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Changed>, ApiError> {
    let patch: serde_json::Value = read_json(&state, &headers, body).await?;
    let control = state
        .control
        .clone()
        .ok_or_else(|| ApiError::NotFound("this server's configuration is fixed".into()))?;
    if !patch.is_object() {
        return Err(ApiError::Invalid(
            "the body must be a JSON object: a part of the configuration, such as \
             {\"limits\": {\"max_in_flight\": 64}}"
                .into(),
        ));
    }
    let changed = control.change(&state, patch).await?;
    if !changed.is_empty() {
        state.actions.record(
            "config_changed",
            None,
            "PUT /admin/config",
            json!({ "changed": changed }),
        );
    }
    Ok(Json(Changed { changed }))
}

#[derive(Debug, Serialize)]
pub struct ActionsBody {
    actions: Vec<Action>,
}

/// `GET /admin/actions`: the last 100 changes, newest first.
pub async fn actions(State(state): State<AppState>) -> Json<ActionsBody> {
    Json(ActionsBody {
        actions: state.actions.recent(),
    })
}

#[derive(Debug, Serialize)]
pub struct WarmedModel {
    model: String,
    batches: usize,
    ms: u64,
}

#[derive(Debug, Serialize)]
pub struct WarmedBody {
    models: Vec<WarmedModel>,
}

/// `POST /admin/warmup`: every text model runs its warm-up batches again,
/// through its queue beside live traffic.
pub async fn warmup(State(state): State<AppState>) -> Result<Json<WarmedBody>, ApiError> {
    let mut models = Vec::new();
    for m in state.models.registry().all().iter() {
        let Backing::Text(p) = &m.backing else {
            continue;
        };
        let started = Instant::now();
        let batches = p.engine().warm_up_again().await?;
        models.push(WarmedModel {
            model: m.label.clone(),
            batches,
            ms: started.elapsed().as_millis() as u64,
        });
    }
    if models.is_empty() {
        return Err(ApiError::NotReady);
    }
    state.actions.record(
        "warmed_up",
        None,
        "POST /admin/warmup",
        serde_json::to_value(&models).unwrap_or_default(),
    );
    Ok(Json(WarmedBody { models }))
}
