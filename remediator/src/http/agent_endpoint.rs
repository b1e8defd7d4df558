//! `POST /api/v1/agent/run`: a central remediator's forwarded run. The forwarding token is
//! required; a body that is not exactly the agent protocol (an unknown field such as a
//! command or a path) is refused whole with 400 naming it, and nothing runs; an action this
//! agent does not run is 403; the same run asked again while it is being applied is 503.
//! `POST /api/v1/agent/status` says how a run ended here.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use super::api_error::ApiError;
use super::auth::Central;
use super::webhook::read_body;
use crate::agent::protocol::AgentRequest;
use crate::agent::protocol::RunKey;
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
    // Detached from this request: a central side that disconnects (or dies) mid-run must
    // not cut the run off halfway, with kojid stopped; it learns the outcome from the
    // run's record.
    let run = tokio::spawn(async move { execute(&state, &request).await });
    let outcome = run
        .await
        .map_err(|_| ApiError::unavailable("the run's task failed; ask for its status"))?;
    match outcome {
        Ok(response) => Ok((StatusCode::OK, Json(response))),
        // The central side retries: by then the run has ended and its record answers.
        Err(busy) => Err(ApiError::unavailable(busy.to_string())),
    }
}

/// `POST /api/v1/agent/status`: how a forwarded run ended here, for a central replica that
/// lost track of it mid-apply.
pub async fn status(
    _caller: Central,
    State(state): State<AgentState>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = read_body(body, 4096).await?;
    let key: RunKey = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request("malformed_request", error.to_string()))?;
    Ok(Json(crate::agent::status(&state, &key).await))
}
