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

/// The series, and the collections table when collections are on.
#[derive(Serialize)]
pub struct DashboardReply {
    #[serde(flatten)]
    data: DashboardData,
    collections: Vec<CollectionRow>,
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
    Ok(Json(DashboardReply {
        data: state.observe.dashboard(since),
        collections,
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
