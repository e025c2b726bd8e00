//! Runtime control: `GET`/`PUT /admin/config`, `GET /admin/actions`,
//! `POST /admin/warmup` and `POST`/`GET /admin/cache/warm`.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use osprey_engine::Backing;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cache_warm::WarmProgress;
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

/// The body of `POST /admin/cache/warm`: texts, or a file of them on the
/// server, one per line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    #[serde(default)]
    texts: Vec<String>,
    file: Option<std::path::PathBuf>,
    /// The model whose cache entries to fill; the default model when unset.
    model: Option<String>,
}

/// Largest file of texts read for a warm-up.
const MAX_WARM_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// `POST /admin/cache/warm`: 202 with the job's progress; 409 while one runs.
pub async fn cache_warm(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<WarmProgress>), ApiError> {
    let asked: WarmRequest = read_json(&state, &headers, body).await?;
    let (label, pipeline) = match &asked.model {
        Some(name) => {
            let served = state.models.registry().get(name)?;
            (served.label.clone(), served.pipeline()?.clone())
        }
        None => {
            let p = state.engine()?;
            (p.info().id.clone(), p)
        }
    };
    if pipeline.cache().is_none() {
        return Err(ApiError::Invalid(
            "no cache tier is enabled: there is nothing to warm".into(),
        ));
    }
    let mut texts = asked.texts;
    if let Some(path) = &asked.file {
        texts.extend(read_lines(path).await?);
    }
    if texts.is_empty() {
        return Err(ApiError::Invalid(
            "give `texts` (a list) or `file` (a path on the server, one text per line)".into(),
        ));
    }
    let started = state
        .warming
        .start(label, pipeline, texts, state.config.max_input_chars)
        .ok_or_else(|| {
            ApiError::Conflict("a cache warm-up is running; see GET /admin/cache/warm".into())
        })?;
    state.actions.record(
        "cache_warm_started",
        Some(&started.model),
        "POST /admin/cache/warm",
        json!({ "texts": started.total }),
    );
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// The non-empty lines of a file on the server, read off the runtime.
async fn read_lines(path: &std::path::Path) -> Result<Vec<String>, ApiError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_lines_now(&path))
        .await
        .map_err(|_| ApiError::Invalid("reading the file stopped".into()))?
}

fn read_lines_now(path: &std::path::Path) -> Result<Vec<String>, ApiError> {
    let unreadable = |e: std::io::Error| {
        ApiError::Invalid(format!("the file {} cannot be read: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() || meta.len() > MAX_WARM_FILE_BYTES {
        return Err(ApiError::Invalid(format!(
            "{} must be a file of at most {MAX_WARM_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::Invalid(format!("{} is not UTF-8 text", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `GET /admin/cache/warm`: the last job's progress.
pub async fn cache_warm_progress(State(state): State<AppState>) -> Json<WarmProgress> {
    Json(state.warming.progress())
}

/// `GET /admin/recommendations`: settings worth changing, with the figures.
pub async fn recommendations(
    State(state): State<AppState>,
) -> Json<Vec<crate::recommend::Recommendation>> {
    Json(crate::recommend::recommend(&crate::recommend::gather(
        &state,
    )))
}
