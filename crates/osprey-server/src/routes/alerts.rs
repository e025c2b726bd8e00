//! `GET /admin/alerts`: active alerts and the recently resolved ones.

use axum::Json;
use axum::extract::State;
use osprey_observe::AlertList;

use crate::AppState;

pub async fn list(State(state): State<AppState>) -> Json<AlertList> {
    Json(state.observe.alert_list())
}
