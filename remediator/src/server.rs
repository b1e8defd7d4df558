//! The HTTP surface: the Alertmanager webhook, the journal and pause API, metrics, health.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::alertmanager;
use crate::api_error::ApiError;
use crate::config::Config;
use crate::executor::Executor;
use crate::journal::Journal;
use crate::metrics::{AlertLabels, Metrics};
use crate::runbook;
use crate::token_file::TokenFile;
use crate::App;

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The journal.
    pub journal: Journal,
    /// Runs claimed runs.
    pub executor: Executor,
    /// Own metrics.
    pub metrics: Arc<Metrics>,
    /// Alertmanager's bearer token.
    pub webhook_token: TokenFile,
    /// On-call's bearer token for the API.
    pub api_token: TokenFile,
    /// On-call people and their tokens, for decisions on escalations.
    pub oncall: Arc<Vec<(String, TokenFile)>>,
    /// Log-in sessions of the approval page.
    pub sessions: Arc<crate::approval_page::sessions::Sessions>,
}

/// The central router: webhook, journal and pause API, metrics.
pub fn central(state: AppState) -> Router {
    Router::new()
        .route("/webhook/alertmanager", post(webhook))
        .route("/api/v1/journal", get(journal))
        .route("/api/v1/journal/alerts", get(journal_alerts))
        .route("/api/v1/pause", get(get_pause).post(set_pause))
        .route("/api/v1/escalations", get(escalations))
        .route("/api/v1/escalations/{id}/approve", post(approve))
        .route("/api/v1/escalations/{id}/reject", post(reject))
        .merge(crate::approval_page::routes())
        .with_state(state)
}

/// Everything this process serves, for tests to drive directly or serve.
pub fn app(app: App) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(metrics).with_state((app.metrics.clone(), app.central.clone())),
        );
    if let Some(state) = app.central {
        router = router.merge(central(state));
    }
    if let Some(agent) = app.agent {
        router = router.merge(
            Router::new()
                .route("/api/v1/agent/run", post(crate::agent::run))
                .with_state(agent),
        );
    }
    let limiter = crate::auth_limit::AuthLimiter::new(
        app.metrics.auth_failures.clone(),
        app.metrics.auth_rate_limited.clone(),
    );
    router.layer(axum::middleware::from_fn_with_state(
        limiter,
        crate::auth_limit::guard,
    ))
}

/// Serves (plain or TLS) until `shutdown` completes, then drains requests in flight.
pub async fn run(
    listener: TcpListener,
    app_state: App,
    transport: koji_tls::Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    koji_tls::serve(listener, app(app_state), transport, shutdown).await
}

/// Checks `Authorization: Bearer TOKEN` in constant time.
pub fn authorized(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if !presented.is_empty()
        && constant_time_eq::constant_time_eq(presented.as_bytes(), token.as_bytes())
    {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Reads the body up to the configured limit.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    authorized(&headers, &state.webhook_token.current())?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !json {
        return Err(ApiError::unsupported_media_type());
    }
    let bytes = read_body(body, state.config.server.max_body_bytes).await?;
    let payload = alertmanager::parse(&bytes).map_err(|error| match error {
        alertmanager::PayloadError::Version(_) => {
            ApiError::bad_request("unsupported_version", error.to_string())
        }
        other => ApiError::bad_request("malformed_payload", other.to_string()),
    })?;
    let decisions: Vec<_> = payload
        .alerts
        .iter()
        .map(|alert| runbook::decide(&state.config, alert))
        .collect();
    let claimed = state
        .journal
        .record_delivery(&payload, &decisions)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot journal a delivery; answering 503 so it is retried");
            ApiError::journal_unavailable()
        })?;
    let known: HashSet<&str> = state
        .config
        .rules
        .iter()
        .map(|r| r.alertname.as_str())
        .collect();
    for alert in &payload.alerts {
        let alertname = if known.contains(alert.alertname()) {
            alert.alertname()
        } else {
            "other"
        };
        state
            .metrics
            .alerts_received
            .get_or_create(&AlertLabels {
                alertname: alertname.into(),
                status: alert.status.name().into(),
            })
            .inc();
    }
    for run in &claimed {
        state.executor.spawn(run.clone());
    }
    Ok(Json(json!({
        "status": "journaled",
        "alerts": payload.alerts.len(),
        "runs_claimed": claimed.len(),
    })))
}

#[derive(Deserialize)]
struct JournalQuery {
    limit: Option<i64>,
}

async fn journal(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<JournalQuery>,
) -> Result<impl IntoResponse, ApiError> {
    authorized(&headers, &state.api_token.current())?;
    let entries = state.journal.recent(query.limit()).await;
    Ok(Json(entries.map_err(journal_read_error)?))
}

async fn journal_alerts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<JournalQuery>,
) -> Result<impl IntoResponse, ApiError> {
    authorized(&headers, &state.api_token.current())?;
    let entries = state.journal.recent_alerts(query.limit()).await;
    Ok(Json(entries.map_err(journal_read_error)?))
}

impl JournalQuery {
    /// The requested number of entries, 100 by default, between 1 and 1000.
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

/// Logs why the journal could not be read; the client learns only that it could not.
fn journal_read_error(error: crate::journal::JournalError) -> ApiError {
    tracing::error!(%error, "cannot read the journal");
    ApiError::journal_unavailable()
}

/// The on-call person whose own token this is; the shared API token and the webhook token
/// never decide on an escalation.
fn oncall_person(headers: &HeaderMap, state: &AppState) -> Result<String, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    state
        .oncall
        .iter()
        .find(|(_, token)| {
            !presented.is_empty()
                && constant_time_eq::constant_time_eq(
                    presented.as_bytes(),
                    token.current().as_bytes(),
                )
        })
        .map(|(name, _)| name.clone())
        .ok_or_else(ApiError::unauthorized)
}

async fn escalations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if authorized(&headers, &state.api_token.current()).is_err() {
        oncall_person(&headers, &state)?;
    }
    let list = state
        .journal
        .escalations(200)
        .await
        .map_err(journal_read_error)?;
    Ok(Json(list))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionRequest {
    #[serde(default)]
    reason: String,
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    decide(state, headers, id, body, true).await
}

async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    decide(state, headers, id, body, false).await
}

async fn decide(
    state: AppState,
    headers: HeaderMap,
    id: i64,
    body: Body,
    approve: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let person = oncall_person(&headers, &state)?;
    let bytes = read_body(body, 4096).await?;
    let request: DecisionRequest = if bytes.is_empty() {
        DecisionRequest::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::bad_request("malformed_request", error.to_string()))?
    };
    let decided = decide_escalation(&state, id, &person, &request.reason, approve).await?;
    Ok(Json(json!({ "id": id, "state": decided, "by": person })))
}

/// Records `person`'s decision on escalation `id` and, when approved, hands the run to the
/// executor, which applies the stored plan through the same guards as an automatic run.
/// The API and the approval page both decide through here. Returns the new state.
pub async fn decide_escalation(
    state: &AppState,
    id: i64,
    person: &str,
    reason: &str,
    approve: bool,
) -> Result<&'static str, ApiError> {
    let decided = state
        .journal
        .decide(id, approve, person, reason)
        .await
        .map_err(|_| ApiError::journal_unavailable())?;
    match decided {
        Ok(rule) => {
            tracing::warn!(run = id, %person, approve, "escalation decided");
            if approve {
                state
                    .executor
                    .spawn(crate::journal::ClaimedRun { id, rule });
            }
            Ok(if approve { "approved" } else { "rejected" })
        }
        Err(None) => Err(ApiError::not_found(format!("no escalation {id}"))),
        Err(Some(current)) => Err(ApiError::conflict(match current.as_str() {
            "expired" => format!("escalation {id} expired: its alert resolved before a decision"),
            "rejected" => format!("escalation {id} was rejected already"),
            other => format!("escalation {id} is not waiting for a decision (it is {other})"),
        })),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseRequest {
    paused: bool,
    #[serde(default)]
    by: Option<String>,
}

async fn get_pause(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorized(&headers, &state.api_token.current())?;
    let paused = effective_pause(&state).await?;
    Ok(Json(json!({ "paused": paused })))
}

async fn set_pause(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    authorized(&headers, &state.api_token.current())?;
    let bytes = read_body(body, 4096).await?;
    let request: PauseRequest = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request("malformed_request", error.to_string()))?;
    let by = request.by.unwrap_or_else(|| "api".into());
    state
        .journal
        .set_paused(request.paused, &by)
        .await
        .map_err(|_| ApiError::journal_unavailable())?;
    tracing::warn!(paused = request.paused, %by, "pause switch set");
    Ok(Json(json!({ "paused": request.paused })))
}

async fn effective_pause(state: &AppState) -> Result<bool, ApiError> {
    let stored = state
        .journal
        .paused()
        .await
        .map_err(|_| ApiError::journal_unavailable())?;
    Ok(stored.unwrap_or(state.config.guards.paused))
}

async fn metrics(
    State((metrics, central)): State<(Arc<Metrics>, Option<AppState>)>,
) -> impl IntoResponse {
    // The journal's figures are read at scrape time; if it is down they keep their last value.
    if let Some(state) = &central {
        if let Ok(pending) = state.journal.pending_escalations().await {
            metrics.escalations_pending.set(pending);
        }
        if let Ok(paused) = effective_pause(state).await {
            metrics.paused.set(i64::from(paused));
        }
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &metrics.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
