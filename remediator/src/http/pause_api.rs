//! `GET` / `POST /api/v1/pause`: the global pause switch, shared by every replica through
//! the journal.

use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api_error::ApiError;
use super::auth::OncallApi;
use super::state::AppState;
use super::webhook::read_body;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseRequest {
    paused: bool,
    #[serde(default)]
    by: Option<String>,
}

/// `GET /api/v1/pause`.
pub async fn get_pause(
    _caller: OncallApi,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let paused = effective_pause(&state).await?;
    Ok(Json(json!({ "paused": paused })))
}

/// `POST /api/v1/pause` with `{"paused": bool, "by": name}`.
pub async fn set_pause(
    _caller: OncallApi,
    State(state): State<AppState>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
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

/// The switch as stored in the journal, else as configured.
pub async fn effective_pause(state: &AppState) -> Result<bool, ApiError> {
    let stored = state
        .journal
        .paused()
        .await
        .map_err(|_| ApiError::journal_unavailable())?;
    Ok(stored.unwrap_or(state.config.guards.paused))
}
