//! Who a request is: bearer tokens checked in constant time, and on-call people by their
//! own tokens.

use axum::http::{header, HeaderMap};

use super::api_error::ApiError;
use super::state::AppState;

/// The bearer token a request presents, if any.
pub fn presented(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// Checks `Authorization: Bearer TOKEN` in constant time.
pub fn authorized(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let presented = presented(headers);
    if !presented.is_empty()
        && constant_time_eq::constant_time_eq(presented.as_bytes(), token.as_bytes())
    {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// The on-call person whose own token this is; the shared API token and the webhook token
/// never decide on an escalation.
pub fn oncall_person(headers: &HeaderMap, state: &AppState) -> Result<String, ApiError> {
    let presented = presented(headers);
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
