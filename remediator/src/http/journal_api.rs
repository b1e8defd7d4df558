//! `GET /api/v1/journal` and `/api/v1/journal/alerts`: recent runs and alerts, on-call's
//! shared token.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::api_error::ApiError;
use super::auth::OncallApi;
use super::state::AppState;

#[derive(Deserialize)]
/// `?limit=`: how many entries (100 by default, 1 to 1000).
pub struct JournalQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/journal`: the most recent runs, newest first.
pub async fn journal(
    _caller: OncallApi,
    State(state): State<AppState>,
    Query(query): Query<JournalQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let entries = state.journal.recent(query.limit()).await;
    Ok(Json(entries.map_err(journal_read_error)?))
}

/// `GET /api/v1/journal/alerts`: the most recent alerts and their decisions.
pub async fn journal_alerts(
    _caller: OncallApi,
    State(state): State<AppState>,
    Query(query): Query<JournalQuery>,
) -> Result<impl IntoResponse, ApiError> {
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
pub fn journal_read_error(error: crate::journal::JournalError) -> ApiError {
    let error = koji_config::error_chain::error_chain(&error);
    tracing::error!(%error, "cannot read the journal");
    ApiError::journal_unavailable()
}
