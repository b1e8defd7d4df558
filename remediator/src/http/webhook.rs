//! `POST /webhook/alertmanager`: Alertmanager's notifications, journaled with their
//! decisions before the answer; 2xx only once durable, 503 when the journal cannot take
//! them (Alertmanager retries), 4xx naming what is wrong with the content.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::api_error::ApiError;
use super::auth::Alertmanager;
use super::state::AppState;
use crate::alertmanager;
use crate::lifecycle::RunState;
use crate::metrics::AlertLabels;
use crate::runbook;

/// Whether a `Content-Type` is JSON: `application/json`, any case, with parameters
/// (`; charset=utf-8`) or none; never a longer subtype such as `application/jsonx`.
/// Split by hand: one media type, compared as RFC 9110 says (case-insensitive).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Reads the body up to `limit`: 413 beyond it, 408 when it does not arrive in time.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        if error.is::<http_body_util::LengthLimitError>() {
            ApiError::too_large(limit)
        } else {
            // The body did not arrive within the server's body timeout, or the client went.
            ApiError::body_timeout()
        }
    })
}

/// The body of a request that must be JSON: 415 for another media type, then as
/// [`read_body`] (the webhook and the simulate API take the same payloads).
pub async fn json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_json);
    if !json {
        return Err(ApiError::unsupported_media_type());
    }
    read_body(body, limit).await
}

/// `POST /webhook/alertmanager`.
pub async fn webhook(
    _caller: Alertmanager,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = json_body(&headers, body, state.config.server.max_body_bytes).await?;
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
        .record_delivery(&payload, &decisions, state.config.notify.is_some())
        .await
        .map_err(|error| {
            let error = koji_config::error_chain::error_chain(&error);
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
        // Escalations are planned for on-call; notify-only ones need nothing more here.
        if run.state != RunState::Notified {
            state.executor.spawn(run.id);
        }
    }
    Ok(Json(json!({
        "status": "journaled",
        "alerts": payload.alerts.len(),
        "runs_claimed": claimed.len(),
    })))
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_media_types_are_case_insensitive_and_exact() {
        for yes in [
            "application/json",
            "APPLICATION/JSON",
            "Application/Json; charset=utf-8",
            " application/json ;charset=UTF-8",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "application/jsonx",
            "application/json-patch",
            "text/json",
            "",
            "json",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }
}
