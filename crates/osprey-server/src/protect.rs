//! The protection middleware: who is calling (auth), how often (rate limits), and
//! whether the server takes the work now (admission control and deadlines), in that
//! order, before any route runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use osprey_engine::Load;

use crate::admission::Admission;
use crate::auth::{AuthConfig, AuthSetupError, Authenticator, Scope};
use crate::limits::LimitsConfig;
use crate::rate_limit::{Budget, ClientKey, RateLimits};
use crate::{ApiError, AppState};

tokio::task_local! {
    /// The request being handled, for the checks only a handler can make once the
    /// body is parsed: the per-input rate limit and whether the queue can be
    /// through before the deadline.
    static REQUEST: RequestContext;
}

struct RequestContext {
    client: ClientKey,
    deadline: Option<(tokio::time::Instant, Duration)>,
}

/// Authentication, rate limits and admission control, as configured.
pub struct Protection {
    auth: Option<Authenticator>,
    metrics_public: bool,
    rate: RateLimits,
    admission: Admission,
    /// Estimated tokens of requests admitted to the engine and not finished.
    outstanding: Arc<AtomicUsize>,
    limits: LimitsConfig,
}

/// One request's estimated tokens, counted as outstanding while it lives.
#[derive(Debug)]
pub(crate) struct Ticket {
    outstanding: Arc<AtomicUsize>,
    tokens: usize,
}

impl Ticket {
    fn new(outstanding: Arc<AtomicUsize>, tokens: usize) -> Self {
        // Sequentially consistent with the load in `check_queue`: of two requests
        // checked at once, at least one sees the other.
        outstanding.fetch_add(tokens, Ordering::SeqCst);
        Self {
            outstanding,
            tokens,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(self.tokens, Ordering::AcqRel);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("limits: {0}")]
    Limits(String),
}

impl Default for Protection {
    /// Auth off, the default limits: what local use needs.
    fn default() -> Self {
        let limits = LimitsConfig::default();
        Self {
            auth: None,
            metrics_public: true,
            rate: RateLimits::new(&limits),
            admission: Admission::new(&limits),
            outstanding: Arc::default(),
            limits,
        }
    }
}

impl Protection {
    /// Reads keys and JWT key files; refuses configuration that cannot serve.
    pub fn new(auth: &AuthConfig, limits: &LimitsConfig) -> Result<Self, ProtectionError> {
        if limits.max_decompressed_bytes == 0 {
            return Err(ProtectionError::Limits(
                "max_decompressed_bytes must be at least 1".into(),
            ));
        }
        let auth_checks = Authenticator::from_config(auth)?;
        let slots = auth_checks.as_ref().map_or(0, Authenticator::key_count);
        Ok(Self {
            auth: auth_checks,
            metrics_public: auth.metrics_public,
            rate: RateLimits::with_slots(limits, slots),
            admission: Admission::new(limits),
            outstanding: Arc::default(),
            limits: limits.clone(),
        })
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// Inference requests being served now.
    pub fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }

    /// Counts a request's inputs against its client's per-input rate limit. Called by
    /// the handlers once the body is parsed; outside the middleware it does nothing.
    pub(crate) fn charge_items(&self, n: usize) -> Result<(), ApiError> {
        if self.rate.is_off() {
            return Ok(());
        }
        REQUEST
            .try_with(|r| self.rate.check_items(&r.client, n))
            .unwrap_or(Ok(()))
    }

    /// Refuses at once work the queue cannot take: 429 when its estimated tokens do
    /// not fit the queue's capacity (checked here, before tokenizing, so a refusal
    /// costs no tokenizer time), 503 when the replicas, at their measured rates,
    /// would not finish it before the request's deadline behind all work admitted
    /// and not finished: queued, being tokenized, and the batches running now. The
    /// ticket counts the request as outstanding until it is dropped.
    pub(crate) fn check_queue<S: AsRef<str>>(
        &self,
        load: &Load,
        max_input_tokens: usize,
        inputs: &[S],
    ) -> Result<Ticket, ApiError> {
        // About four bytes of English per token, at most a model's maximum per input.
        let own: usize = inputs
            .iter()
            .map(|t| (t.as_ref().len() / 4 + 2).min(max_input_tokens.max(1)))
            .sum();
        let (queued, capacity) = (load.queued_tokens, load.max_queue_tokens);
        if queued > 0 && queued + own > capacity {
            metrics::counter!("osprey_rejected_total", "reason" => "queue_full").increment(1);
            return Err(ApiError::Engine(osprey_engine::EngineError::Overloaded {
                queued,
                capacity,
            }));
        }
        let ticket = Ticket::new(self.outstanding.clone(), own);
        let Some(Some((deadline, budget))) = REQUEST.try_with(|r| r.deadline).ok() else {
            return Ok(ticket);
        };
        // Outstanding work counts this request and every other admitted one, also
        // those still tokenizing (not queued yet); what runs now is counted by the
        // replicas, with how long it still needs.
        let outstanding = self.outstanding.load(Ordering::SeqCst);
        let ahead = outstanding
            .saturating_sub(load.running_tokens())
            .saturating_sub(own)
            .max(queued);
        // An idle engine takes any request: refusing it on a rate measured in other
        // conditions would keep the engine idle and the rate unchanged for good.
        if ahead == 0 && load.running_tokens() == 0 {
            return Ok(ticket);
        }
        let Some(finish) = load.finish_in(ahead, own, inputs.len()) else {
            return Ok(ticket);
        };
        let wait = finish.mul_f64((1.0 + SPREADS * load.spread()).max(MIN_SLACK)) + FIXED_COSTS;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if wait > left {
            metrics::counter!("osprey_rejected_total", "reason" => "deadline_unreachable")
                .increment(1);
            return Err(ApiError::DeadlineUnreachable {
                wait_ms: wait.as_millis() as u64,
                deadline_ms: budget.as_millis() as u64,
                // When the work ahead should have drained enough for it to fit.
                retry_after_secs: (wait - left).as_secs_f64().ceil().clamp(1.0, 60.0) as u64,
            });
        }
        Ok(ticket)
    }
}

/// Predicted model time is stretched by this many times the replicas' spread of
/// batch times (how far they stray from their rate, which varies with what else
/// runs on the cores): an admitted request that misses its deadline costs more (its
/// work is thrown away) than one refused at once.
const SPREADS: f64 = 2.0;

/// The least stretch, however steady the batches have been.
const MIN_SLACK: f64 = 1.05;

/// Time a request spends outside the model: tokenizing, pooling, serializing.
const FIXED_COSTS: Duration = Duration::from_millis(10);

/// What a path needs. Everything under `/admin/` is admin; `/health/live` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteClass {
    Live,
    Probe,
    Metrics,
    Admin,
    /// Work for the model: admission control and deadlines apply.
    Inference,
    Other,
}

impl RouteClass {
    fn of(method: &Method, path: &str) -> Self {
        match path {
            "/health/live" => Self::Live,
            "/health/ready" => Self::Probe,
            "/metrics" => Self::Metrics,
            _ if path == "/admin" || path.starts_with("/admin/") => Self::Admin,
            _ if method == Method::POST => Self::Inference,
            _ => Self::Other,
        }
    }

    fn scope(self) -> Scope {
        match self {
            Self::Admin => Scope::Admin,
            _ => Scope::Infer,
        }
    }
}

fn peer(req: &Request) -> ClientKey {
    ClientKey::Ip(
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
    )
}

pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let p = &state.protection;
    let class = RouteClass::of(req.method(), req.uri().path());
    if class == RouteClass::Live {
        return next.run(req).await;
    }
    let client = match &p.auth {
        Some(_) if class == RouteClass::Metrics && p.metrics_public => peer(&req),
        Some(auth) => match auth.authorize(req.headers(), class.scope()) {
            Ok(principal) => principal.client(),
            Err(e) => {
                let reason = if e.status() == 401 {
                    "unauthorized"
                } else {
                    "forbidden"
                };
                metrics::counter!("osprey_auth_failures_total", "reason" => reason).increment(1);
                tracing::debug!(path = req.uri().path(), error = %e, "refused credentials");
                return refuse(req, e.into_response()).await;
            }
        },
        None => peer(&req),
    };
    // Probes and scrapers are not counted against a client's rate.
    if matches!(class, RouteClass::Probe | RouteClass::Metrics) {
        return next.run(req).await;
    }
    let budget = match p.rate.check_request(&client) {
        Ok(b) => b,
        Err(refused) => {
            let (e, budget) = *refused;
            metrics::counter!("osprey_rejected_total", "reason" => "rate_limit").increment(1);
            let mut resp = e.into_response();
            budget.write(resp.headers_mut());
            return refuse(req, resp).await;
        }
    };
    let mut resp = if class == RouteClass::Inference {
        admit(&state, client, req, next).await
    } else {
        let ctx = RequestContext {
            client,
            deadline: None,
        };
        REQUEST.scope(ctx, next.run(req)).await
    };
    if let Some(b) = budget.filter(Budget::worth_sending) {
        b.write(resp.headers_mut());
    }
    resp
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

/// Refuses a request whose declared body cannot fit the queue's free capacity
/// before its body is read: under a flood of refused requests, reading and parsing
/// them would take the CPU the model needs (about four bytes per token).
fn queue_has_room(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let Some(engine) = state.engine.get() else {
        return Ok(());
    };
    let queued = engine.engine().queued_tokens();
    if queued == 0 {
        return Ok(());
    }
    let declared = declared_length(req).unwrap_or(0);
    let capacity = engine.info().max_queue_tokens;
    if queued + declared / 4 > capacity {
        metrics::counter!("osprey_rejected_total", "reason" => "queue_full").increment(1);
        return Err(ApiError::Engine(osprey_engine::EngineError::Overloaded {
            queued,
            capacity,
        }));
    }
    Ok(())
}

/// Runs an inference request within the in-flight cap and its deadline. When the
/// deadline passes, the handler's future is dropped, which takes its inputs out of
/// the batch queue.
async fn admit(state: &AppState, client: ClientKey, req: Request, next: Next) -> Response {
    let p = &state.protection;
    let _slot = match p.admission.admit() {
        Ok(slot) => slot,
        Err(e) => return refuse(req, e.into_response()).await,
    };
    if let Err(e) = queue_has_room(state, &req) {
        return refuse(req, e.into_response()).await;
    }
    let deadline = match p.admission.deadline(req.headers()) {
        Ok(d) => d,
        Err(e) => return refuse(req, e.into_response()).await,
    };
    let ctx = RequestContext {
        client,
        deadline: deadline.map(|d| (tokio::time::Instant::now() + d, d)),
    };
    let work = REQUEST.scope(ctx, next.run(req));
    match deadline {
        None => work.await,
        Some(d) => match tokio::time::timeout(d, work).await {
            Ok(resp) => resp,
            Err(_) => {
                metrics::counter!("osprey_rejected_total", "reason" => "deadline").increment(1);
                ApiError::DeadlineExceeded(d.as_millis() as u64).into_response()
            }
        },
    }
}

#[cfg(test)]
mod tests;
