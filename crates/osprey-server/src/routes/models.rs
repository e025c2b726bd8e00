//! `GET /v1/models` (OpenAI's list) and the model repository's admin routes:
//! `POST /admin/models`, `DELETE /admin/models/{name}[@version]` and
//! `POST /admin/models/{name}[@version]/reload`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use osprey_engine::{Backing, Served};
use serde::Serialize;

use crate::input::read_json;
use crate::{ApiError, AppState, ModelSpec};

/// One model in OpenAI's shape, with what Osprey knows of it besides.
#[derive(Serialize)]
pub struct ModelCard {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    name: String,
    version: String,
    task: osprey_engine::Task,
    #[serde(skip_serializing_if = "Option::is_none")]
    traffic: Option<f64>,
    /// Dimensions, labels, limits, backend and revision; a tensor model's inputs
    /// and outputs.
    details: Details,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Details {
    Text(osprey_engine::ModelInfo),
    Tensor(osprey_engine::TensorInfo),
    Generate(osprey_engine::generate::GeneratorInfo),
}

fn card(m: &Served) -> ModelCard {
    ModelCard {
        id: m.name.clone(),
        object: "model",
        created: m.created,
        owned_by: "osprey",
        name: m.name.clone(),
        version: m.version.clone(),
        task: m.task(),
        traffic: m.traffic,
        details: match &m.backing {
            Backing::Text(p) => Details::Text(p.engine().live_info()),
            Backing::Tensor(t) => Details::Tensor(t.info().clone()),
            Backing::Generate(g) => Details::Generate(g.info().clone()),
        },
    }
}

#[derive(Serialize)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelCard>,
}

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let models = state.models.registry().all();
    Json(ModelList {
        object: "list",
        data: models.iter().map(|m| card(m)).collect(),
    })
}

pub async fn one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelCard>, ApiError> {
    let served = state.models.registry().get(&name)?;
    Ok(Json(card(&served)))
}

pub async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ModelCard>), ApiError> {
    let spec: ModelSpec = read_json(&state, &headers, body).await?;
    let served = state.models.add(&spec).await?;
    Ok((StatusCode::CREATED, Json(card(&served))))
}

#[derive(Serialize)]
pub struct Removed {
    removed: Vec<String>,
}

pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let removed = state.models.remove(&name)?;
    Ok(Json(Removed { removed }))
}

pub async fn reload(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelCard>, ApiError> {
    let served = state.models.reload(&name, None).await?;
    Ok(Json(card(&served)))
}
