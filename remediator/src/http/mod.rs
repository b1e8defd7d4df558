//! The HTTP surface: the router and the server. Each route lives in its own file:
//! [`webhook`], [`journal_api`], [`escalations_api`], [`pause_api`], [`metrics_endpoint`],
//! [`agent_endpoint`] and the [`approval_page`]; [`auth`], [`auth_limit`], [`token_file`]
//! and [`api_error`] are shared by them; [`state`] is what they share.

pub mod agent_endpoint;
pub mod api_error;
pub mod approval_page;
pub mod auth;
pub mod auth_limit;
pub mod escalations_api;
pub mod header_limit;
pub mod journal_api;
pub mod metrics_endpoint;
pub mod pause_api;
pub mod simulate_api;
pub mod state;
pub mod token_file;
pub mod webhook;

use std::future::Future;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use state::{App, AppState};

/// The central router: webhook, journal and pause API, escalations, the approval page.
pub fn central(state: AppState) -> Router {
    Router::new()
        .route("/webhook/alertmanager", post(webhook::webhook))
        .route("/api/v1/journal", get(journal_api::journal))
        .route("/api/v1/journal/alerts", get(journal_api::journal_alerts))
        .route(
            "/api/v1/pause",
            get(pause_api::get_pause).post(pause_api::set_pause),
        )
        .route("/api/v1/escalations", get(escalations_api::escalations))
        .route("/api/v1/simulate", post(simulate_api::simulate))
        .route(
            "/api/v1/escalations/{id}/approve",
            post(escalations_api::approve),
        )
        .route(
            "/api/v1/escalations/{id}/reject",
            post(escalations_api::reject),
        )
        .merge(approval_page::routes())
        .with_state(state)
}

/// Everything this process serves, for tests to drive directly or serve.
pub fn app(app: App) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(metrics_endpoint::metrics).with_state((app.metrics.clone(), app.central.clone())),
        );
    if let Some(state) = app.central {
        router = router.merge(central(state));
    }
    if let Some(agent) = app.agent {
        router = router.merge(
            Router::new()
                .route("/api/v1/agent/run", post(agent_endpoint::run))
                .route("/api/v1/agent/status", post(agent_endpoint::status))
                .with_state(agent),
        );
    }
    let limiter = auth_limit::AuthLimiter::new(
        app.metrics.auth_failures.clone(),
        app.metrics.auth_rate_limited.clone(),
    );
    router
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            auth_limit::guard,
        ))
        .layer(axum::middleware::from_fn(header_limit::limit_headers))
}

/// Serves (plain or TLS) with the default limits until `shutdown` completes, then drains
/// requests in flight.
pub async fn run(
    listener: TcpListener,
    app_state: App,
    transport: koji_tls::Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    koji_tls::serve(listener, app(app_state), transport, shutdown).await
}

/// Serves with the given limits (timeouts, connection cap, drain).
pub async fn run_with(
    listener: TcpListener,
    app_state: App,
    transport: koji_tls::Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: koji_tls::Limits,
) -> std::io::Result<()> {
    koji_tls::serve_with(listener, app(app_state), transport, shutdown, limits).await
}
