//! `GET /dashboard`: one self-contained page (its charts are drawn by its own
//! canvas code), and `GET /dashboard/data?since=T`, the per-second series it polls.
//! With auth on, a browser without a session gets the login page instead (the
//! guard serves it, and answers the login and logout: `protect::login`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use osprey_observe::{DASHBOARD_PAGE, DashboardData};
use serde::{Deserialize, Serialize};

use crate::collection_stats::CollectionRow;
use crate::protect::DashboardSession;
use crate::{ApiError, AppState};

const LOGIN_PAGE: &str = include_str!("dashboard/login.html");
/// Where the dashboard page offers a logout, when a session let the browser in.
const LOGOUT_SLOT: &str = "<!-- logout -->";
const LOGOUT_FORM: &str = r#"<form method="post" action="/dashboard/logout"><button id="logout" type="submit">Log out</button></form>"#;

pub async fn page(session: Option<Extension<DashboardSession>>) -> Response {
    let mut resp = match session {
        Some(_) => DASHBOARD_PAGE
            .replacen(LOGOUT_SLOT, LOGOUT_FORM, 1)
            .into_response(),
        None => DASHBOARD_PAGE.into_response(),
    };
    html_headers(&mut resp);
    resp
}

/// The login form, with `notice` (why the last attempt failed) when there is one.
pub(crate) fn login_page(status: StatusCode, notice: Option<&str>) -> Response {
    let page = LOGIN_PAGE.replacen("{{notice}}", &escape(notice.unwrap_or("")), 1);
    let mut resp = (status, page).into_response();
    html_headers(&mut resp);
    resp
}

fn html_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // No other site may frame the pages and trick a click on them.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The query string: only `since`.
#[derive(Debug, Deserialize)]
pub struct DataQuery {
    since: Option<String>,
}

fn since(query: Result<Query<DataQuery>, QueryRejection>) -> Result<Option<u64>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    query
        .since
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::Invalid(format!("since must be a unix time in seconds, got `{v}`"))
            })
        })
        .transpose()
}

/// The series, the collections table when collections are on, and a row per
/// generation model.
#[derive(Serialize)]
pub struct DashboardReply {
    #[serde(flatten)]
    data: DashboardData,
    collections: Vec<CollectionRow>,
    generation: Vec<GenerationRow>,
    /// What `/admin/recommendations` suggests now.
    recommendations: Vec<crate::recommend::Recommendation>,
    /// The newest of `/admin/actions`.
    actions: Vec<crate::Action>,
}

/// Actions the dashboard lists.
const DASHBOARD_ACTIONS: usize = 10;

/// One generation model's decode loop now, and its means since start.
#[derive(Serialize)]
pub struct GenerationRow {
    model: String,
    active: u64,
    queued: u64,
    kv_used: u64,
    kv_budget: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    ttft_mean_ms: Option<f64>,
    inter_token_mean_ms: Option<f64>,
    /// Sequences per decode step: above 1, continuous batching is at work.
    sequences_per_step: Option<f64>,
}

fn generation_rows(state: &AppState) -> Vec<GenerationRow> {
    use std::sync::atomic::Ordering;
    let mean_ms = |h: &osprey_metrics::LatencyHistogram| {
        let s = h.snapshot();
        (s.count() > 0).then(|| s.sum_seconds * 1e3 / s.count() as f64)
    };
    state
        .models
        .registry()
        .all()
        .iter()
        .filter_map(|m| {
            let g = m.generator().ok()?;
            let st = g.stats();
            let steps = st.steps.get();
            Some(GenerationRow {
                model: m.label.clone(),
                active: st.active.load(Ordering::Relaxed),
                queued: st.queued.load(Ordering::Relaxed),
                kv_used: g.budget().used(),
                kv_budget: g.budget().total(),
                prompt_tokens: st.prompt_tokens.get(),
                completion_tokens: st.completion_tokens.get(),
                ttft_mean_ms: mean_ms(&st.ttft),
                inter_token_mean_ms: mean_ms(&st.inter_token),
                sequences_per_step: (steps > 0)
                    .then(|| st.step_sequences.get() as f64 / steps as f64),
            })
        })
        .collect()
}

pub async fn data(
    State(state): State<AppState>,
    query: Result<Query<DataQuery>, QueryRejection>,
) -> Result<Json<DashboardReply>, ApiError> {
    let since = since(query)?;
    let collections = state
        .collections
        .as_ref()
        .map(|slot| slot.rows())
        .unwrap_or_default();
    let mut actions = state.actions.recent();
    actions.truncate(DASHBOARD_ACTIONS);
    Ok(Json(DashboardReply {
        data: state.observe.dashboard(since),
        collections,
        generation: generation_rows(&state),
        recommendations: crate::recommend::recommend(&crate::recommend::gather(&state)),
        actions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_escaped_into_the_login_page() {
        let page = LOGIN_PAGE.replacen("{{notice}}", &escape("<b>\"x\" & 'y'</b>"), 1);
        assert!(page.contains("&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"));
        assert!(!page.contains("{{notice}}"));
    }

    #[test]
    fn the_dashboard_page_has_a_place_for_the_logout() {
        assert_eq!(DASHBOARD_PAGE.matches(LOGOUT_SLOT).count(), 1);
    }
}
