//! Osprey's HTTP API: the embedding routes (text-embeddings-inference and OpenAI
//! shapes), model info, health, and Prometheus metrics.

mod config;
mod error;
mod input;
mod observe;
mod routes;
mod state;

pub use config::ServerConfig;
pub use error::ApiError;
pub use observe::{
    AlertEvent, AlertStatus, AlertsConfig, ObserveConfig, Severity, SloConfig, detached_metrics,
    install_metrics,
};
pub use state::{AppState, EngineSlot};

use std::future::Future;

use axum::Router;
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// Every route, with request ids and request metrics.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/embed", post(routes::embed::tei))
        .route("/v1/embeddings", post(routes::openai::embeddings))
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
        .route("/admin/stats", get(routes::stats::json))
        .route("/admin/stats.csv", get(routes::stats::csv))
        .route("/admin/alerts", get(routes::alerts::list))
        .route("/admin/profile", get(routes::profile::flamegraph))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::record_request,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.observe.start(state.engine.clone());
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
