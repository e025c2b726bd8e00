//! Osprey's HTTP API: the embedding routes (text-embeddings-inference and OpenAI
//! shapes), model info, health, and Prometheus metrics.

mod actions;
pub mod auth;
mod autoscale;
mod batch_tuning;
mod cache_warm;
mod collection_stats;
mod compression;
mod config;
mod connections;
mod deadline;
mod drain;
mod error;
mod input;
mod limits;
mod live;
mod models;
mod observe;
mod protect;
mod query;
pub mod rate_limit;
mod recommend;
mod request_id;
mod routes;
mod self_heal;
mod sessions;
mod state;
mod tls;

pub use actions::{Action, Actions};
pub use auth::AuthConfig;
pub use autoscale::{AutoscaleConfig, spawn_autoscaler};
pub use batch_tuning::spawn_batch_tuner;
pub use config::{LongInputs, ServerConfig};
pub use deadline::DEADLINE_HEADER;
pub use error::ApiError;
pub use limits::LimitsConfig;
pub use live::{ChangeError, ConfigControl, LiveSettings};
pub use models::{DEFAULT_VERSION, ManageError, ModelSpec, Models};
pub use observe::{
    AlertEvent, AlertStatus, AlertsConfig, ObserveConfig, Severity, SloConfig, detached_metrics,
    install_metrics,
};
pub use protect::{Protection, ProtectionError};
pub use self_heal::{SelfHealConfig, spawn_memory_guard};
pub use state::{AppState, CollectionsSlot, EngineSlot, Shared};
pub use tls::{TlsConfig, TlsError};

/// The per-request checks the router runs, reachable one by one so the benchmarks
/// can time each alone; not an API.
#[doc(hidden)]
pub mod checks {
    pub use crate::protect::TrustedProxies;
    pub use crate::query::{check as check_query, validate as validate_query};
    pub use crate::request_id::keep_if_usable;
}

use std::future::Future;

use axum::Router;
use axum::routing::{delete, get, post, put};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

/// Every route, with request ids, request metrics, compression, and protection
/// (auth, rate limits, admission control).
pub fn router(state: AppState) -> Router {
    let limits = state.protection.load().limits().clone();
    Router::new()
        .route("/embed", post(routes::embed::tei))
        .route("/v1/embeddings", post(routes::openai::embeddings))
        .route("/v1/chat/completions", post(routes::chat::chat))
        .route("/v1/completions", post(routes::chat::completions))
        .route(
            "/v1/sessions/{id}",
            get(routes::chat::get_session).delete(routes::chat::delete_session),
        )
        .route("/predict", post(routes::scoring::predict))
        .route("/rerank", post(routes::scoring::rerank))
        .route("/v1/rerank", post(routes::scoring::cohere_rerank))
        .route("/tokenize", post(routes::tokenize::tokenize))
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{name}", get(routes::models::one))
        .route("/v2/health/live", get(routes::v2::live))
        .route("/v2/health/ready", get(routes::v2::ready))
        .route("/v2/models/{name}", get(routes::v2::metadata))
        .route("/v2/models/{name}/ready", get(routes::v2::model_ready))
        .route("/v2/models/{name}/infer", post(routes::v2::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(routes::v2::metadata_version),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(routes::v2::version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(routes::v2::infer_version),
        )
        .route("/collections", get(routes::collections::list))
        .route(
            "/collections/{name}",
            get(routes::collections::info)
                .put(routes::collections::create)
                .delete(routes::collections::delete),
        )
        .route(
            "/collections/{name}/exists",
            get(routes::collections::exists),
        )
        .route(
            "/collections/{name}/points",
            put(routes::collections::upsert).post(routes::collections::retrieve),
        )
        .route(
            "/collections/{name}/points/query",
            post(routes::collections::query),
        )
        .route(
            "/collections/{name}/points/count",
            post(routes::collections::count),
        )
        .route(
            "/collections/{name}/points/delete",
            post(routes::collections::delete_points),
        )
        .route(
            "/collections/{name}/points/scroll",
            post(routes::collections::scroll),
        )
        .route("/admin/models", post(routes::models::add))
        .route("/admin/models/{name}", delete(routes::models::remove))
        .route("/admin/models/{name}/reload", post(routes::models::reload))
        .route("/info", get(routes::info::info))
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .route("/metrics", get(routes::metrics::metrics))
        .route(
            "/admin/cache",
            get(routes::admin::cache_stats).delete(routes::admin::cache_clear),
        )
        .route("/dashboard", get(routes::dashboard::page))
        .route("/dashboard/data", get(routes::dashboard::data))
        .route(
            "/admin/config",
            get(routes::control::config).put(routes::control::change_config),
        )
        .route("/admin/actions", get(routes::control::actions))
        .route(
            "/admin/recommendations",
            get(routes::control::recommendations),
        )
        .route("/admin/warmup", post(routes::control::warmup))
        .route(
            "/admin/cache/warm",
            get(routes::control::cache_warm_progress).post(routes::control::cache_warm),
        )
        .route("/admin/stats", get(routes::stats::json))
        .route("/admin/stats.csv", get(routes::stats::csv))
        .route("/admin/alerts", get(routes::alerts::list))
        .route("/admin/profile", get(routes::profile::flamegraph))
        .route_layer(axum::middleware::from_fn(query::check))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            protect::guard,
        ))
        .layer(compression::layer(&limits))
        .layer(axum::middleware::from_fn(connections::answer_body_timeouts))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            drain::close_when_draining,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::record_request,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(request_id::MakeUuid))
        .layer(tower::util::MapRequestLayer::new(
            request_id::keep_if_usable::<axum::body::Body>,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish. With
/// `server.tls` set, serves HTTPS (HTTP/2 and HTTP/1.1); unreadable certificate or
/// key files are an error before the first connection. Both apply the header, body
/// and keep-alive timeouts and the connection cap of `[server]`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.observe.start(state.engine.clone());
    let app = router(state.clone());
    let transport = if state.config.tls.enabled() {
        let acceptor = state
            .config
            .tls
            .acceptor()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        connections::Transport::Tls(acceptor)
    } else {
        connections::Transport::Plain
    };
    connections::serve(listener, transport, app, &state.config, shutdown).await
}
