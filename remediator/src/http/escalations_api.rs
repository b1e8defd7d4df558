//! The escalations API: the list (on-call's shared or own token), and approve / reject
//! (an on-call person's own token only, journaled with their name).

use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api_error::ApiError;
use super::auth::{OncallPerson, OncallReader};
use super::journal_api::journal_read_error;
use super::state::AppState;
use super::webhook::read_body;
use crate::engine::escalations::{self, DecideError};
use crate::lifecycle::Verdict;

/// `GET /api/v1/escalations`: waiting ones first, then recent decisions.
pub async fn escalations(
    _caller: OncallReader,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
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

/// `POST /api/v1/escalations/{id}/approve`: an on-call person applies the stored plan.
pub async fn approve(
    person: OncallPerson,
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    decide(state, person, id, body, true).await
}

/// `POST /api/v1/escalations/{id}/reject`.
pub async fn reject(
    person: OncallPerson,
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    decide(state, person, id, body, false).await
}

async fn decide(
    state: AppState,
    OncallPerson(person): OncallPerson,
    id: i64,
    body: Body,
    approve: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = read_body(body, 4096).await?;
    let request: DecisionRequest = if bytes.is_empty() {
        DecisionRequest::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::bad_request("malformed_request", error.to_string()))?
    };
    let decided = decide_escalation(&state, id, &person, &request.reason, approve).await?;
    Ok(Json(
        json!({ "id": id, "state": decided.name(), "by": person }),
    ))
}

/// Records `person`'s decision on escalation `id` (the API and the approval page both
/// decide through here); returns the verdict recorded.
pub async fn decide_escalation(
    state: &AppState,
    id: i64,
    person: &str,
    reason: &str,
    approve: bool,
) -> Result<Verdict, ApiError> {
    let verdict = if approve {
        Verdict::Approved
    } else {
        Verdict::Rejected
    };
    let decided =
        escalations::decide(&state.journal, &state.executor, id, person, reason, verdict).await;
    match decided {
        Ok(_) => Ok(verdict),
        Err(DecideError::NotFound(_)) => Err(ApiError::not_found(format!("no escalation {id}"))),
        Err(error @ DecideError::NotWaiting(..)) => Err(ApiError::conflict(error.to_string())),
        Err(DecideError::Journal(error)) => Err(journal_read_error(error)),
    }
}
