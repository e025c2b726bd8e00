//! `GET /admin/alerts`: active alerts and the recently resolved ones.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let (active, recent) = state.observe.alerts();
    Json(json!({"active": active, "recent": recent}))
}
