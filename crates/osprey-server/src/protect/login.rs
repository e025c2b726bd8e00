//! The dashboard's login and logout, answered by the guard: `POST /dashboard/login`
//! takes an admin key or token (a form's `key` field, or JSON `{"key": ...}`) and
//! sets a session cookie; `POST /dashboard/logout` ends the session.
//!
//! The cookie lets a browser into `/dashboard` and `/dashboard/data` only, never
//! the inference or admin API, so a forged request elsewhere gains nothing from
//! it. Cross-site requests cannot use it (SameSite=Strict), and login and logout
//! refuse a request another origin sent (`Origin`, `Sec-Fetch-Site`). Failed
//! logins count against the address's failed-credential limit, as bad keys do.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use osprey_metrics::event::{AuthFailed, AuthFailure, Event, RejectReason, RequestRejected};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::session::{self, Sessions};
use super::{declared_length, refuse};
use crate::auth::{Authenticator, Principal, Scope};
use crate::routes::dashboard::login_page;
use crate::{ApiError, AppState};

/// A login body is a key or a token: a few KB at most.
const MAX_BODY: usize = 16 * 1024;
/// Where the browser goes after logging in or out.
const DASHBOARD: &str = "/dashboard";
const LOGIN: &str = "/dashboard/login";

/// How a login or logout is answered: the login page posts a form and gets pages
/// and redirects; scripts post JSON and get JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Page,
    Json,
}

impl Answer {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let essence = content_type(headers)?.split(';').next()?.trim();
        if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(Self::Page)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else {
            None
        }
    }

    fn error(self, e: ApiError) -> Response {
        match self {
            Self::Json => e.into_response(),
            Self::Page => {
                let mut resp = login_page(e.status(), Some(&e.to_string()));
                let h = resp.headers_mut();
                if e.status() == StatusCode::UNAUTHORIZED {
                    h.insert(header::WWW_AUTHENTICATE, challenge());
                }
                if let ApiError::RateLimited {
                    retry_after_secs, ..
                } = e
                {
                    h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                }
                resp
            }
        }
    }

    /// Done: the dashboard for a browser, `json` for a script.
    fn done(self, json: Option<serde_json::Value>) -> Response {
        let mut resp = match (self, json) {
            (Self::Page, _) => {
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static(DASHBOARD));
                r
            }
            (Self::Json, Some(body)) => Json(body).into_response(),
            (Self::Json, None) => StatusCode::NO_CONTENT.into_response(),
        };
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE)?.to_str().ok()
}

fn challenge() -> HeaderValue {
    HeaderValue::from_static(r#"Bearer realm="osprey""#)
}

/// Whether the request carries a key or token in a header (then the cookie is
/// not looked at: the header decides, as on every other route).
pub(super) fn sends_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key")
}

/// Who the request's session cookie belongs to, while the session lasts.
pub(super) fn session(sessions: &Sessions, headers: &HeaderMap) -> Option<Principal> {
    session::cookies(headers).find_map(|c| sessions.get(c))
}

/// A dashboard request with neither credentials nor a live session: a browser
/// asking for the page gets the login form, anything else a 401. A cookie whose
/// session has ended is cleared.
pub(super) async fn no_session(state: &AppState, req: Request) -> Response {
    let stale = session::cookies(req.headers()).next().is_some();
    let wants_page =
        req.method() == Method::GET && req.uri().path() == DASHBOARD && accepts_html(req.headers());
    let mut resp = if wants_page {
        let notice = stale.then_some("Your session has ended: log in again.");
        let mut r = login_page(StatusCode::UNAUTHORIZED, notice);
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge());
        r
    } else {
        let message = if stale {
            "the dashboard session has ended: log in again at /dashboard"
        } else {
            "credentials required: log in at /dashboard, or send \
             `Authorization: Bearer <key or token>`"
        };
        let e = ApiError::Unauthorized {
            message: message.into(),
            missing: true,
        };
        AuthFailed {
            reason: AuthFailure::Unauthorized,
            path: req.uri().path(),
            error: &e,
        }
        .emit();
        e.into_response()
    };
    if stale {
        resp.headers_mut().insert(
            header::SET_COOKIE,
            session::clear_cookie(state.config.tls.enabled()),
        );
    }
    refuse(req, resp).await
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// `POST /dashboard/login`.
pub(super) async fn login(
    state: &AppState,
    auth: &Authenticator,
    sessions: &Sessions,
    addr: IpAddr,
    req: Request,
) -> Response {
    let p = &*state.protection.load_full();
    if req.method() == Method::GET || req.method() == Method::HEAD {
        // A reloaded or bookmarked login address: the form is on the dashboard.
        return Answer::Page.done(None);
    }
    if req.method() != Method::POST {
        return refuse(req, post_only()).await;
    }
    let Some(answer) = Answer::of(req.headers()) else {
        let given = content_type(req.headers()).unwrap_or("none").to_owned();
        return refuse(req, ApiError::UnsupportedMediaType(given).into_response()).await;
    };
    if !same_origin(&req) {
        return refuse(req, answer.error(cross_origin())).await;
    }
    if let Err(e) = p.failures.admit(&addr) {
        RequestRejected {
            reason: RejectReason::RateLimit,
        }
        .emit();
        return refuse(req, answer.error(e)).await;
    }
    if declared_length(&req).is_some_and(|n| n > MAX_BODY) {
        return refuse(req, answer.error(too_large())).await;
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_BODY).await else {
        return answer.error(too_large());
    };
    let key = match answer {
        Answer::Page => form_field(&body, "key"),
        Answer::Json => json_key(&body),
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => return answer.error(e),
    };
    let key = key.trim();
    if key.is_empty() {
        // Costs nothing to refuse, as a request without credentials: not counted.
        return answer.error(ApiError::Unauthorized {
            message: "paste an API key or token with the admin scope".into(),
            missing: true,
        });
    }
    let principal = match auth.authorize_token(key, Scope::Admin) {
        Ok(principal) => principal.into_owned(),
        Err(e) => {
            p.failures.record(&addr);
            let reason = if e.status() == StatusCode::UNAUTHORIZED {
                AuthFailure::Unauthorized
            } else {
                AuthFailure::Forbidden
            };
            AuthFailed {
                reason,
                path: LOGIN,
                error: &e,
            }
            .emit();
            return answer.error(e);
        }
    };
    let lifetime = sessions.lifetime(&principal, unix_now());
    if lifetime.is_zero() {
        return answer.error(ApiError::Unauthorized {
            message: "the token has expired".into(),
            missing: false,
        });
    }
    let name = principal.name.clone();
    let id = match sessions.start(principal, lifetime) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "dashboard login failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    tracing::info!(credential = %name, seconds = lifetime.as_secs(), "dashboard login");
    let mut resp = answer.done(Some(
        serde_json::json!({ "expires_in": lifetime.as_secs() }),
    ));
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&id, lifetime, state.config.tls.enabled()),
    );
    resp
}

/// `POST /dashboard/logout`: ends the session server-side and clears the cookie.
pub(super) async fn logout(state: &AppState, sessions: &Sessions, req: Request) -> Response {
    if req.method() != Method::POST {
        return refuse(req, post_only()).await;
    }
    let answer = Answer::of(req.headers()).unwrap_or(Answer::Json);
    if !same_origin(&req) {
        return refuse(req, answer.error(cross_origin())).await;
    }
    let ended = session::cookies(req.headers())
        .filter(|c| sessions.end(c))
        .count();
    if ended > 0 {
        tracing::info!("dashboard logout");
    }
    let mut resp = answer.done(None);
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(state.config.tls.enabled()),
    );
    refuse(req, resp).await
}

fn post_only() -> Response {
    let mut resp = ApiError::MethodNotAllowed.into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

fn cross_origin() -> ApiError {
    ApiError::Forbidden(
        "a login or logout from another site is refused: use the form on this server's \
         /dashboard page"
            .into(),
    )
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!("a login is at most {} KiB", MAX_BODY / 1024))
}

/// Whether the browser says the request came from a page of this server. Without
/// `Origin` (not a browser, or an old one) it is taken as same-origin: SameSite
/// and the cookie's scope are the defence then. The origin's host and port must
/// be those the request was sent to.
fn same_origin(req: &Request) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return false;
    }
    let Some(origin) = h.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    // `null` (a sandboxed frame, a file) names no host: refused.
    let Some(host) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    // HTTP/2 names the host in the URI, HTTP/1.1 in `Host`.
    let own = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| h.get(header::HOST).and_then(|v| v.to_str().ok()));
    own.is_some_and(|own| own.eq_ignore_ascii_case(host))
}

/// The `name` field of a form body, decoded; empty when absent.
fn form_field(body: &[u8], name: &str) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the login form is not UTF-8".into()))?;
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            let v = v.replace('+', " ");
            return percent_decode_str(&v)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| {
                    ApiError::BadRequest(format!("the form's `{name}` is not valid UTF-8"))
                });
        }
    }
    Ok(String::new())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[serde(alias = "token")]
    key: String,
}

fn json_key(body: &[u8]) -> Result<String, ApiError> {
    serde_json::from_slice::<LoginBody>(body)
        .map(|b| b.key)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
