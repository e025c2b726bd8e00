//! `POST /tokenize`, compatible with text-embeddings-inference: each input's tokens
//! with their ids, texts and byte offsets.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use osprey_engine::{EngineError, Task, Token, TokenizeError};
use osprey_wire::TokenizeRequest;

use super::Call;
use crate::input::read_json;
use crate::{ApiError, AppState};

pub async fn tokenize(
    State(state): State<AppState>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let req: TokenizeRequest = read_json(&state, &call.headers, body).await?;
    crate::input::check_inputs(&state.config, &req.inputs.0)?;
    // Any text model tokenizes, whatever its task; without a name (or, served
    // from `[model]`, an unknown one) the default embedding model does.
    let items = req.inputs.0.len();
    let served = match req.model.as_deref().map(|n| state.models.registry().get(n)) {
        Some(Ok(m)) => {
            state
                .protection
                .load()
                .charge_items(call.caller.as_ref(), items)?;
            m
        }
        Some(Err(e)) if !state.models.is_single() => return Err(e.into()),
        _ => super::model(&state, &call, None, Task::Embed, items)?,
    };
    if !served.task().is_text() {
        return Err(ApiError::Invalid(format!(
            "model `{}` is a {} model; it has no tokenizer",
            served.name,
            served.task()
        )));
    }
    let tokenizer = served.pipeline()?.engine().tokenizer().clone();
    let special = req.add_special_tokens;
    let texts = req.inputs.0;
    // Tokenizing is CPU work: off the runtime.
    let lists = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .enumerate()
            .map(|(index, t)| {
                tokenizer
                    .tokens(t, special)
                    .map_err(|e| tokenize_error(index, e))
            })
            .collect::<Result<Vec<Vec<Token>>, EngineError>>()
    })
    .await
    .map_err(|_| EngineError::Backend("the tokenizer task stopped".into()))??;
    let mut resp = Json(lists).into_response();
    super::name_model(&mut resp, &served);
    Ok(resp)
}

fn tokenize_error(index: usize, e: TokenizeError) -> EngineError {
    match e {
        TokenizeError::TooLong { tokens, max } => EngineError::InputTooLong { index, tokens, max },
        TokenizeError::Failed(message) => EngineError::Tokenize { index, message },
    }
}
