//! `POST /api/v1/simulate` (on-call's shared token): an Alertmanager payload in, what each
//! alert would do now out (decision, guards, plan), with nothing claimed, journaled or
//! applied. See [`crate::engine::executor::simulation`].

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;

use super::api_error::ApiError;
use super::auth::OncallApi;
use super::journal_api::journal_read_error;
use super::state::AppState;
use super::webhook::json_body;
use crate::engine::executor::simulation::Simulated;
use crate::{alertmanager, runbook};

/// `POST /api/v1/simulate`.
pub async fn simulate(
    _caller: OncallApi,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = json_body(&headers, body, state.config.server.max_body_bytes).await?;
    let alerts = simulated(&state, &bytes).await?;
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}

/// What each alert of the payload `bytes` would do now (also for the approval page's form).
pub async fn simulated(state: &AppState, bytes: &[u8]) -> Result<Vec<Simulated>, ApiError> {
    let payload = alertmanager::parse(bytes)
        .map_err(|error| ApiError::bad_request("malformed_payload", error.to_string()))?;
    let mut alerts = Vec::new();
    for alert in &payload.alerts {
        let decided = runbook::decide(&state.config, alert);
        alerts.push(
            state
                .executor
                .simulate(&decided)
                .await
                .map_err(journal_read_error)?,
        );
    }
    Ok(alerts)
}
