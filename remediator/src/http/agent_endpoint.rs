//! `POST /api/v1/agent/run`: a central remediator's forwarded run. The forwarding token is
//! required; a body that is not exactly the agent protocol (an unknown field such as a
//! command or a path) is refused whole with 400 naming it, and nothing runs; an action this
//! agent does not run is 403.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use super::api_error::ApiError;
use super::auth::Central;
use super::webhook::read_body;
use crate::agent::protocol::AgentRequest;
use crate::agent::{execute, AgentState};

/// Largest request accepted.
const MAX_REQUEST: usize = 1 << 20;

/// Runs a forwarded request.
pub async fn run(
    _caller: Central,
    State(state): State<AgentState>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = read_body(body, MAX_REQUEST).await?;
    let request: AgentRequest = serde_json::from_slice(&bytes).map_err(|error| {
        tracing::warn!(%error, "refused a forwarded request");
        ApiError::bad_request("malformed_request", error.to_string())
    })?;
    if !state.config.actions.contains(&request.action) {
        return Err(ApiError::forbidden(format!(
            "this agent does not run {}",
            request.action.name()
        )));
    }
    tracing::info!(
        run = request.run,
        action = request.action.name(),
        "forwarded run"
    );
    let response = execute(&state, &request).await;
    Ok((StatusCode::OK, Json(response)))
}
