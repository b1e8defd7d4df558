//! `GET /metrics`: the remediator's own metrics; the journal's figures are read at scrape
//! time.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::pause_api::effective_pause;
use super::state::AppState;
use crate::metrics::Metrics;

/// `GET /metrics`, never rate-limited.
pub async fn metrics(
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
