//! The protection middleware: who is calling (auth) and how often (rate limits),
//! before any route runs; for inference, a body that cannot fit the model's queue
//! is refused before it is read. Admission control proper (in-flight cap, deadline
//! prediction, queue capacity) is the engine's, asked by the handlers.
//!
//! Failed authentications are limited per client address and checked before any
//! key is hashed or signature verified. The address is the TCP peer's, or the one
//! a trusted proxy forwarded (`limits.trusted_proxies`).
//!
//! Health probes answer without credentials unless `auth.public_probes` is off.
//! The dashboard also takes a session cookie, got by logging in with an admin key
//! or token at `POST /dashboard/login`; the guard answers the login and logout
//! itself.

mod client_ip;
mod login;
mod open_admin;
mod scrape;
mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use osprey_metrics::event::{AuthFailed, AuthFailure, Event, RejectReason, RequestRejected};

use crate::auth::{AuthConfig, AuthSetupError, Authenticator, Scope};
use crate::limits::{LimitsConfig, LimitsError};
use crate::rate_limit::{Budget, ClientKey, FailureLimiter, RateLimits, client_net};
use crate::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Who sent a request, for the per-input rate limit the handler charges once the
/// body is parsed. Put in the request's extensions only when that limit is on.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub ClientKey);

/// Put in a dashboard request's extensions when a session cookie let it in: the
/// page then offers a logout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DashboardSession;

pub use client_ip::TrustedProxies;
use scrape::ScrapeGate;
use session::Sessions;

/// Authentication and rate limits, as configured, and the gate `/metrics` scrapes
/// go through. Admission control is each model's own (`osprey_engine::Admission`).
pub struct Protection {
    auth: Option<Authenticator>,
    metrics_public: bool,
    /// Health probes without credentials.
    public_probes: bool,
    /// Dashboard logins; `None` with auth off or `auth.dashboard_session_secs = 0`.
    /// Shared with the protection that replaces this one live, so no one is
    /// logged out by a reload.
    sessions: Option<Arc<Sessions>>,
    rate: Arc<RateLimits>,
    /// Failed authentications per client address.
    failures: Arc<FailureLimiter>,
    proxies: TrustedProxies,
    scrapes: Arc<ScrapeGate>,
    limits: LimitsConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error(transparent)]
    Limits(#[from] LimitsError),
}

impl Default for Protection {
    /// Auth off, the default limits: what local use needs.
    fn default() -> Self {
        let limits = LimitsConfig::default();
        Self {
            auth: None,
            metrics_public: true,
            public_probes: true,
            sessions: None,
            rate: Arc::new(RateLimits::new(&limits)),
            failures: Arc::new(failure_limiter(&limits)),
            proxies: TrustedProxies::default(),
            scrapes: Arc::default(),
            limits,
        }
    }
}

impl Protection {
    /// Reads keys and JWT key files; refuses configuration that cannot serve.
    pub fn new(auth: &AuthConfig, limits: &LimitsConfig) -> Result<Self, ProtectionError> {
        limits.validate()?;
        let auth_checks = Authenticator::from_config(auth)?;
        let slots = auth_checks.as_ref().map_or(0, Authenticator::key_count);
        let sessions = (auth_checks.is_some() && auth.dashboard_session_secs > 0).then(|| {
            Arc::new(Sessions::new(Duration::from_secs(
                auth.dashboard_session_secs,
            )))
        });
        Ok(Self {
            auth: auth_checks,
            metrics_public: auth.metrics_public,
            public_probes: auth.public_probes,
            sessions,
            rate: Arc::new(RateLimits::with_slots(limits, slots)),
            failures: Arc::new(failure_limiter(limits)),
            proxies: TrustedProxies::new(limits.trusted_proxy_nets()?),
            scrapes: Arc::default(),
            limits: limits.clone(),
        })
    }

    /// A protection for new settings (a re-read keys file, changed limits) that
    /// keeps what this one learned where the settings allow: dashboard logins,
    /// the `/metrics` gate, and the rate buckets while the rates are the same.
    pub fn renewed(
        &self,
        auth: &AuthConfig,
        limits: &LimitsConfig,
    ) -> Result<Self, ProtectionError> {
        let mut next = Self::new(auth, limits)?;
        next.scrapes = self.scrapes.clone();
        if next.sessions.is_some() && self.sessions.is_some() {
            next.sessions = self.sessions.clone();
        }
        let same_rates = |a: &LimitsConfig, b: &LimitsConfig| {
            (
                a.requests_per_second,
                a.requests_burst,
                a.items_per_second,
                a.items_burst,
            ) == (
                b.requests_per_second,
                b.requests_burst,
                b.items_per_second,
                b.items_burst,
            )
        };
        let same_keys = self.auth.as_ref().map(Authenticator::key_count)
            == next.auth.as_ref().map(Authenticator::key_count);
        if same_rates(&self.limits, limits) && same_keys {
            next.rate = self.rate.clone();
        }
        if (
            self.limits.auth_failures_per_second,
            self.limits.auth_failures_burst,
        ) == (limits.auth_failures_per_second, limits.auth_failures_burst)
        {
            next.failures = self.failures.clone();
        }
        Ok(next)
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// What `/metrics` renders through.
    pub(crate) fn scrapes(&self) -> Arc<ScrapeGate> {
        self.scrapes.clone()
    }

    /// Counts a request's inputs against its caller's per-input rate limit. Called
    /// by the handlers once the body is parsed; without a caller (the limit is off)
    /// it does nothing.
    pub(crate) fn charge_items(&self, caller: Option<&Caller>, n: usize) -> Result<(), ApiError> {
        match caller {
            Some(Caller(client)) => self.rate.check_items(client, n),
            None => Ok(()),
        }
    }
}

fn failure_limiter(limits: &LimitsConfig) -> FailureLimiter {
    FailureLimiter::new(limits.auth_failures_per_second, limits.auth_failures_burst)
}

/// What a path needs. Everything under `/admin/` is admin, and so is the dashboard
/// (its data shows what `/admin/stats` and `/admin/alerts` do); `/health/live` is
/// open, and so are the other probes unless `auth.public_probes` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteClass {
    Live,
    /// Readiness, and the KServe v2 health and model readiness routes.
    Probe,
    Metrics,
    Admin,
    /// `/dashboard` and its data: admin, by header or session cookie.
    Dashboard,
    Login,
    Logout,
    /// Work for the model: admission control and deadlines apply.
    Inference,
    Other,
}

impl RouteClass {
    fn of(method: &Method, path: &str) -> Self {
        match path {
            "/health/live" => Self::Live,
            "/metrics" => Self::Metrics,
            "/dashboard" | "/dashboard/data" => Self::Dashboard,
            "/dashboard/login" => Self::Login,
            "/dashboard/logout" => Self::Logout,
            _ if path == "/admin" || path.starts_with("/admin/") => Self::Admin,
            _ if (method == Method::GET || method == Method::HEAD) && is_probe(path) => Self::Probe,
            _ if method == Method::POST => Self::Inference,
            _ => Self::Other,
        }
    }

    fn is_admin(self) -> bool {
        matches!(
            self,
            Self::Admin | Self::Dashboard | Self::Login | Self::Logout
        )
    }

    fn scope(self) -> Scope {
        if self.is_admin() {
            Scope::Admin
        } else {
            Scope::Infer
        }
    }
}

/// `/health/ready`, `/v2/health/{live,ready}`, `/v2/models/{name}/ready` and
/// `/v2/models/{name}/versions/{version}/ready`.
fn is_probe(path: &str) -> bool {
    match path {
        "/health/ready" | "/v2/health/live" | "/v2/health/ready" => true,
        _ => {
            let Some(rest) = path
                .strip_prefix("/v2/models/")
                .and_then(|r| r.strip_suffix("/ready"))
            else {
                return false;
            };
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(name), None, None, None) => !name.is_empty(),
                (Some(name), Some("versions"), Some(version), None) => {
                    !name.is_empty() && !version.is_empty()
                }
                _ => false,
            }
        }
    }
}

/// The TCP peer's address, when the server recorded it.
fn peer(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client's address as the per-address limits key it (IPv6 by /64).
fn client_addr(p: &Protection, req: &Request) -> IpAddr {
    let peer = peer(req).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    client_net(p.proxies.client(peer, req.headers()))
}

/// Marks a probe answered without credentials while auth is on: readiness then
/// gives statuses only, no paths, errors, model revisions or queue numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnonymousProbe;

/// Whether the request carries a credential (valid or not).
fn has_credentials(req: &Request) -> bool {
    let h = req.headers();
    h.contains_key(axum::http::header::AUTHORIZATION) || h.contains_key("x-api-key")
}

pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // Held for the request: a live change applies from the next one.
    let p = &*state.protection.load_full();
    let class = RouteClass::of(req.method(), req.uri().path());
    if class == RouteClass::Live {
        return next.run(req).await;
    }
    // A probe with credentials is checked like any request and sees the details.
    if class == RouteClass::Probe && p.public_probes && (p.auth.is_none() || !has_credentials(&req))
    {
        if p.auth.is_some() {
            req.extensions_mut().insert(AnonymousProbe);
        }
        return next.run(req).await;
    }
    let addr = client_addr(p, &req);
    if let (Some(auth), Some(sessions)) = (&p.auth, &p.sessions) {
        match class {
            RouteClass::Login => return login::login(&state, auth, sessions, addr, req).await,
            RouteClass::Logout => return login::logout(&state, sessions, req).await,
            _ => {}
        }
    }
    let mut req = req;
    // A browser on the dashboard sends no header: its session cookie lets it in,
    // or it gets the login page.
    let by_cookie = p
        .sessions
        .as_ref()
        .filter(|_| class == RouteClass::Dashboard && !login::sends_credentials(req.headers()));
    let client = match (&p.auth, by_cookie) {
        (Some(_), _) if class == RouteClass::Metrics && p.metrics_public => ClientKey::Ip(addr),
        (Some(_), Some(sessions)) => match login::session(sessions, req.headers()) {
            Some(principal) => {
                req.extensions_mut().insert(DashboardSession);
                principal.client()
            }
            None => return login::no_session(&state, req).await,
        },
        (Some(auth), None) => match authenticate(p, auth, addr, &req, class) {
            Ok(client) => client,
            Err(e) if e.status() == 429 => {
                RequestRejected {
                    reason: RejectReason::RateLimit,
                }
                .emit();
                return refuse(req, e.into_response()).await;
            }
            Err(e) => {
                let reason = if e.status() == 401 {
                    AuthFailure::Unauthorized
                } else {
                    AuthFailure::Forbidden
                };
                AuthFailed {
                    reason,
                    path: req.uri().path(),
                    error: &e,
                }
                .emit();
                return refuse(req, e.into_response()).await;
            }
        },
        (None, _)
            if class.is_admin()
                && !open_admin::allowed(
                    state.config.allow_open_admin,
                    &p.proxies,
                    peer(&req),
                    req.headers(),
                ) =>
        {
            let e = ApiError::Forbidden(
                "with auth off, admin routes and the dashboard answer only clients on this \
                 machine; turn auth on, or set server.allow_open_admin (--allow-open-admin)"
                    .into(),
            );
            return refuse(req, e.into_response()).await;
        }
        (None, _) => ClientKey::Ip(addr),
    };
    // Probes and scrapers are not counted against a client's rate.
    if matches!(class, RouteClass::Probe | RouteClass::Metrics) {
        return next.run(req).await;
    }
    let budget = match p.rate.check_request(&client) {
        Ok(b) => b,
        Err(refused) => {
            let (e, budget) = *refused;
            RequestRejected {
                reason: RejectReason::RateLimit,
            }
            .emit();
            let mut resp = e.into_response();
            budget.write(resp.headers_mut());
            return refuse(req, resp).await;
        }
    };
    if class == RouteClass::Inference
        && let Err(e) = queue_has_room(&state, &req)
    {
        return refuse(req, e.into_response()).await;
    }
    if !p.rate.is_off() {
        req.extensions_mut().insert(Caller(client));
    }
    let mut resp = next.run(req).await;
    if let Some(b) = budget.filter(Budget::worth_sending) {
        b.write(resp.headers_mut());
    }
    resp
}

/// The caller's credentials checked, unless its address failed too often lately
/// (429, before any key is hashed or signature verified). A failure counts
/// against the address unless no credential was sent: that costs nothing to
/// refuse, and is what unconfigured probes send.
fn authenticate(
    p: &Protection,
    auth: &Authenticator,
    addr: IpAddr,
    req: &Request,
    class: RouteClass,
) -> Result<ClientKey, ApiError> {
    p.failures.admit(&addr)?;
    auth.authorize(req.headers(), class.scope())
        .map(|principal| principal.client())
        .inspect_err(|e| {
            if !matches!(e, ApiError::Unauthorized { missing: true, .. }) {
                p.failures.record(&addr);
            }
        })
}

/// Bodies up to this size are read and dropped when a request is refused before
/// its body was read; a batch of 32 sentences is about 5 KB.
const DRAIN_MAX: usize = 64 * 1024;
/// How long a refused request's body may take to arrive.
const DRAIN_WAIT: Duration = Duration::from_millis(50);

/// Answers a request refused before its body was read. On HTTP/1.1 the unread body
/// would be left on the connection, and the server closes it after the answer
/// without the client knowing, so the client's next request on it fails. A small
/// body already on its way is read and dropped, keeping the connection usable
/// (no parsing: the refusal stays cheap); anything else gets `Connection: close`,
/// so the client opens a new connection for its retry.
async fn refuse(req: Request, mut resp: Response) -> Response {
    if req.version() > Version::HTTP_11 || !has_body(&req) {
        return resp;
    }
    let drained = match declared_length(&req) {
        Some(n) if n > DRAIN_MAX => false,
        _ => matches!(
            tokio::time::timeout(DRAIN_WAIT, axum::body::to_bytes(req.into_body(), DRAIN_MAX))
                .await,
            Ok(Ok(_))
        ),
    };
    if !drained {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn has_body(req: &Request) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || declared_length(req).is_some_and(|n| n > 0)
}

/// The body size the client declared in `Content-Length`, if any.
fn declared_length(req: &Request) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Refuses a request whose declared body cannot fit the model's queue before its
/// body is read: under a flood of refused requests, reading and parsing them would
/// take the CPU the model needs. The model's admission control decides.
fn queue_has_room(state: &AppState, req: &Request) -> Result<(), ApiError> {
    // With several models the body names the one it is for: its own admission
    // decides once the body is read.
    let Some(pipeline) = state.engine.get().filter(|_| state.models.is_single()) else {
        return Ok(());
    };
    let declared = declared_length(req).unwrap_or(0);
    Ok(pipeline.engine().check_body(declared)?)
}

#[cfg(test)]
mod tests;
