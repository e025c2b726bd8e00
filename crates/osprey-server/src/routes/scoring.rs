//! Classification and reranking: `POST /predict` and `POST /rerank` in
//! text-embeddings-inference's shapes, and `POST /v1/rerank` in the Cohere and
//! Jina shape that LangChain, LlamaIndex and Haystack send.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use osprey_engine::{EmbedOptions, Embedded, Served, Task, Text};
use osprey_wire::{CohereRerankRequest, PredictRequest, RerankRequest, Sequence};
use serde::Serialize;

use super::Call;
use crate::input::read_json;
use crate::observe::Timing;
use crate::{ApiError, AppState};

/// A classifier or cross-encoder's raw outputs: no normalization, no cut.
fn logits_options(truncate: bool) -> EmbedOptions {
    EmbedOptions {
        normalize: false,
        truncate,
        dimensions: None,
    }
}

/// Runs `items` on a model of `task` and returns its logits per item.
async fn score(
    state: &AppState,
    call: &Call,
    asked: Option<&str>,
    task: Task,
    items: &[Text],
    truncate: bool,
) -> Result<(std::sync::Arc<Served>, Embedded, Timing), ApiError> {
    crate::input::check_items(&state.config, items)?;
    let served = super::model(state, call, asked, task, items.len())?;
    let (out, timing) = super::run(state, call, &served, items, logits_options(truncate)).await?;
    Ok((served, out, timing))
}

#[derive(Serialize)]
struct Prediction<'a> {
    label: &'a str,
    score: f32,
}

pub async fn predict(
    State(state): State<AppState>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let req: PredictRequest = read_json(&state, &call.headers, body).await?;
    let (items, single) = req.inputs.into_items();
    let items: Vec<Text> = items
        .into_iter()
        .map(|s| match s {
            Sequence::One(t) => Text::One(t),
            Sequence::Pair(a, b) => Text::Pair(a, b),
        })
        .collect();
    let (served, out, timing) = score(
        &state,
        &call,
        req.model.as_deref(),
        Task::Classify,
        &items,
        req.truncate,
    )
    .await?;
    let t = Instant::now();
    let labels = &served.pipeline()?.info().labels;
    let lists: Vec<Vec<Prediction>> = out
        .entries
        .iter()
        .map(|e| {
            let scores = if req.raw_scores {
                e.vector.to_vec()
            } else {
                softmax(&e.vector)
            };
            let mut list: Vec<Prediction> = labels
                .iter()
                .zip(scores)
                .map(|(label, score)| Prediction { label, score })
                .collect();
            list.sort_by(|a, b| b.score.total_cmp(&a.score));
            list
        })
        .collect();
    let body = if single && let Some(one) = lists.first() {
        serde_json::to_vec(one)
    } else {
        serde_json::to_vec(&lists)
    }
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(super::json_response(body, timing, t, out.cache, &served))
}

#[derive(Serialize)]
struct Ranked<'a> {
    index: usize,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

pub async fn rerank(
    State(state): State<AppState>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let req: RerankRequest = read_json(&state, &call.headers, body).await?;
    let items = pairs(&req.query, &req.texts);
    let (served, out, timing) = score(
        &state,
        &call,
        req.model.as_deref(),
        Task::Rerank,
        &items,
        req.truncate,
    )
    .await?;
    let t = Instant::now();
    let scores = relevance(&out, req.raw_scores);
    let ranked: Vec<Ranked> = by_score(&scores)
        .into_iter()
        .map(|index| Ranked {
            index,
            score: scores[index],
            text: req.return_text.then(|| req.texts[index].as_str()),
        })
        .collect();
    let body = serde_json::to_vec(&ranked).map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(super::json_response(body, timing, t, out.cache, &served))
}

#[derive(Serialize)]
struct DocumentText<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct CohereResult<'a> {
    index: usize,
    relevance_score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<DocumentText<'a>>,
}

#[derive(Serialize)]
struct CohereUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct CohereResponse<'a> {
    results: Vec<CohereResult<'a>>,
    model: &'a str,
    usage: CohereUsage,
}

pub async fn cohere_rerank(
    State(state): State<AppState>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let req: CohereRerankRequest = read_json(&state, &call.headers, body).await?;
    if req.top_n == Some(0) {
        return Err(ApiError::Invalid("top_n must be at least 1".into()));
    }
    let documents: Vec<String> = req
        .documents
        .into_iter()
        .map(osprey_wire::Document::into_text)
        .collect();
    let items = pairs(&req.query, &documents);
    let (served, out, timing) = score(
        &state,
        &call,
        req.model.as_deref(),
        Task::Rerank,
        &items,
        true,
    )
    .await?;
    let t = Instant::now();
    let scores = relevance(&out, false);
    let with_documents = req.return_documents.unwrap_or(false);
    let results: Vec<CohereResult> = by_score(&scores)
        .into_iter()
        .take(req.top_n.unwrap_or(usize::MAX))
        .map(|index| CohereResult {
            index,
            relevance_score: scores[index],
            document: with_documents.then(|| DocumentText {
                text: &documents[index],
            }),
        })
        .collect();
    let resp = CohereResponse {
        results,
        model: req.model.as_deref().unwrap_or(&served.name),
        usage: CohereUsage {
            prompt_tokens: out.tokens,
            total_tokens: out.tokens,
        },
    };
    let body = serde_json::to_vec(&resp).map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(super::json_response(body, timing, t, out.cache, &served))
}

/// The query paired with each text, as a cross-encoder reads them.
fn pairs(query: &str, texts: &[String]) -> Vec<Text> {
    texts
        .iter()
        .map(|t| Text::Pair(query.to_owned(), t.clone()))
        .collect()
}

/// Each pair's relevance: the sigmoid of the cross-encoder's logit, or the logit.
fn relevance(out: &Embedded, raw: bool) -> Vec<f32> {
    out.entries
        .iter()
        .map(|e| {
            let logit = e.vector.first().copied().unwrap_or(f32::NAN);
            if raw { logit } else { sigmoid(logit) }
        })
        .collect()
}

/// Indices by score, highest first; equal scores keep their order.
fn by_score(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Probabilities from logits, computed stably (the largest logit subtracted).
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6);
        let p = softmax(&[0.0, 2.0_f32.ln()]);
        assert!((p[1] - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn ranking_is_by_score_then_by_order() {
        assert_eq!(by_score(&[0.1, 0.9, 0.5, 0.9]), vec![1, 3, 2, 0]);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}
